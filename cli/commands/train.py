"""``zoo train METHOD --data DATA ...``"""

from __future__ import annotations

import sys

import click

from zoo_cli.options import device_option, seed_option, set_option


@click.command("train")
@click.argument("method")
@click.option("--data", required=True, help="A folder of images or a registered dataset name (e.g. shapes).")
@click.option("--preset", default=None, help="Named preset (see `zoo info METHOD`).")
@set_option
@click.option("--steps", type=int, default=None, help="Optimizer steps (default: the preset's).")
@click.option("--batch-size", type=int, default=None, help="Global batch size (default: the preset's).")
@seed_option
@click.option("--out", "out_dir", default=None, help="Run folder (default: runs/METHOD-PRESET).")
@click.option("--masks", default=None, help="Training mask kind (default: the method's own mixture).")
@click.option("--precision", type=click.Choice(["fp32", "bf16", "fp16"]), default="fp32", show_default=True)
@click.option("--grad-accum", type=int, default=1, show_default=True, help="Micro-batches per optimizer step.")
@click.option("--micro-batch", type=int, default=None, help="Micro-batch size (the rest is accumulated).")
@click.option("--grad-clip", type=float, default=0.0, show_default=True, help="Max gradient norm; 0 = off.")
@click.option("--grad-checkpointing", is_flag=True, help="Trade compute for memory in models that support it.")
@click.option("--save-every", type=int, default=0, show_default=True, help="Checkpoint every N steps; 0 = at the end only.")
@click.option("--workers", type=int, default=0, show_default=True, help="Data-loading worker processes.")
@device_option
def train_cmd(method, data, preset, set_items, steps, batch_size, seed, out_dir, masks, precision, grad_accum, micro_batch, grad_clip, grad_checkpointing, save_every, workers, device) -> None:
    """Train METHOD; writes RUN/model.safetensors (a self-describing checkpoint)."""
    from zoo import runner
    from zoo.config import parse_set_options
    from zoo.plugins import get_manager
    from zoo.train import TrainOptions

    spec = get_manager().method(method)
    options = TrainOptions(
        device=device or "auto",
        precision=precision,
        grad_accum=grad_accum,
        micro_batch=micro_batch,
        grad_clip=grad_clip,
        grad_checkpointing=grad_checkpointing,
        save_every=save_every,
        num_workers=workers,
    )
    out_dir = out_dir or f"runs/{method}-{preset or spec.default}"
    path = runner.train(
        method,
        data,
        preset=preset,
        overrides=parse_set_options(set_items),
        steps=steps,
        batch_size=batch_size,
        seed=seed,
        out_dir=out_dir,
        options=options,
        masks=masks,
        command=["zoo", *sys.argv[1:]],
    )
    click.echo(f"checkpoint: {path}")


COMMANDS = [train_cmd]
