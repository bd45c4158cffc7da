"""``zoo train METHOD --data DATA ...``"""

from __future__ import annotations

import os
import sys

import click

from zoo_cli.options import device_option, set_option


@click.command("train")
@click.argument("method")
@click.option("--data", default=None, help="A folder of images or a registered dataset name (e.g. shapes); with --resume: the run's.")
@click.option("--preset", default=None, help="Named preset (see `zoo info METHOD`).")
@set_option
@click.option("--steps", type=int, default=None, help="Optimizer steps (default: the preset's; with --resume: the run's, or more to extend it). Not with --time-budget.")
@click.option(
    "--time-budget", "time_budget", default=None, metavar="DURATION",
    help="Train until this wall-clock time is spent (90s, 15m, 2h, 1h30m), then save a normal checkpoint, whatever the step count; "
    "giving --steps too is refused. The LR schedule is laid out over the steps the budget is expected to allow. --resume continues with what is left.",
)
@click.option("--budget-clock", type=click.Choice(["wall", "cpu"]), default=None,
              help="What --time-budget counts: wall-clock seconds (default) or the CPU seconds of the training process "
              "(with OMP_NUM_THREADS=1: CPU-minutes, unchanged by other load on the machine).")
@click.option("--batch-size", type=int, default=None, help="GLOBAL batch size over all processes and micro-batches (default: the preset's).")
@click.option("--seed", type=int, default=None, help="Seed for every random choice [default: 0].")
@click.option("--out", "out_dir", default=None, help="Run folder (default: runs/METHOD-PRESET; with --resume: the run's).")
@click.option("--masks", default=None, help="Training mask kind (default: the method's own mixture).")
@click.option("--precision", type=click.Choice(["fp32", "bf16", "fp16"]), default="fp32", show_default=True, help="Mixed precision; fp16 uses loss scaling.")
@click.option("--grad-accum", type=int, default=1, show_default=True, help="Micro-batches per optimizer step.")
@click.option("--micro-batch", default=None, help="Samples per forward pass (the rest is accumulated), or 'auto': the largest that fits in memory.")
@click.option("--grad-clip", type=float, default=0.0, show_default=True, help="Max gradient norm per optimizer; 0 = off.")
@click.option("--grad-checkpointing", is_flag=True, help="Trade compute for memory in models that support it.")
@click.option("--save-every", type=int, default=0, show_default=True, help="Checkpoint every N steps (and at the end); 0 = at the end only.")
@click.option("--keep-last", type=int, default=3, show_default=True, help="Checkpoints kept; 0 = all.")
@click.option("--resume", default=None, help="Continue a run: its folder (newest checkpoint) or one checkpoint folder.")
@click.option("--overwrite", is_flag=True, help="Replace the run already in --out (its checkpoints too); without it an existing run folder is refused.")
@click.option(
    "--init", "init", default=None, metavar="CKPT",
    help="Start a NEW run (step 0, fresh optimizers) from the weights of a zoo checkpoint of this method (trained or `zoo import`ed); its config unless --preset/--set change what keeps the shapes.",
)
@click.option("--val-every", type=int, default=0, show_default=True, help="Validation metrics every N steps; 0 = off.")
@click.option("--val-size", type=int, default=8, show_default=True, help="Images in the fixed validation set.")
@click.option("--val-metrics", default="psnr,l1-hole", show_default=True, help="Comma-separated metrics (lpips, fid when available).")
@click.option("--best-metric", default="psnr", show_default=True, help="RUN/best.safetensors keeps the best value of this metric.")
@click.option("--sample-every", type=int, default=0, show_default=True, help="Sample grid PNG every N steps; 0 = off.")
@click.option("--log-every", type=int, default=1, show_default=True, help="JSONL/TensorBoard record every N steps.")
@click.option("--max-nonfinite", type=int, default=5, show_default=True, help="Stop after this many NaN/Inf steps in a row.")
@click.option("--devices", type=int, default=1, show_default=True, help="Data-parallel processes on this machine (GPUs, or gloo processes with --device cpu).")
@click.option(
    "--strategy",
    type=click.Choice(["ddp", "fsdp"]),
    default="ddp",
    show_default=True,
    help="With several processes: ddp = each holds the whole model; fsdp = weights, gradients and optimizer state sharded over them.",
)
@click.option("--sync-batchnorm", is_flag=True, help="Synchronise BatchNorm statistics across GPUs.")
@click.option("--no-tensorboard", is_flag=True, help="Do not write RUN/tb even if tensorboard is installed.")
@click.option("--workers", type=int, default=0, show_default=True, help="Data-loading worker processes.")
@device_option
def train_cmd(
    method, data, preset, set_items, steps, time_budget, budget_clock, batch_size, seed, out_dir, masks, precision, grad_accum, micro_batch, grad_clip,
    grad_checkpointing, save_every, keep_last, resume, overwrite, init, val_every, val_size, val_metrics, best_metric, sample_every, log_every,
    max_nonfinite, devices, strategy, sync_batchnorm, no_tensorboard, workers, device,
) -> None:  # fmt: skip
    """Train METHOD; writes RUN/model.safetensors (a self-describing checkpoint),
    RUN/checkpoints/step_N/ (resumable), RUN/log.jsonl and RUN/run.json."""
    from zoo import runner
    from zoo.config import parse_duration, parse_set_options
    from zoo.errors import ZooError
    from zoo.plugins import get_manager
    from zoo.train import Interrupted, TrainOptions
    from zoo.train import budget, launch
    from zoo.device import check_devices
    from zoo.train.rundir import check_run_dir

    try:
        budget_s = parse_duration(time_budget) if time_budget is not None else None
    except ZooError as exc:
        raise ZooError(f"--time-budget: {exc}") from None
    if budget_s is not None and steps is not None:
        raise ZooError(budget.BUDGET_WITH_STEPS)
    spec = get_manager().method(method)
    if budget_clock is not None and budget_s is None and not resume:
        raise ZooError("--budget-clock says what --time-budget counts; give --time-budget too")
    options = TrainOptions(
        time_budget_s=budget_s,
        budget_clock=budget_clock,  # None: wall, or on --resume the run's clock
        device=device or os.environ.get("ZOO_DEVICE") or "auto",
        precision=precision,
        grad_accum=grad_accum,
        micro_batch=micro_batch,
        grad_clip=grad_clip,
        grad_checkpointing=grad_checkpointing,
        save_every=save_every,
        keep_last=keep_last,
        resume=resume,
        init=init,
        val_every=val_every,
        val_size=val_size,
        val_metrics=val_metrics,
        best_metric=best_metric,
        sample_every=sample_every,
        log_every=log_every,
        max_nonfinite=max_nonfinite,
        sync_batchnorm=sync_batchnorm,
        strategy=strategy,
        tensorboard=not no_tensorboard,
        num_workers=workers,
    )
    if not resume:
        out_dir = out_dir or (f"runs/{method}-finetune" if init else f"runs/{method}-{preset or spec.default}")
        # never the data or --init, never an existing run without --overwrite (under a launcher only process 0 looks: the others may see its files)
        check_run_dir(out_dir, data, init, overwrite, existing=int(os.environ.get("RANK", "0")) == 0)
    elif overwrite:
        raise ZooError("--resume continues the run in its folder and --overwrite replaces a run; give one of them")
    kwargs = dict(
        method=method,
        data=data,
        preset=preset,
        overrides=parse_set_options(set_items),
        steps=steps,
        batch_size=batch_size,
        seed=seed,
        out_dir=out_dir,
        masks=masks,
        command=_command_line(click.get_current_context()),
        overwrite=overwrite,
    )
    check_devices(devices, options.device)  # above the GPUs, or the cores and memory of a CPU: one line before any process starts
    if devices > 1 and not launch.under_launcher():
        from pathlib import Path

        if out_dir is None:  # resuming: the run folder is the checkpoint's
            from zoo.train.state import resolve_resume, run_dir_of

            out_dir = run_dir_of(resolve_resume(resume))
        code = launch.launch(devices, kwargs, options, Path(out_dir))
        if code:
            sys.exit(code)
        return  # process 0 printed the checkpoint path
    try:
        path = runner.train(**kwargs, options=options)
    except Interrupted as exc:
        click.echo(f"Interrupted: {exc}", err=True)
        sys.exit(exc.exit_code)
    if int(os.environ.get("RANK", "0")) == 0:  # under `accelerate launch`: process 0 reports
        click.echo(f"checkpoint: {path}")


def _command_line(ctx: click.Context) -> list[str]:
    """The command as given, rebuilt from the parsed parameters (options left at their
    defaults are omitted), for RUN/run.json; the same in a shell and in-process."""
    from click.core import ParameterSource

    line = ["zoo", ctx.info_name or "train"]
    for param in ctx.command.params:
        value = ctx.params.get(param.name)
        if isinstance(param, click.Argument):
            line.append(str(value))
        elif ctx.get_parameter_source(param.name) in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT) and value is not None and value != ():
            flag = max(param.opts, key=len)
            if getattr(param, "is_flag", False):
                if value:  # a flag given as off records nothing
                    line.append(flag)
            else:
                for v in value if getattr(param, "multiple", False) else [value]:
                    line += [flag, str(v)]
    return line


COMMANDS = [train_cmd]
