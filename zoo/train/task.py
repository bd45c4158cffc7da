"""What a plugin gives the training engine: :class:`TrainTask` (model, optimizers, phases),
:class:`Phase` (one optimizer step: a loss of a batch), and the engine settings
:class:`TrainOptions` that ``zoo train``'s flags fill in."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from zoo.device import PRECISIONS
from zoo.errors import ZooError
from zoo.train import fsdp

LossFn = Callable[[dict, int], "tuple[torch.Tensor, dict[str, float]]"]


@dataclass
class TrainOptions:
    """Engine settings, set from ``zoo train`` flags. Every field has a working default."""

    device: str = "auto"  # auto | cpu | cuda[:N] | mps (processes of `--devices N` use their own GPU)
    precision: str = "fp32"  # fp32 | bf16 | fp16 (fp16 uses one loss scaler per optimizer)
    grad_accum: int = 1  # micro-batches per optimizer step; the global batch is split evenly
    micro_batch: int | str | None = None  # samples per forward pass: an int, "auto", or None (= from grad_accum)
    grad_clip: float = 0.0  # max global grad norm per phase; 0 = off
    grad_checkpointing: bool = False  # passed to models that support it
    save_every: int = 0  # write a checkpoint every N steps (and at the end); 0 = only at the end
    keep_last: int = 3  # checkpoints kept (oldest removed first); 0 = keep all
    resume: str | None = None  # a run folder (its newest checkpoint) or a checkpoint folder
    init: str | None = None  # a zoo checkpoint whose weights start a new run (step 0, fresh optimizers)
    time_budget_s: float | None = None  # seconds: train until spent (then save), whatever the step count; None = by steps
    budget_clock: str | None = None  # what time_budget_s counts: wall (wall-clock seconds) | cpu (CPU seconds of this process); None: wall, or on resume the run's
    log_every: int = 1  # JSONL/TensorBoard record every N steps
    val_every: int = 0  # validation metrics every N steps; 0 = off
    val_size: int = 8  # images in the fixed validation set
    val_metrics: str = "psnr,l1-hole"  # comma-separated metric names (lpips, fid if installed)
    best_metric: str = "psnr"  # RUN/best.safetensors tracks the best value of this metric
    sample_every: int = 0  # PNG grid of validation inputs/results every N steps; 0 = off
    max_nonfinite: int = 5  # stop after this many steps in a row with a NaN/Inf loss
    sync_batchnorm: bool = False  # convert BatchNorm to SyncBatchNorm under multi-GPU
    strategy: str = "ddp"  # ddp: every process holds the model | fsdp: weights, grads, optimizer state sharded
    simulated_memory_limit: int | None = None  # bytes; for --micro-batch auto (also $ZOO_SIMULATED_MEMORY_LIMIT)
    tensorboard: bool = True  # write RUN/tb when tensorboard is installed
    num_workers: int = 0
    progress: bool = True
    handle_signals: bool = True  # SIGINT/SIGTERM save a checkpoint and stop

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ZooError(f"unknown precision {self.precision!r}; valid choices: {', '.join(PRECISIONS)}")
        if self.grad_accum < 1:
            raise ZooError("--grad-accum must be at least 1")
        if self.strategy not in fsdp.STRATEGIES:
            raise ZooError(f"unknown strategy {self.strategy!r}; valid choices: {', '.join(fsdp.STRATEGIES)}")
        if isinstance(self.micro_batch, str):
            if self.micro_batch.strip().lower() == "auto":
                self.micro_batch = "auto"
            elif self.micro_batch.strip().isdigit():
                self.micro_batch = int(self.micro_batch)
            else:
                raise ZooError(f"--micro-batch {self.micro_batch!r}: expected a positive integer or 'auto'")
        if isinstance(self.micro_batch, int) and self.micro_batch < 1:
            raise ZooError("--micro-batch must be at least 1 (or 'auto')")
        for name in ("save_every", "keep_last", "val_every", "sample_every", "log_every", "max_nonfinite"):
            if getattr(self, name) < 0:
                raise ZooError(f"--{name.replace('_', '-')} must be 0 or more")
        if self.init and self.resume:
            raise ZooError("--init starts a new run from a checkpoint's weights and --resume continues a run; give one of them")
        if self.max_nonfinite < 1:
            raise ZooError("--max-nonfinite must be at least 1")
        if self.time_budget_s is not None:
            budget = float(self.time_budget_s)
            if not 0 < budget < float("inf"):
                raise ZooError(f"--time-budget must be more than 0 seconds (got {self.time_budget_s}); e.g. 90s, 15m, 2h or 1h30m")
            self.time_budget_s = budget
        if self.budget_clock not in (None, "wall", "cpu"):
            raise ZooError(f"unknown budget clock {self.budget_clock!r}; valid choices: wall, cpu")
        self.log_every = max(1, self.log_every)


@dataclass
class Phase:
    """One optimizer step per training step: ``loss(batch, step) -> (loss, logs)``.

    ``batch`` is a dict with ``"image"`` (B, 3, H, W) in [-1, 1] and ``"mask"``
    (B, 1, H, W), 1 = hole, on the training device; the loss should be a mean over the
    batch (the engine weights micro-batches by their size)."""

    optimizer: str  # key in TrainTask.optimizers()
    loss: LossFn
    every: int = 1  # run on steps where step % every == 0


class TrainTask:
    """What a plugin gives the engine. Subclass and fill in.

    Required: ``model`` (the module ``zoo_build_model`` builds; its ``state_dict`` is the
    checkpoint), :meth:`optimizers`, :meth:`phases`. ``ema_decay`` > 0 keeps an
    exponential moving average of the model's floating-point weights, which the exported
    checkpoint holds instead of the raw weights. Losses call ``self.model`` (or its
    sub-modules) directly, on one process or many.

    Optional hooks (all have working defaults): :meth:`schedulers`,
    :meth:`enable_grad_checkpointing`, :meth:`fsdp_roots`, :meth:`extra_state` /
    :meth:`load_extra_state`, :meth:`validation_sample`, :meth:`init_missing`. While :func:`fit` runs, ``self.accelerator`` is the
    accelerate ``Accelerator`` (process index, device, ...).
    """

    model: torch.nn.Module
    ema_decay: float = 0.0
    #: the steps this run plans (``zoo train --steps`` or the preset's) and the steps it is
    #: expected to reach; the engine sets both before :meth:`schedulers`. They differ only
    #: under ``--time-budget``, where ``total_steps`` is fixed from the measured speed after
    #: the first steps (see :meth:`schedule_steps`)
    planned_steps: int = 0
    total_steps: int = 0

    def schedule_steps(self, steps: int) -> int:
        """A schedule length given in steps of the planned run (a warm-up, a decay horizon),
        in steps of this run: unchanged when training by steps; under ``--time-budget``
        scaled by ``total_steps / planned_steps``, so a warm-up of 5 % of the planned steps
        is 5 % of the steps the budget allows. Read it inside the scheduler's function (it
        changes once, when the engine fixes ``total_steps``), not when building it."""
        if steps <= 0 or not self.planned_steps or not self.total_steps or self.total_steps == self.planned_steps:
            return steps
        return max(1, round(steps * self.total_steps / self.planned_steps))

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        raise NotImplementedError

    def phases(self) -> list[Phase]:
        raise NotImplementedError

    def to(self, device: torch.device) -> None:
        """Move everything the losses use (model, frozen loss networks) to ``device``."""
        self.model.to(device)

    def schedulers(self) -> dict[str, Any]:
        """Learning-rate schedulers keyed by optimizer name; stepped after that optimizer.
        Called once, after :meth:`optimizers`."""
        return {}

    def enable_grad_checkpointing(self) -> bool:
        """Turn on activation checkpointing; return False if the model cannot.

        The default looks for the usual switches on the model and its sub-modules:
        ``enable_grad_checkpointing()`` (zoo), ``set_grad_checkpointing(True)`` (timm),
        ``enable_gradient_checkpointing()`` (diffusers), ``gradient_checkpointing_enable()``
        (transformers)."""
        return enable_grad_checkpointing(self.model)

    def fsdp_roots(self) -> list[torch.nn.Module] | None:
        """The modules to shard under ``--strategy fsdp``: those the losses call through
        their forward. The default, ``[self.model]``, is right when every loss calls
        ``self.model(...)``; a GAN whose losses call ``self.model.generator(...)`` and
        ``self.model.discriminator(...)`` returns those two. Together they must hold every
        trained weight. Return None, or raise :class:`~zoo.errors.ZooError` with the
        reason, if the method cannot be sharded (``--strategy fsdp`` then stops with one
        line). See :mod:`zoo.train.fsdp`."""
        return [self.model]

    def extra_state(self) -> dict[str, Any]:
        """Non-module state to checkpoint (tensors, numbers, strings, lists, dicts)."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`extra_state` returned."""

    def init_missing(self, keys: list[str], source: Path) -> str | None:
        """``--init CKPT`` lacks the model tensors ``keys`` (sorted state-dict names): keep
        their fresh initialisation and return the one-line announcement printed on start
        (e.g. "a generator-only checkpoint: the discriminator starts from a fresh
        initialisation"), or raise :class:`~zoo.errors.ZooError` saying what to pass.

        The default refuses: a part of the model the training needs is not in the file. A
        method overrides this for the parts it documents as freshly initialisable, and
        should still refuse the others. See docs/training.md, "Fine-tuning"."""
        shown = ", ".join(keys[:3]) + (", ..." if len(keys) > 3 else "")
        raise ZooError(
            f"--init {source}: the checkpoint has no weights for {len(keys)} tensor(s) this model trains ({shown}); "
            "pass a checkpoint of the same architecture that holds them"
        )

    def validation_sample(self, images: torch.Tensor, masks: torch.Tensor, generator: torch.Generator) -> torch.Tensor | None:
        """Inpaint a validation batch with the current (EMA) weights for metrics and sample
        grids. Return None (the default) to use the method's ``zoo_sample`` hook."""
        return None


class Interrupted(ZooError):
    """A run stopped by SIGINT/SIGTERM after saving its checkpoint."""

    def __init__(self, message: str, signum: int, checkpoint: Path | None) -> None:
        super().__init__(message)
        self.signum, self.checkpoint = signum, checkpoint
        self.exit_code = 128 + signum



_SWITCHES = (
    ("enable_grad_checkpointing", ()),
    ("set_grad_checkpointing", (True,)),
    ("enable_gradient_checkpointing", ()),
    ("gradient_checkpointing_enable", ()),
)


def enable_grad_checkpointing(model: torch.nn.Module) -> bool:
    """Call the first known checkpointing switch on the top-most modules that have one."""
    done: list[str] = []
    for name, module in model.named_modules():
        if any(name.startswith(d + ".") or d == "" for d in done):
            continue
        for attr, args in _SWITCHES:
            fn = getattr(module, attr, None)
            if callable(fn):
                fn(*args)
                done.append(name)
                break
    return bool(done)


def options_dict(options: TrainOptions) -> dict[str, Any]:
    return asdict(options)
