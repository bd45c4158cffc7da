"""The training engine every learned plugin uses, built on Hugging Face accelerate.

A plugin describes *what* to optimise as a :class:`TrainTask`: the model the checkpoint
holds, its optimizers, and one :class:`Phase` per optimizer step (a loss function of a
batch). Single-loss diffusion training is one phase; GAN training is two (discriminator,
then generator), each with its own optimizer and learning rate, an R1 term every k steps
inside the discriminator's loss. The engine does the rest: data and masks, the global
batch split into micro-batches with gradient accumulation, mixed precision, clipping, EMA,
logging, progress and checkpoints.

The loop, per step::

    micro-batches = next K batches of (image, mask)         # K * micro = global batch
    for phase in task.phases():                              # e.g. [D, G] or [denoiser]
        if step % phase.every: continue
        zero the phase's optimizer
        for mb in micro-batches:  backward(phase.loss(mb, step) / K)
        clip, optimizer step
    update EMA; log; checkpoint every N steps
"""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from tqdm.auto import tqdm

from zoo.device import PRECISIONS, get_device
from zoo.errors import ZooError
from zoo.masks import make_mask
from zoo.spec import TrainContext, TrainResult

LossFn = Callable[[dict, int], "tuple[torch.Tensor, dict[str, float]]"]


@dataclass
class TrainOptions:
    """Engine settings, set from ``zoo train`` flags."""

    device: str = "auto"
    precision: str = "fp32"  # fp32 | bf16 | fp16 (fp16 uses loss scaling)
    grad_accum: int = 1  # micro-batches per optimizer step; the global batch is split evenly
    micro_batch: int | None = None  # explicit micro-batch size (overrides grad_accum)
    grad_clip: float = 0.0  # max global grad norm per phase; 0 = off
    grad_checkpointing: bool = False  # passed to models that support it
    save_every: int = 0  # write a checkpoint every N steps; 0 = only at the end
    log_every: int = 1
    num_workers: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ZooError(f"unknown precision {self.precision!r}; valid choices: {', '.join(PRECISIONS)}")
        if self.grad_accum < 1:
            raise ZooError("--grad-accum must be at least 1")


@dataclass
class Phase:
    """One optimizer step per training step: ``loss(batch, step) -> (loss, logs)``."""

    optimizer: str  # key in TrainTask.optimizers()
    loss: LossFn
    every: int = 1  # run on steps where step % every == 0


