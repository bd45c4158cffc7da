"""One optimizer step of every due phase: micro-batches and gradient accumulation, mixed
precision with one loss scaler per optimizer, the NaN/Inf guard, gradient averaging over
processes, clipping, and ``--micro-batch auto`` (the largest micro-batch that fits)."""

from __future__ import annotations

import contextlib
import math

import torch

from zoo.errors import ZooError
from zoo.train import dist, fsdp, memory, state as ckpt
from zoo.train.samples import split_batch
from zoo.train.task import Phase


class StepMixin:
    """The trainer's optimizer step (mixed into :class:`zoo.train.engine._Trainer`)."""

    def autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    # ---- micro-batches ----
    def resolve_micro(self, first_chunk: dict[str, torch.Tensor]) -> tuple[int, int]:
        opts = self.options
        share = self.ctx.batch_size // self.world
        if opts.micro_batch != "auto":
            return split_batch(self.ctx.batch_size, opts, self.world)
        limit = memory.simulated_limit(opts.simulated_memory_limit)
        task = self.task
        saved_rng = ckpt.rng_state()
        saved_buffers = {k: v.detach().clone() for k, v in task.model.named_buffers()}

        params = list(task.model.parameters())

        def run_micro(m: int) -> None:
            mb = {k: v[:m].to(self.device) for k, v in first_chunk.items()}
            try:
                for ph in self.phases:
                    with memory.count_saved_bytes(limit, exclude=params), self.fsdp_errors():
                        with self.autocast():
                            loss, _ = ph.loss(mb, 0)
                        loss.backward()
                    del loss
            finally:
                for opt in self.optimizers.values():
                    opt.zero_grad(set_to_none=True)

        micro = memory.probe_micro_batch(run_micro, share, self.device)
        with torch.no_grad():
            for k, v in task.model.named_buffers():
                v.copy_(saved_buffers[k])
        ckpt.set_rng_state(saved_rng)
        micro = dist.min_int(micro, self.device)
        if micro < 1:
            raise ZooError("--micro-batch auto: even one sample does not fit in memory; try --grad-checkpointing, --precision bf16 or a smaller resolution")
        return micro, math.ceil(share / micro)

    # ---- the loop ----
    def train_step(self, chunk: dict[str, torch.Tensor]) -> tuple[dict[str, float], list[str]]:
        """One optimizer step of every due phase; returns (logs, names of skipped phases).

        A phase that runs out of memory is redone with half the micro-batch (and twice the
        accumulation, so the global batch stays) when ``--micro-batch auto`` chose it;
        otherwise the run stops with one line saying what to try."""
        n = chunk["image"].shape[0]
        logs: dict[str, float] = {}
        skipped: list[str] = []
        for ph in self.phases:
            if self.step % ph.every:
                continue
            opt, scaler, params = self.optimizers[ph.optimizer], self.scalers[ph.optimizer], self.params[ph.optimizer]
            while True:
                phase_logs: dict[str, float] = {}
                outcome = self.accumulate(ph, chunk, n, phase_logs)
                if not dist.any_true(outcome == "oom", self.device):
                    break
                self.smaller_micro_batch(ph, n)
            if dist.any_true(outcome == "nonfinite", self.device):
                opt.zero_grad(set_to_none=True)
                skipped.append(ph.optimizer)
                continue
            for name, value in phase_logs.items():
                logs[name] = logs.get(name, 0.0) + value
            if not self.sharded:  # FSDP reduced (averaged) the gradient shards in the backward
                dist.average_gradients(params)
            if scaler.is_enabled():
                scaler.unscale_(opt)
            if self.options.grad_clip > 0:
                norm = torch.nn.utils.clip_grad_norm_(params, self.options.grad_clip)
                norm = norm.full_tensor() if fsdp.is_sharded(norm) else norm
                logs[f"grad_norm/{ph.optimizer}"] = float(norm)
                if not math.isfinite(float(norm)) and not scaler.is_enabled():
                    opt.zero_grad(set_to_none=True)
                    skipped.append(ph.optimizer)
                    continue
            scaler.step(opt)  # a plain opt.step() unless fp16 (then skipped on inf grads)
            scaler.update()
            if ph.optimizer in self.schedulers:
                self.schedulers[ph.optimizer].step()
            if scaler.is_enabled():
                logs[f"loss_scale/{ph.optimizer}"] = float(scaler.get_scale())
        return logs, skipped

    def accumulate(self, ph: Phase, chunk: dict[str, torch.Tensor], n: int, logs: dict[str, float]) -> str:
        """Forward + backward of ``ph`` over this process's chunk in micro-batches,
        gradients accumulated in the phase's parameters. Returns "ok", "nonfinite" (a
        NaN/Inf loss; stopped there) or "oom" (out of memory; gradients cleared)."""
        opt, scaler, params = self.optimizers[ph.optimizer], self.scalers[ph.optimizer], self.params[ph.optimizer]
        opt.zero_grad(set_to_none=True)
        micro = self.micro
        mbs = [{k: v[i : i + micro] for k, v in chunk.items()} for i in range(0, n, micro)]
        limit = self.memory_limit
        try:
            for mb in mbs:
                mb = {k: v.to(self.device, non_blocking=True) for k, v in mb.items()}
                weight = mb["image"].shape[0] / n
                # a simulated memory limit holds in every step, as a real card's would
                with memory.count_saved_bytes(limit, exclude=params) if limit else contextlib.nullcontext():
                    with self.fsdp_errors(), self.autocast():
                        loss, parts = ph.loss(mb, self.step)
                    finite = bool(torch.isfinite(loss.detach()).all())
                    if self.sharded:  # FSDP's collectives run in the backward: all stop together
                        finite = not dist.any_true(not finite, self.device)
                    if not finite:
                        return "nonfinite"
                    # under FSDP every micro-batch's backward reduce-scatters into the sharded
                    # gradients: no full-size gradients are kept between micro-batches
                    # (less memory), and zero_grad clears everything a skipped phase left
                    with self.fsdp_errors():
                        scaler.scale(loss.float() * weight).backward()
                for name, value in parts.items():
                    logs[name] = logs.get(name, 0.0) + float(value) * weight
        except Exception as exc:  # noqa: BLE001 - only out-of-memory errors are handled
            if not memory.is_oom(exc):
                raise
            if self.sharded:  # the other processes may be waiting in FSDP's collectives: stop
                raise ZooError(self.oom_message(f"in step {self.step + 1} (phase {ph.optimizer}, micro-batch {self.micro}, --strategy fsdp)")) from None
            loss = None
            opt.zero_grad(set_to_none=True)
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            return "oom"
        return "ok"


def _grad_scaler(device: torch.device, enabled: bool, sharded: bool = False):
    if sharded and enabled:  # agrees on inf/NaN across the processes' gradient shards
        from torch.distributed.fsdp.sharded_grad_scaler import ShardedGradScaler

        return ShardedGradScaler(device.type, enabled=True)
    try:
        return torch.amp.GradScaler(device.type, enabled=enabled)
    except (AttributeError, TypeError, RuntimeError):  # older torch
        return torch.cuda.amp.GradScaler(enabled=enabled and device.type == "cuda")
