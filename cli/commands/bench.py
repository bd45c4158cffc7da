"""``zoo bench [METHOD...]`` and ``zoo demo``."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("bench")
@click.argument("methods", nargs=-1)
@click.option("--preset", default=None, help="Preset of every method (default: tiny where a method has it, else its default).")
@click.option("--resolution", type=int, default=None, help="Image side in pixels (default: the preset's resolution).")
@click.option("--batch-size", type=int, default=1, show_default=True, help="Images per sampler call.")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda[:N], mps or auto.")
@click.option("--precision", type=click.Choice(["fp32", "bf16", "fp16"]), default="fp32", show_default=True, help="Autocast precision of sampling (and of --train's engine step).")
@click.option("--warmup", type=int, default=1, show_default=True, help="Untimed sampler calls first.")
@click.option("--repeats", type=int, default=3, show_default=True, help="Timed sampler calls (median, min, max); also timed training steps.")
@click.option("--train", "with_train", is_flag=True, help="Also time the engine's training step and its peak memory.")
@click.option("--grad-checkpointing", is_flag=True, help="--train: the engine's gradient checkpointing, as zoo train --grad-checkpointing.")
@click.option("--micro-batch", default=None, help="--train: samples per forward pass (N or auto), as zoo train --micro-batch.")
@click.option("--no-flops", is_flag=True, help="Skip the FLOP count (one extra sampler call).")
@click.option("--set", "set_items", multiple=True, metavar="METHOD.KEY=VALUE", help="Config value of one method, e.g. repaint.sampling=fast (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print the JSON document instead of the table.")
@click.option("--out", "out_file", default=None, help="Also write the JSON document to this file (a new one, unless --overwrite).")
@click.option("--overwrite", is_flag=True, help="Replace an existing --out file.")
def bench_cmd(methods, preset, resolution, batch_size, device, precision, warmup, repeats, with_train, grad_checkpointing, micro_batch, no_flops, set_items, as_json, out_file, overwrite) -> None:
    """Sampling (and with --train, training) cost of METHOD... (default: every method in `zoo list`).

    Latency per image, images/s, network calls per image (nfe), s per call, parameters,
    GFLOPs (FlopCounterMode), peak memory; see zoo/bench.py for how each is measured."""
    import json

    from zoo.bench import BenchSettings, bench, table
    from zoo.fsutil import check_output_file, write_text

    if out_file:  # before the (long) measurements: a folder, an existing file without --overwrite
        check_output_file(out_file, {}, overwrite, example="bench.json")
    settings = BenchSettings(preset=preset, resolution=resolution, batch_size=batch_size, device=device, precision=precision,
                             warmup=warmup, repeats=repeats, train=with_train, flops=not no_flops, grad_checkpointing=grad_checkpointing,
                             micro_batch=micro_batch)
    import contextlib
    import sys

    from zoo.config import parse_method_set_options

    overrides = parse_method_set_options(set_items)
    # what methods print while they run goes to stderr: stdout holds only the table or the JSON
    with contextlib.redirect_stdout(sys.stderr):
        doc = bench(list(methods), settings, progress=not as_json, overrides=overrides)
    text = json.dumps(doc, indent=1, default=str)
    if out_file:
        Path(out_file).parent.mkdir(parents=True, exist_ok=True)
        write_text(Path(out_file), text + "\n")
    if as_json:
        click.echo(text)
    else:
        click.echo(table(doc))
        click.echo(f"\nmemory: {doc['memory_method']}\nflops: {doc['flops_method']}")
    for r in doc["results"]:
        if not r["ok"]:
            click.echo(f"Warning: {r['method']} failed: {r['error']}", err=True)
        elif (r.get("train") or {}).get("error"):
            click.echo(f"Warning: {r['method']} training step failed: {r['train']['error']}", err=True)


@click.command("demo")
@click.option("--out", "out_dir", default="zoo-demo", show_default=True, help="Folder for the runs, the report and README.md (rerun to resume).")
@click.option("--budget", type=click.Choice(["fast", "full"]), default="full", show_default=True, help="fast: seconds (a smoke test); full: the demo (minutes on a CPU).")
def demo_cmd(out_dir, budget) -> None:
    """Train every built-in method's tiny preset on `shapes` and compare them (nothing downloaded)."""
    from tqdm.auto import tqdm

    from zoo.demo import run_demo

    run_demo(out_dir, budget, progress=True, say=lambda line: tqdm.write(line))


COMMANDS = [bench_cmd, demo_cmd]
