"""``zoo compare --metric LIST --data DATA --masks KIND|DIR (--methods m1,m2 | --checkpoint CKPT...) --out DIR``"""

from __future__ import annotations

import click

from zoo_cli.options import device_option, seed_option

fid_weights_option = click.option(
    "--fid-weights", default=None, metavar="PATH",
    help="torch-fidelity Inception weights (.pth) for FID/KID/IS/IDS (default: $ZOO_FID_WEIGHTS, then the torch hub cache).",
)
fid_layer_option = click.option(
    "--fid-layer", type=click.Choice(["2048", "768", "192", "64"]), default="2048", show_default=True,
    help="Inception feature layer of FID/KID/IDS; 2048 is the standard.",
)
bootstrap_option = click.option(
    "--bootstrap", type=int, default=10, show_default=True,
    help="Bootstrap resamples for the CI of distribution metrics (0: none).",
)


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
@click.option("--count", type=int, default=100, show_default=True, help="Eval-set size.")
@click.option("--size", type=int, default=256, show_default=True, help="Eval-set resolution (square).")
@seed_option
@click.option("--batch-size", type=int, default=8, show_default=True)
@fid_weights_option
@fid_layer_option
@bootstrap_option
@device_option
@click.option("--json", "as_json", is_flag=True, help="Print results.json instead of the table.")
def compare_cmd(metric_list, data, masks, methods, checkpoints, out_dir, count, size, seed, batch_size, fid_weights, fid_layer, bootstrap, device, as_json) -> None:
    """Compare methods on one eval set: identical images, masks and seeds for all.

    Writes results.json, results.csv, report.md, plots/<metric>.png and grid.png into --out.
    """
    import sys

    from zoo.compare import resolve_entries, run_compare
    from zoo.errors import ZooError
    from zoo.metrics import parse_metric_list

    specs = parse_metric_list(metric_list)
    if count < 1 or size < 8 or batch_size < 1:
        raise ZooError("--count and --batch-size must be at least 1, --size at least 8")
    entries = resolve_entries([m.strip() for m in methods.split(",") if m.strip()], checkpoints)
    res = run_compare(entries, specs, out_dir, data, masks, count=count, size=size, seed=seed, batch_size=batch_size,
                      device=device, fid_weights=fid_weights, fid_layer=fid_layer, bootstrap=bootstrap, command=sys.argv)
    warn_all(res.warnings)
    if as_json:
        click.echo((res.out_dir / "results.json").read_text())
        return
    click.echo((res.out_dir / "report.md").read_text().split("\n## ")[0].rstrip())
    click.echo(f"\nwrote {res.out_dir}/results.json, results.csv, report.md, plots/, grid.png")


COMMANDS = [compare_cmd]
