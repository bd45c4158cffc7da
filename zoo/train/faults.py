"""Fault handling of the training loop: stop signals (save, then stop), out-of-memory
steps (halve the micro-batch under ``--micro-batch auto``, else one line), losses FSDP cannot
shard, and the message of an interrupted run."""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import warnings
from typing import Any

from zoo.errors import ZooError
from zoo.train import fsdp, launch, memory, state as ckpt
from zoo.train.task import Interrupted, Phase


class _StopFlag:
    """SIGINT/SIGTERM -> remember the signal; the loop saves and stops after the step.
    A second signal stops at once (default behaviour)."""

    def __init__(self, enabled: bool) -> None:
        self.signum = 0
        self._old: dict[int, Any] = {}
        self.enabled = enabled and threading.current_thread() is threading.main_thread()

    def __enter__(self) -> "_StopFlag":
        if self.enabled:
            if launch.PENDING:  # a stop asked for while the process was starting
                self.signum = launch.PENDING.pop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.signum:  # second signal: give up on the clean stop
            self.__exit__()
            raise KeyboardInterrupt
        self.signum = signum

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old = {}




class FaultsMixin:
    """The trainer's fault handling (mixed into :class:`zoo.train.engine._Trainer`)."""

    def oom_message(self, where: str) -> str:
        last = ckpt.list_checkpoints(self.out_dir)
        kept = f"; last checkpoint: {last[-1]}" if last else ""
        tips = ["--micro-batch auto"] if self.options.micro_batch != "auto" and not self.sharded else []
        tips += ["--grad-checkpointing", "--precision bf16"]
        tips += ["--strategy fsdp with several processes"] if not self.sharded else ["more processes"]
        return f"out of memory {where}{kept}. Try {', '.join(tips)} or a smaller --batch-size"

    def smaller_micro_batch(self, ph: Phase, n: int) -> None:
        """After an out-of-memory phase: halve the micro-batch (``--micro-batch auto``)
        or stop with one line."""
        if self.options.micro_batch != "auto":
            raise ZooError(self.oom_message(f"in step {self.step + 1} (phase {ph.optimizer}, micro-batch {self.micro})"))
        if self.micro == 1:
            raise ZooError(self.oom_message(f"in step {self.step + 1} (phase {ph.optimizer}) with one sample per micro-batch"))
        self.micro = max(1, self.micro // 2)
        accum = math.ceil(n / self.micro)
        msg = f"out of memory in step {self.step + 1} (phase {ph.optimizer}); continuing with micro-batch {self.micro} x {accum} accumulation (same global batch)"
        if self.main:
            warnings.warn(msg, stacklevel=3)
        self.log.write({"event": "oom_retry", "step": self.step + 1, "phase": ph.optimizer, "micro_batch": self.micro, "accum": accum})

    @contextlib.contextmanager
    def oom_stops(self):
        """An out-of-memory error the micro-batch retry does not cover (the optimizer's
        first step allocating its moments, clipping, EMA, validation) -> one line."""
        try:
            yield
        except Exception as exc:  # noqa: BLE001 - only out-of-memory errors are turned into one line
            if not memory.is_oom(exc):
                raise
            raise ZooError(self.oom_message(f"around step {self.step + 1} outside the forward/backward pass (optimizer step, EMA, validation or saving)")) from None

    @contextlib.contextmanager
    def fsdp_errors(self):
        """Under FSDP, turn the errors of a loss FSDP cannot shard into one line."""
        try:
            yield
        except RuntimeError as exc:
            msg = fsdp.misuse_message(self.ctx.method, exc) if self.sharded else None
            if msg is None:
                raise
            raise ZooError(msg) from None

    def interrupted(self, signum: int) -> Interrupted:
        name = signal.Signals(signum).name
        path = self.save(name)
        self.log.write({"event": "interrupted", "step": self.step, "signal": name})
        where = f"; checkpoint {path}" if path else ""
        return Interrupted(f"{name} at step {self.step}{where}; continue with --resume {self.out_dir}", signum, path)
