"""The training engine every learned plugin uses, built on Hugging Face accelerate.

A plugin describes *what* to optimise as a :class:`TrainTask`: the model the checkpoint
holds, its optimizers, and one :class:`Phase` per optimizer step (a loss function of a
batch). Single-loss diffusion training is one phase; GAN training is two (discriminator,
then generator), each with its own optimizer and learning rate, an R1 term every k steps
as a third phase or inside the discriminator's loss. The engine does the rest: data and
masks, the global batch split over processes and micro-batches, mixed precision with
per-optimizer loss scaling, clipping, EMA, NaN guards, logging, validation, sample grids,
signals and exactly-resumable checkpoints.

The loop, per step::

    chunk = this process's share of the global batch            # B / processes samples
    for phase in task.phases():                                  # e.g. [D, G] or [denoiser]
        if step % phase.every: continue
        zero the phase's optimizer
        for mb in chunk split into micro-batches:                # accumulation
            backward(scale * phase.loss(mb, step) * len(mb) / len(chunk))
        if a loss was NaN/Inf on any process: skip this step's update
        average gradients over processes (dist.py); unscale; clip; step; scheduler
    update EMA; sync buffers; log; validate; save every N steps; stop on SIGINT/SIGTERM

Losses call ``task.model`` (or its sub-modules) directly, also under data parallelism:
the engine averages the gradients of each phase's parameters itself (see
:mod:`zoo.train.dist` for why that is cleaner than wrapping the model in DDP).
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import signal
import threading
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from tqdm.auto import tqdm

from zoo.device import PRECISIONS, get_device
from zoo.errors import ZooError
from zoo.masks import make_mask
from zoo.spec import TrainContext, TrainResult
from zoo.train import dist, fsdp, memory, state as ckpt, watch

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
        if self.max_nonfinite < 1:
            raise ZooError("--max-nonfinite must be at least 1")
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
    :meth:`load_extra_state`, :meth:`validation_sample`. While :func:`fit` runs, ``self.accelerator`` is the
    accelerate ``Accelerator`` (process index, device, ...).
    """

    model: torch.nn.Module
    ema_decay: float = 0.0

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


# -- helpers ------------------------------------------------------------------------------------
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


class TrainSamples(torch.utils.data.Dataset):
    """Sample position ``p`` (0, 1, 2, ...) -> image of a seeded per-epoch permutation
    plus mask ``p`` of the training mask kind. Fully determined by (seed, p), so a run can
    resume at any position."""

    def __init__(self, data: torch.utils.data.Dataset, masks: Any, seed: int) -> None:
        self.data, self.masks, self.seed = data, masks, seed
        self.n = len(data)  # type: ignore[arg-type]
        if self.n == 0:
            raise ZooError("the training dataset is empty")
        self._perm: dict[int, torch.Tensor] = {}

    def _index(self, position: int) -> int:
        epoch, offset = divmod(position, self.n)
        if epoch not in self._perm:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._perm = {epoch: torch.randperm(self.n, generator=g)}
        return int(self._perm[epoch][offset])

    def __getitem__(self, position: int) -> dict:
        item = self.data[self._index(position)]
        image = item["image"]
        mask = make_mask(self.masks, image.shape[1], image.shape[2], self.seed, position)
        return {"image": image, "mask": mask}


class _Positions(torch.utils.data.Sampler):
    """Positions of this process's share of each step, from ``first`` on: step s takes
    ``first + s * batch + rank * share + [0, share)``."""

    def __init__(self, first: int, batch: int, rank: int, share: int) -> None:
        self.first, self.batch, self.rank, self.share = first, batch, rank, share

    def __iter__(self) -> Iterator[int]:
        for s in itertools.count():
            base = self.first + s * self.batch + self.rank * self.share
            yield from range(base, base + self.share)


def batches(ctx: TrainContext, micro: int, start: int = 0, num_workers: int = 0) -> Iterator[dict]:
    """Batches of ``micro`` consecutive sample positions from ``start`` (one process)."""
    samples = TrainSamples(ctx.data, ctx.masks, ctx.seed)
    loader = torch.utils.data.DataLoader(samples, batch_size=micro, sampler=_Positions(start, micro, 0, micro), num_workers=num_workers)
    return iter(loader)


