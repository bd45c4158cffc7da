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
    update EMA; sync buffers; log; tell step listeners (zoo.train.events); validate;
    save every N steps; stop on SIGINT/SIGTERM

Losses call ``task.model`` (or its sub-modules) directly, also under data parallelism:
the engine averages the gradients of each phase's parameters itself (see
:mod:`zoo.train.dist` for why that is cleaner than wrapping the model in DDP).
"""


from __future__ import annotations

import os
import signal
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from zoo.device import get_device
from zoo.errors import ZooError, plain_warnings
from zoo.spec import TrainContext, TrainResult
from zoo.train import dist, events, fsdp, memory, state as ckpt, watch
from zoo.train.budget import BudgetClock
from zoo.train.checkpointing import CheckpointMixin
from zoo.train.ema import EMA, export_state
from zoo.train.init import load_init
from zoo.train.faults import FaultsMixin, _StopFlag
from zoo.train.samples import TrainSamples, _Positions, batches, split_batch
from zoo.train.steps import StepMixin, _grad_scaler
from zoo.train.task import Interrupted, LossFn, Phase, TrainOptions, TrainTask, enable_grad_checkpointing, options_dict
from zoo.train.validation import ValidationMixin


# -- fit ------------------------------------------------------------------------------------------
def fit(task: TrainTask, ctx: TrainContext) -> TrainResult:
    """Run optimizer steps of ``task`` until ``ctx.steps`` (or, with
    ``ctx.options.time_budget_s``, until that many wall-clock seconds are spent: see
    :mod:`zoo.train.budget`); return the exported weights.

    Resumes from ``ctx.options.resume`` when set. Raises :class:`Interrupted` (after
    saving) on SIGINT/SIGTERM and :class:`~zoo.errors.ZooError` after
    ``max_nonfinite`` steps in a row with a NaN/Inf loss."""
    return _Trainer(task, ctx).run()


class _Trainer(StepMixin, CheckpointMixin, ValidationMixin, FaultsMixin):
    """One run of :func:`fit`: setup, the step loop and what follows each step. The optimizer
    step is in :mod:`zoo.train.steps`, save/resume in :mod:`zoo.train.checkpointing`,
    validation in :mod:`zoo.train.validation`, faults in :mod:`zoo.train.faults`."""

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
        self.clock = BudgetClock(getattr(opts, "time_budget_s", None), getattr(opts, "budget_clock", None) or "wall")  # runs from the end of setup (BudgetClock.begin)
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
        if opts.init:  # a new run from a checkpoint's weights, before EMA, sharding and optimizers
            self.init_notes, init_average = load_init(task, opts.init, self.ctx.method)
            if self.main:
                for note in self.init_notes:
                    tqdm.write(f"Note: {note}", file=sys.stderr)
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
        # schedules read these lazily (TrainTask.schedule_steps); a budget fixes total_steps later
        task.planned_steps = task.total_steps = self.ctx.steps
        self.schedulers = task.schedulers() or {}
        for name in self.schedulers:
            if name not in self.optimizers:
                raise ValueError(f"scheduler for unknown optimizer {name!r}; task has {sorted(self.optimizers)}")
        self.params = {name: [p for g in opt.param_groups for p in g["params"]] for name, opt in self.optimizers.items()}
        self.scalers = {name: _grad_scaler(self.device, self.precision == "fp16", self.sharded) for name in self.optimizers}
        self.ema = EMA(task.model, task.ema_decay) if task.ema_decay > 0 else None
        if opts.init and self.ema is not None and init_average:  # the model starts from raw weights, the EMA from their average
            average = {k: v.float() for k, v in init_average.items() if k in self.ema.shadow}
            self.ema.load_state_dict(fsdp.shard_state(average, self.ema.shadow) if self.sharded else average)
        self.step, self.samples_seen, self.nonfinite_streak = 0, 0, 0
        self.micro = 0  # samples per forward pass; set from the batch split when the loop starts
        self.memory_limit = memory.simulated_limit(opts.simulated_memory_limit)
        self.best: dict[str, Any] = {}
        self.log = watch.RunLog(self.out_dir, enabled=self.main, tensorboard=opts.tensorboard)
        if self.main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            ckpt.clean_temporaries(self.out_dir)
        if opts.init:
            self.log.write({"event": "init", "step": 0, "from": str(opts.init), "notes": self.init_notes})
        if self.resume_from is not None:
            self.load(self.resume_from)
            if self.clock.expected:
                task.total_steps = self.clock.expected
        self.accel.wait_for_everyone()

    def run(self) -> TrainResult:
        self.setup()
        ctx, opts, task = self.ctx, self.options, self.task
        clock = self.clock
        clock.begin()  # data, steps, validation and checkpoints count; imports and setup do not
        if (self.step >= ctx.steps and not clock.active) or (clock.remaining() <= 0 and self.resume_from is not None):
            note = "the time budget is spent" if clock.active else "the checkpoint is at or past --steps"
            self.log.write({"event": "done", "step": self.step, "note": f"nothing to do: {note}", **clock.state()})
            self.log.close()
            return TrainResult(state_dict=self.export(), step=self.step, metrics={}, stages=[self.stage_record()])
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
            worker_init_fn=plain_warnings,  # a worker's warnings as `Warning: ...` lines, also when it was spawned
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
                **({"time_budget_s": clock.budget_s, "elapsed_s": round(clock.elapsed(), 3)} if clock.active else {}),
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
        bar = tqdm(total=self.target_steps(), initial=self.step, desc=f"train {ctx.method}", disable=not (opts.progress and self.main), dynamic_ncols=True)
        task.model.train()
        stopped: Interrupted | None = None
        with _StopFlag(opts.handle_signals) as stop:
            try:
                while clock.active or self.step < ctx.steps:
                    started = time.perf_counter()
                    if chunk is None:
                        chunk = next(data)
                    with self.oom_stops():
                        logs, skipped = self.train_step(chunk)
                    chunk = None
                    self.step += 1
                    self.samples_seen += ctx.batch_size
                    with self.oom_stops():
                        self.after_step(logs, skipped, bar)
                        if events.listening():
                            if self.device.type == "cuda":
                                torch.cuda.synchronize(self.device)
                            events.emit(events.StepEvent(ctx.method, self.step, self.target_steps(), self.out_dir, time.perf_counter() - started,
                                                         self.rank, dict(logs), tuple(skipped)))
                        if val_batch is not None:
                            self.watch(val_batch, validator)
                    if dist.any_true(bool(stop.signum), self.device):
                        stopped = self.interrupted(stop.signum or signal.SIGTERM)
                        break
                    if self.budget_step(bar):
                        break
                    if opts.save_every and self.step % opts.save_every == 0 and (clock.active or self.step < ctx.steps):
                        with self.oom_stops():
                            self.save("every")
                if stopped is None:
                    with self.oom_stops():
                        self.save("end")
                    self.log.write({"event": "done", "step": self.step, **clock.state()})
            finally:
                bar.close()
                self.log.close()
        if stopped is not None:
            raise stopped
        task.model.eval()
        return TrainResult(state_dict=self.export(), step=self.step, metrics=logs, stages=[self.stage_record()])

    # ---- --time-budget ----
    def target_steps(self) -> int:
        """The steps this run aims at: ``ctx.steps``, or under a budget the expected count
        once fixed (``ctx.steps`` until then)."""
        return self.clock.expected or self.ctx.steps if self.clock.active else self.ctx.steps

    def budget_step(self, bar) -> bool:
        """After each step: time it, fix the expected step count once (and lay the
        learning-rate schedule over it), and say whether the budget is spent (every
        process stops at the same step)."""
        clock = self.clock
        if not clock.active:
            return False
        expected = clock.tick(self.step)
        if expected is not None:  # every process fixes it at the same step: agree on the smallest
            expected = clock.expected = dist.min_int(expected, self.device)
            self.task.total_steps = max(expected, self.step)
            bar.total = expected
            bar.refresh()
            self.log.write({"event": "budget", "step": self.step, "sec_per_step": round(clock.sec_per_step or 0.0, 4),
                            "expected_steps": expected, "elapsed_s": round(clock.elapsed(), 3), "time_budget_s": clock.budget_s})
        return dist.any_true(clock.spent(), self.device)

    def stage_record(self) -> dict[str, Any]:
        """What RUN/run.json keeps of this fit call: steps reached and seconds spent."""
        return {"name": getattr(self.ctx, "stage", None) or "train", "steps": self.step, "seconds": round(self.clock.elapsed(), 3),
                "time_budget_s": self.clock.budget_s, "expected_steps": self.clock.expected}

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



__all__ = [
    "EMA", "Interrupted", "LossFn", "Phase", "TrainOptions", "TrainSamples", "TrainTask",
    "batches", "enable_grad_checkpointing", "export_state", "fit", "options_dict", "split_batch",
]  # fmt: skip
