"""``zoo compare --metric LIST --data DATA --masks KIND|DIR (--methods m1,m2 | --checkpoint CKPT...) --out DIR``"""

from __future__ import annotations

import click

from zoo_cli.options import eval_options

def warn_all(warnings) -> None:
    for w in warnings:
        click.echo(f"Warning: {w}", err=True)


@click.command("compare")
@click.option("--metric", "metric_list", required=True, help="Comma-separated metrics, e.g. fid,lpips,psnr (`zoo score --list-metrics` lists them).")
@click.option("--data", default=None, help="Dataset name (e.g. shapes) or image folder the eval set is drawn from.")
@click.option("--masks", required=True, help="Mask kind (box, center, ...), a folder of mask PNGs, or an eval-set folder.")
@click.option("--methods", default="", help="Comma-separated methods that need no checkpoint (classical baselines).")
@click.option("--checkpoint", "checkpoints", multiple=True, help="A zoo checkpoint; its method comes from its metadata (repeatable).")
@click.option("--out", "out_dir", required=True, help="Report folder (predictions are cached here; rerun to resume).")
@click.option("--set", "set_items", multiple=True, metavar="METHOD.KEY=VALUE", help="Sampling setting of one method, e.g. repaint.sampling=fast (repeatable).")
@eval_options
@click.option("--json", "as_json", is_flag=True, help="Print results.json instead of the table.")
@click.option("--devices", type=int, default=1, show_default=True, help="Processes the sampling is split over (gloo; report identical to one process). Across machines: accelerate launch ... -m zoo_cli.main compare ...")
def compare_cmd(metric_list, data, masks, methods, checkpoints, out_dir, set_items, count, size, seed, batch_size, fid_weights, fid_layer, bootstrap, device, as_json, devices) -> None:
    """Compare methods on one eval set: identical images, masks and seeds for all.

    Writes results.json, results.csv, report.md, plots/<metric>.png and grid.png into --out.
    """
    import sys

    from zoo.compare import resolve_entries, run_compare
    from zoo.config import parse_method_set_options
    from zoo.errors import ZooError
    from zoo.metrics import parse_metric_list

    specs = parse_metric_list(metric_list)
    if count < 1 or size < 8 or batch_size < 1:
        raise ZooError("--count and --batch-size must be at least 1, --size at least 8")
    overrides = parse_method_set_options(set_items)
    entries = resolve_entries([m.strip() for m in methods.split(",") if m.strip()], checkpoints, overrides)
    if devices < 1:
        raise ZooError("--devices must be at least 1")
    kwargs = dict(count=count, size=size, seed=seed, batch_size=batch_size, device=device, fid_weights=fid_weights, fid_layer=fid_layer,
                  bootstrap=bootstrap, command=sys.argv)
    from zoo.shard import launch_compare, run_world, world

    rank, size = world()
    if devices > 1 and size == 1:
        res = launch_compare(devices, entries, specs, out_dir, data, masks, **kwargs)
    elif size > 1:  # one of several processes that accelerate launch / torchrun started
        import dataclasses

        call = {"entries": [dataclasses.asdict(e) for e in entries], "metrics": [m.name for m in specs], "out_dir": out_dir, "data": data,
                "masks": masks, **kwargs}
        res = run_world("compare", call)
        if rank != 0:
            return  # process 0 reports for all
    else:
        res = run_compare(entries, specs, out_dir, data, masks, **kwargs)
    warn_all(res.warnings)
    if as_json:
        click.echo((res.out_dir / "results.json").read_text())
        return
    click.echo((res.out_dir / "report.md").read_text().split("\n## ")[0].rstrip())
    click.echo(f"\nwrote {res.out_dir}/results.json, results.csv, report.md, plots/, grid.png")


COMMANDS = [compare_cmd]