class EMA:
    """Exponential moving average of a module's floating-point parameters and buffers."""

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        self.decay = decay
        self.shadow = {k: v.detach().clone().float() for k, v in model.state_dict().items() if v.is_floating_point()}

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        for k, v in model.state_dict().items():
            if k in self.shadow:
                self.shadow[k].lerp_(v.detach().float(), 1.0 - self.decay)

    def apply_to(self, state: dict[str, torch.Tensor], shadow: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """``state`` with the averaged tensors in place of the raw ones (``shadow``: the
        averages to use, e.g. gathered from FSDP shards; default: this EMA's own)."""
        shadow = self.shadow if shadow is None else shadow
        return {k: (shadow[k].to(v.dtype) if k in shadow else v) for k, v in state.items()}

    def state_dict(self) -> dict[str, torch.Tensor]:
        return dict(self.shadow)

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for k, v in state.items():
            self.shadow[k].copy_(v)


def split_batch(batch_size: int, options: TrainOptions, processes: int = 1) -> tuple[int, int]:
    """Global batch -> (micro-batch size, micro-batches per step) for one process."""
    if batch_size % processes:
        raise ZooError(f"--batch-size {batch_size} is not divisible by the {processes} processes")
    share = batch_size // processes
    if isinstance(options.micro_batch, int):
        micro = min(options.micro_batch, share)
        return micro, math.ceil(share / micro)
    if share % options.grad_accum:
        raise ZooError(f"--batch-size {batch_size} ({share} per process) is not divisible by --grad-accum {options.grad_accum}")
    return share // options.grad_accum, options.grad_accum


class _StopFlag:
    """SIGINT/SIGTERM -> remember the signal; the loop saves and stops after the step.
    A second signal stops at once (default behaviour)."""

    def __init__(self, enabled: bool) -> None:
        self.signum = 0
        self._old: dict[int, Any] = {}
        self.enabled = enabled and threading.current_thread() is threading.main_thread()

    def __enter__(self) -> "_StopFlag":
        if self.enabled:
            from zoo.train import launch

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


# -- fit ------------------------------------------------------------------------------------------
def fit(task: TrainTask, ctx: TrainContext) -> TrainResult:
    """Run optimizer steps of ``task`` until ``ctx.steps``; return the exported weights.

    Resumes from ``ctx.options.resume`` when set. Raises :class:`Interrupted` (after
    saving) on SIGINT/SIGTERM and :class:`~zoo.errors.ZooError` after
    ``max_nonfinite`` steps in a row with a NaN/Inf loss."""
    return _Trainer(task, ctx).run()


class _Trainer:
    def __init__(self, task: TrainTask, ctx: TrainContext) -> None:
        from accelerate import Accelerator

        self.task, self.ctx = task, ctx
        self.options: TrainOptions = ctx.options or TrainOptions()
        opts = self.options
        device = get_device(opts.device)
        # `accelerate launch --use_fsdp` asks for sharding: the engine shards itself (below),
        # so accelerate must not build its own FSDP plugin from the environment
        saved = os.environ.pop("ACCELERATE_USE_FSDP", None)
        try:
            self.accel = Accelerator(cpu=device.type == "cpu", mixed_precision="no")
        finally:
            if saved is not None:
                os.environ["ACCELERATE_USE_FSDP"] = saved
        use_fsdp = (saved or "").lower() in ("true", "1")
        self.device = self.accel.device if device.type != "mps" else device
        self.rank, self.world = self.accel.process_index, self.accel.num_processes
        self.main = self.accel.is_main_process
        precision = opts.precision
        if precision == "fp32" and os.environ.get("ACCELERATE_MIXED_PRECISION") in ("bf16", "fp16"):
            precision = os.environ["ACCELERATE_MIXED_PRECISION"]  # `accelerate launch --mixed_precision`
        self.precision = precision
        self.strategy = "fsdp" if use_fsdp else opts.strategy
        self.amp_dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
        self.out_dir = Path(ctx.out_dir)
        self.resume_from = ckpt.resolve_resume(opts.resume) if opts.resume else None
        if self.world > 1 and not dist.world() > 1:
            raise ZooError("accelerate reports several processes but no process group is initialised")

    # ---- setup ----
    def autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def setup(self) -> None:
        task, opts = self.task, self.options
        task.accelerator = self.accel  # type: ignore[attr-defined]
        # fresh run: same seed as a single process on rank 0, distinct noise on the others
        torch.manual_seed(self.ctx.seed + 1_000 * self.rank)
        if opts.grad_checkpointing and not task.enable_grad_checkpointing():
            warnings.warn(f"method {self.ctx.method!r} does not support --grad-checkpointing; training without it", stacklevel=3)
        if opts.sync_batchnorm and self.world > 1:
            if self.device.type == "cuda":
                task.model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(task.model)
            else:
                warnings.warn("--sync-batchnorm needs CUDA; BatchNorm statistics stay per process", stacklevel=3)
        task.to(self.device)
        dist.broadcast_module(task.model)  # every process starts from rank 0's weights
        self.roots: list[torch.nn.Module] = []
        self.sharded = self.strategy == "fsdp" and self.world > 1
        if self.strategy == "fsdp" and self.world == 1:
            warnings.warn("--strategy fsdp with one process: nothing to shard; training unsharded", stacklevel=3)
        if self.sharded:
            roots = task.fsdp_roots()
            if not roots:
                raise ZooError(f"method {self.ctx.method!r} cannot be trained with --strategy fsdp (its task shards nothing); use --strategy ddp")
            self.roots = fsdp.shard(roots, task.model, self.device, self.world)
        self.optimizers = task.optimizers()
        self.phases = task.phases()
        for ph in self.phases:
            if ph.optimizer not in self.optimizers:
                raise ValueError(f"phase uses optimizer {ph.optimizer!r}, task has {sorted(self.optimizers)}")
            if ph.every < 1:
                raise ValueError("Phase.every must be at least 1")
        self.schedulers = task.schedulers() or {}
        for name in self.schedulers:
            if name not in self.optimizers:
                raise ValueError(f"scheduler for unknown optimizer {name!r}; task has {sorted(self.optimizers)}")
        self.params = {name: [p for g in opt.param_groups for p in g["params"]] for name, opt in self.optimizers.items()}
        self.scalers = {name: _grad_scaler(self.device, self.precision == "fp16", self.sharded) for name in self.optimizers}
        self.ema = EMA(task.model, task.ema_decay) if task.ema_decay > 0 else None
        self.step, self.samples_seen, self.nonfinite_streak = 0, 0, 0
        self.micro = 0  # samples per forward pass; set from the batch split when the loop starts
        self.memory_limit = memory.simulated_limit(opts.simulated_memory_limit)
        self.best: dict[str, Any] = {}
        self.log = watch.RunLog(self.out_dir, enabled=self.main, tensorboard=opts.tensorboard)
        if self.main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            ckpt.clean_temporaries(self.out_dir)
        if self.resume_from is not None:
            self.load(self.resume_from)
        self.accel.wait_for_everyone()

    # ---- checkpoint state ----
    def training_state(self) -> dict[str, Any]:
        """The whole training state with full tensors (collective: every process calls it;
        under FSDP it gathers the shards)."""
        rng = dist.gather_objects(ckpt.rng_state())
        state = {
            "format": 1,
            "step": self.step,
            "samples_seen": self.samples_seen,
            "batch_size": self.ctx.batch_size,
            "world_size": self.world,
            "seed": self.ctx.seed,
            "method": self.ctx.method,
            "nonfinite_streak": self.nonfinite_streak,
            "best": self.best,
            "model": {k: v for k, v in self.task.model.state_dict().items()},
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "optimizers": {n: o.state_dict() for n, o in self.optimizers.items()},
            "schedulers": {n: s.state_dict() for n, s in self.schedulers.items()},
            "scalers": {n: s.state_dict() for n, s in self.scalers.items()},
            "rng": rng,
            "extra": self.task.extra_state() or {},
            "strategy": "fsdp" if self.sharded else "ddp",
        }
        return fsdp.gather(state, keep=self.main) if self.sharded else state

    def load(self, path: Path) -> None:
        st = ckpt.read_state(path)
        if st.get("method") != self.ctx.method:
            raise ZooError(f"--resume {path}: a checkpoint of method {st.get('method')!r}, not {self.ctx.method!r}")
        from zoo.checkpoint import load_state_strict

        model_state = st["model"]
        if self.sharded:  # checkpoints hold full tensors: cut this process's shards
            model_state = fsdp.shard_state(model_state, self.task.model.state_dict())
        load_state_strict(self.task.model, model_state, what=f"--resume {path}")
        if (self.ema is None) != (st["ema"] is None):
            raise ZooError(f"--resume {path}: the checkpoint {'has' if st['ema'] is not None else 'has no'} EMA but the task {'has' if self.ema else 'has no'} ema_decay")
        if self.ema is not None:
            self.ema.load_state_dict(fsdp.shard_state(st["ema"], self.ema.shadow) if self.sharded else st["ema"])
        for name, opt in self.optimizers.items():
            if name not in st["optimizers"]:
                raise ZooError(f"--resume {path}: no state for optimizer {name!r} (has {sorted(st['optimizers'])})")
            opt.load_state_dict(st["optimizers"][name])
            if self.sharded:
                fsdp.shard_optimizer_state(opt)
        for name, sched in self.schedulers.items():
            if name in st["schedulers"]:
                sched.load_state_dict(st["schedulers"][name])
        for name, scaler in self.scalers.items():
            saved = st["scalers"].get(name) or {}
            if saved and scaler.is_enabled():
                scaler.load_state_dict(saved)
        self.task.load_extra_state(st.get("extra") or {})
        self.step = int(st["step"])
        self.samples_seen = int(st["samples_seen"])
        self.nonfinite_streak = int(st.get("nonfinite_streak", 0))
        self.best = st.get("best") or {}
        rngs = st.get("rng") or []
        if self.rank < len(rngs) and st.get("world_size") == self.world:
            ckpt.set_rng_state(rngs[self.rank])
        else:  # other process count: RNG streams cannot continue exactly; reseed deterministically
            torch.manual_seed(self.ctx.seed + 1_000 * self.rank + 7 * self.step)
        self.log.write({"event": "resume", "step": self.step, "from": str(path), "samples_seen": self.samples_seen})

    def export(self) -> dict[str, torch.Tensor]:
        """The weights the checkpoint holds (EMA if kept), full tensors on the CPU
        (collective under FSDP, where only process 0 gets the tensors)."""
        return export_state(self.task, self.ema, self.sharded, keep=self.main)

    def exported(self, state: dict[str, Any]) -> dict[str, torch.Tensor]:
        """What :meth:`export` returns, taken from an already gathered training state."""
        return self.ema.apply_to(state["model"], state["ema"]) if self.ema is not None else state["model"]

    def export_meta(self, provenance: dict[str, Any] | None = None) -> dict[str, str]:
        """Zoo checkpoint metadata for the exported weights (minimal for a method that is
        not registered, e.g. a benchmark's or a test's task)."""
        from zoo import __version__
        from zoo.checkpoint import CheckpointMeta
        from zoo.config import config_to_dict

        prov = {"kind": "trained", "data": self.ctx.data_name, "seed": self.ctx.seed, **(provenance or {})}
        try:
            from zoo.runner import checkpoint_meta

            meta = checkpoint_meta(self.ctx.method, self.ctx.config, self.ctx.preset, self.step, prov)
        except ZooError:
            try:
                config = config_to_dict(self.ctx.config)
            except Exception:  # noqa: BLE001 - not a dataclass
                config = {}
            meta = CheckpointMeta(method=self.ctx.method, config=config, preset=self.ctx.preset, step=self.step, provenance=prov)
        meta.zoo_version = __version__
        return meta.to_metadata()

    def save(self, reason: str) -> Path | None:
        """Checkpoint now (all processes take part; the main process writes)."""
        state = self.training_state()  # collective: gathers RNG states (and FSDP shards, to process 0)
        if self.sharded:  # the weights are in the gathered state already (process 0 only)
            weights = self.exported(state) if self.main else {}
        else:
            weights = self.export()
        # every process of plain data parallelism must hold the same weights; FSDP shards
        # differ by design and are gathered from all processes above
        digests = dist.gather_objects(dist.weights_digest(self.task.model)) if self.world > 1 and not self.sharded else None
        path = None
        if self.main:
            path = ckpt.write_checkpoint(self.out_dir, self.step, state, weights, self.export_meta())
            removed = ckpt.prune(self.out_dir, self.options.keep_last)
            record: dict[str, Any] = {"event": "checkpoint", "step": self.step, "path": str(path), "reason": reason}
            if removed:
                record["removed"] = [p.name for p in removed]
            if digests is not None:
                record["rank_digests"] = digests
            self.log.write(record)
        if digests is not None and len(set(digests)) != 1:
            raise RuntimeError(f"processes hold different weights at step {self.step}: {digests}")
        self.accel.wait_for_everyone()
        return path

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
    def run(self) -> TrainResult:
        self.setup()
        ctx, opts, task = self.ctx, self.options, self.task
        if self.step >= ctx.steps:
            self.log.write({"event": "done", "step": self.step, "note": "nothing to do: the checkpoint is at or past --steps"})
            self.log.close()
            return TrainResult(state_dict=self.export(), step=self.step, metrics={})
        if ctx.batch_size % self.world:
            raise ZooError(f"--batch-size {ctx.batch_size} is not divisible by the {self.world} processes")
        share = ctx.batch_size // self.world
        samples = TrainSamples(ctx.data, ctx.masks, ctx.seed)
        # the first position of this run's first step; later steps follow in order
        loader = torch.utils.data.DataLoader(
            samples,
            batch_size=share,
            sampler=_Positions(self.samples_seen, ctx.batch_size, self.rank, share),
            num_workers=opts.num_workers,
            generator=torch.Generator().manual_seed(ctx.seed),  # never draw from the global RNG
        )
        data = iter(loader)
        chunk = next(data)
        micro, accum = self.resolve_micro(chunk)
        self.micro = micro
        self.log.write(
            {
                "event": "start",
                "step": self.step,
                "steps": ctx.steps,
                "batch_size": ctx.batch_size,
                "processes": self.world,
                "micro_batch": micro,
                "accum": accum,
                "precision": self.precision,
                "device": str(self.device),
                "grad_checkpointing": opts.grad_checkpointing,
                "strategy": "fsdp" if self.sharded else "ddp",
            }
        )
        val_batch = None
        validator = None
        # validation runs the model: on the main process, or on all of them when the
        # weights are sharded (each forward gathers from every process)
        if (self.main or self.sharded) and (opts.val_every or opts.sample_every):
            val_data = getattr(ctx, "val_data", None) or ctx.data
            val_batch = watch.validation_batch(val_data, ctx.masks, ctx.seed, opts.val_size)
            validator = watch.Validator([m.strip() for m in opts.val_metrics.split(",")]) if opts.val_every and self.main else None

        logs: dict[str, float] = {}
        bar = tqdm(total=ctx.steps, initial=self.step, desc=f"train {ctx.method}", disable=not (opts.progress and self.main), dynamic_ncols=True)
        task.model.train()
        stopped: Interrupted | None = None
        with _StopFlag(opts.handle_signals) as stop:
            try:
                while self.step < ctx.steps:
                    if chunk is None:
                        chunk = next(data)
                    with self.oom_stops():
                        logs, skipped = self.train_step(chunk)
                    chunk = None
                    self.step += 1
                    self.samples_seen += ctx.batch_size
                    with self.oom_stops():
                        self.after_step(logs, skipped, bar)
                        if val_batch is not None:
                            self.watch(val_batch, validator)
                    if dist.any_true(bool(stop.signum), self.device):
                        stopped = self.interrupted(stop.signum or signal.SIGTERM)
                        break
                    if opts.save_every and self.step % opts.save_every == 0 and self.step < ctx.steps:
                        with self.oom_stops():
                            self.save("every")
                if stopped is None:
                    with self.oom_stops():
                        self.save("end")
                    self.log.write({"event": "done", "step": self.step})
            finally:
                bar.close()
                self.log.close()
        if stopped is not None:
            raise stopped
        task.model.eval()
        return TrainResult(state_dict=self.export(), step=self.step, metrics=logs)

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

    def after_step(self, logs: dict[str, float], skipped: list[str], bar) -> None:
        opts = self.options
        if skipped:
            self.nonfinite_streak += 1
            msg = f"step {self.step}: NaN/Inf loss in phase(s) {', '.join(skipped)}; update skipped ({self.nonfinite_streak} in a row)"
            if self.main:
                warnings.warn(msg, stacklevel=2)
            self.log.write({"event": "nonfinite", "step": self.step, "phases": skipped, "in_a_row": self.nonfinite_streak})
            if self.nonfinite_streak >= opts.max_nonfinite:
                last = ckpt.list_checkpoints(self.out_dir)
                where = f"; last good checkpoint: {last[-1]}" if last else ""
                raise ZooError(f"the loss was NaN/Inf for {self.nonfinite_streak} steps in a row (step {self.step}); stopped{where}. Try a lower learning rate, --grad-clip or --precision fp32")
        else:
            self.nonfinite_streak = 0
        if self.ema is not None:
            self.ema.update(self.task.model)
        dist.broadcast_module(self.task.model, buffers_only=True)
        bar.update(1)
        if logs:
            bar.set_postfix({k: f"{v:.4g}" for k, v in logs.items() if "/" not in k})
        if self.step % opts.log_every == 0 or self.step == self.ctx.steps:
            logs = dist.mean_over_processes(logs, self.device)
            record: dict[str, Any] = {"step": self.step, **{k: round(v, 6) for k, v in logs.items()}}
            for name, opt in self.optimizers.items():
                record[f"lr/{name}"] = opt.param_groups[0]["lr"]
            rate = bar.format_dict.get("rate")
            if rate:
                record["it_s"] = round(rate, 3)
            self.log.write(record)

    # ---- validation, sample grids, best checkpoint ----
    def sample_fn(self):
        def fn(images, masks, generator):
            out = self.task.validation_sample(images, masks, generator)
            if out is not None:
                return out
            from zoo.runner import inpaint

            return inpaint(self.ctx.method, self.task.model, self.ctx.config, images, masks, generator)[0]

        return fn

    def watch(self, val_batch: dict[str, torch.Tensor], validator) -> None:
        opts = self.options
        do_val = bool(opts.val_every) and self.step % opts.val_every == 0
        do_grid = bool(opts.sample_every) and self.step % opts.sample_every == 0
        if not (do_val or do_grid):
            return
        rng = ckpt.rng_state()  # a sampler drawing from the global RNG must not change training
        with self.ema_weights():
            pred = watch.predict(self.task.model, self.sample_fn(), val_batch, self.device, self.ctx.seed)
        ckpt.set_rng_state(rng)
        if do_grid and self.main:
            watch.save_grid(self.out_dir / "samples" / f"{ckpt.checkpoint_name(self.step)}.png", val_batch, pred)
        if not do_val:
            return
        values = best_is_higher = None
        if validator is not None:  # main process
            values = validator(pred, val_batch["image"], val_batch["mask"])
            best_is_higher = validator.higher_is_better(opts.best_metric) if opts.best_metric in values else None
            self.log.write({"event": "val", "step": self.step, **{k: round(v, 6) for k, v in values.items()}})
        if self.sharded:  # every process takes part in gathering the best weights
            values, best_is_higher = dist.broadcast_object((values, best_is_higher))
        name = opts.best_metric
        if values is None or name not in values:
            return
        old = self.best.get("value")
        if old is None or (values[name] > old if best_is_higher else values[name] < old):
            self.best = {"metric": name, "value": values[name], "step": self.step}
            weights = self.export()  # collective under FSDP
            if self.main:
                from zoo.fsutil import atomic_path, write_text
                from safetensors.torch import save_file
                import json

                with atomic_path(self.out_dir / "best.safetensors") as tmp:
                    save_file({k: v.contiguous().clone() for k, v in weights.items()}, str(tmp), metadata=self.export_meta({"best": self.best}))
                write_text(self.out_dir / "best.json", json.dumps(self.best, indent=2))

    @contextlib.contextmanager
    def ema_weights(self):
        """Temporarily load the EMA weights into the model (no-op without EMA)."""
        if self.ema is None:
            yield
            return
        model = self.task.model
        backup = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.load_state_dict(self.ema.apply_to(backup))
        try:
            yield
        finally:
            model.load_state_dict(backup)

    def interrupted(self, signum: int) -> Interrupted:
        name = signal.Signals(signum).name
        path = self.save(name)
        self.log.write({"event": "interrupted", "step": self.step, "signal": name})
        where = f"; checkpoint {path}" if path else ""
        return Interrupted(f"{name} at step {self.step}{where}; continue with --resume {self.out_dir}", signum, path)


def _grad_scaler(device: torch.device, enabled: bool, sharded: bool = False):
    if sharded and enabled:  # agrees on inf/NaN across the processes' gradient shards
        from torch.distributed.fsdp.sharded_grad_scaler import ShardedGradScaler

        return ShardedGradScaler(device.type, enabled=True)
    try:
        return torch.amp.GradScaler(device.type, enabled=enabled)
    except (AttributeError, TypeError, RuntimeError):  # older torch
        return torch.cuda.amp.GradScaler(enabled=enabled and device.type == "cuda")


def export_state(task: TrainTask, ema: EMA | None, sharded: bool = False, keep: bool = True) -> dict[str, torch.Tensor]:
    state = {k: v.detach().cpu() if not sharded else v for k, v in task.model.state_dict().items()}
    if sharded:
        state = fsdp.gather(state, keep)
        shadow = fsdp.gather(ema.shadow, keep) if ema is not None else None
        if not keep:
            return {}
        return ema.apply_to(state, shadow) if ema is not None else state
    return ema.apply_to(state) if ema is not None else state


def options_dict(options: TrainOptions) -> dict[str, Any]:
    return asdict(options)


__all__ = ["TrainOptions", "TrainTask", "Phase", "fit", "EMA", "TrainSamples", "split_batch", "Interrupted", "enable_grad_checkpointing"]