class TrainTask:
    """What a plugin gives the engine. Subclass and fill in.

    ``model`` is the module ``zoo_build_model`` builds (its ``state_dict`` is the
    checkpoint); losses call it (or its sub-modules) directly. ``ema_decay`` > 0 keeps an
    exponential moving average of the model's floating-point weights, which the exported
    checkpoint holds instead of the raw weights.
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


# -- data -------------------------------------------------------------------------------
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
    def __init__(self, start: int) -> None:
        self.start = start

    def __iter__(self) -> Iterator[int]:
        return itertools.count(self.start)


def batches(ctx: TrainContext, micro: int, start: int = 0, num_workers: int = 0) -> Iterator[dict]:
    samples = TrainSamples(ctx.data, ctx.masks, ctx.seed)
    loader = torch.utils.data.DataLoader(samples, batch_size=micro, sampler=_Positions(start), num_workers=num_workers)
    return iter(loader)


# -- EMA --------------------------------------------------------------------------------
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

    def apply_to(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: (self.shadow[k].to(v.dtype) if k in self.shadow else v) for k, v in state.items()}


# -- the loop ---------------------------------------------------------------------------
def split_batch(batch_size: int, options: TrainOptions) -> tuple[int, int]:
    """Global batch -> (micro-batch size, micro-batches per step)."""
    if options.micro_batch:
        micro = min(int(options.micro_batch), batch_size)
        if batch_size % micro:
            raise ZooError(f"--batch-size {batch_size} is not a multiple of the micro-batch {micro}")
        return micro, batch_size // micro
    if batch_size % options.grad_accum:
        raise ZooError(f"--batch-size {batch_size} is not divisible by --grad-accum {options.grad_accum}")
    return batch_size // options.grad_accum, options.grad_accum


def fit(task: TrainTask, ctx: TrainContext) -> TrainResult:
    """Run ``ctx.steps`` optimizer steps of ``task``; return the exported weights."""
    from accelerate import Accelerator

    options: TrainOptions = ctx.options or TrainOptions()
    device = get_device(options.device)
    torch.manual_seed(ctx.seed)
    accel = Accelerator(
        cpu=device.type == "cpu",
        mixed_precision={"fp32": "no", "bf16": "bf16", "fp16": "fp16"}[options.precision],
    )
    task.to(accel.device)
    optimizers = task.optimizers()
    phases = task.phases()
    for ph in phases:
        if ph.optimizer not in optimizers:
            raise ValueError(f"phase uses optimizer {ph.optimizer!r}, task has {sorted(optimizers)}")
    prepared = {name: accel.prepare_optimizer(opt) for name, opt in optimizers.items()}
    ema = EMA(task.model, task.ema_decay) if task.ema_decay > 0 else None

    micro, k = split_batch(ctx.batch_size, options)
    data = batches(ctx, micro, num_workers=options.num_workers)
    out_dir = Path(ctx.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    log_path = out_dir / "log.jsonl"
    logs: dict[str, float] = {}
    bar = tqdm(range(ctx.steps), desc=f"train {ctx.method}", disable=not options.progress, dynamic_ncols=True)
    task.model.train()
    start = time.time()
    for step in bar:
        mbs = [{key: val.to(accel.device) for key, val in next(data).items()} for _ in range(k)]
        logs = {}
        for ph in phases:
            if step % ph.every:
                continue
            opt = prepared[ph.optimizer]
            opt.zero_grad(set_to_none=True)
            for mb in mbs:
                with accel.autocast():
                    loss, parts = ph.loss(mb, step)
                accel.backward(loss / k)
                for name, value in parts.items():
                    logs[name] = logs.get(name, 0.0) + float(value) / k
            if options.grad_clip > 0:
                params = [p for group in opt.param_groups for p in group["params"]]
                accel.clip_grad_norm_(params, options.grad_clip)
            opt.step()
        if ema is not None:
            ema.update(task.model)
        if step % options.log_every == 0 or step == ctx.steps - 1:
            record = {"step": step + 1, "time": round(time.time() - start, 3), **{k2: round(v, 6) for k2, v in logs.items()}}
            with open(log_path, "a") as fh:
                fh.write(json.dumps(record) + "\n")
            bar.set_postfix({k2: f"{v:.4g}" for k2, v in logs.items()})
        if options.save_every and (step + 1) % options.save_every == 0 and step + 1 < ctx.steps:
            _save(ctx, export_state(task, ema), step + 1, out_dir / "checkpoints" / f"step_{step + 1:07d}.safetensors")
    task.model.eval()
    return TrainResult(state_dict=export_state(task, ema), step=ctx.steps, metrics=logs)


def export_state(task: TrainTask, ema: EMA | None) -> dict[str, torch.Tensor]:
    state = {k: v.detach().cpu() for k, v in task.model.state_dict().items()}
    return ema.apply_to(state) if ema is not None else state


def _save(ctx: TrainContext, state: dict[str, torch.Tensor], step: int, path: Path) -> None:
    from zoo.runner import checkpoint_meta
    from zoo.checkpoint import save_checkpoint

    save_checkpoint(path, state, checkpoint_meta(ctx.method, ctx.config, ctx.preset, step, {"kind": "trained", "data": ctx.data_name}))


def options_dict(options: TrainOptions) -> dict[str, Any]:
    return asdict(options)


__all__ = ["TrainOptions", "TrainTask", "Phase", "fit", "EMA", "TrainSamples", "split_batch"]
