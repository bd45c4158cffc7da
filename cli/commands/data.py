"""``zoo data ...`` (dataset preparation, synthetic data, eval sets)."""

from __future__ import annotations

import click

from zoo_cli.commands.masks import convention_option, echo_warnings
from zoo_cli.options import seed_option
from zoo_cli.output import print_json, print_named, print_table


@click.group("data")
def data_group() -> None:
    """Prepare datasets, synthesise `shapes`, build eval sets."""


@data_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def data_list(as_json: bool) -> None:
    """List registered dataset names."""
    from zoo.plugins import get_manager  # not zoo.data: listing names needs no torch

    datasets = {d.name: d for d in get_manager().collect("zoo_register_datasets")}
    print_named(sorted(datasets.items()), "dataset", as_json)


@data_group.command("prepare")
@click.argument("src")
@click.option("--layout", required=True, help="celeba-hq, ffhq, places2 or folder.")
@click.option("--size", type=int, default=256, show_default=True, help="Output side (256 or 512 in the papers).")
@click.option("--out", "out_dir", required=True, help="Output folder (images/, splits/, manifest.json).")
@click.option("--split-lists", type=click.Path(file_okay=False), default=None, help="Folder with published split files (LaMa's *_shuffled.flist, CelebA's partition files).")
@click.option("--format", "fmt", type=click.Choice(["png", "jpg"]), default="png", show_default=True)
@click.option("--val-count", type=int, default=2000, show_default=True, help="Seeded random split only: images held out for val.")
@click.option("--test-count", type=int, default=2000, show_default=True, help="Seeded random split only: images held out for test.")
@click.option("--limit", type=int, default=None, help="At most N images per split (quick trials).")
@click.option("--workers", type=int, default=2, show_default=True)
@click.option("--strict", is_flag=True, help="Stop at the first unreadable image instead of skipping it.")
@click.option("--resume", is_flag=True, help="Keep output images that already exist (continue an interrupted run).")
@seed_option
def data_prepare(src, layout, size, out_dir, split_lists, fmt, val_count, test_count, limit, workers, strict, resume, seed) -> None:
    """Resize a downloaded dataset SRC into OUT with split lists and a manifest."""
    from zoo.data.prepare import prepare

    with echo_warnings():
        manifest = prepare(layout, src, out_dir, size=size, seed=seed, split_lists=split_lists, fmt=fmt, strict=strict, workers=workers, limit=limit, val_count=val_count, test_count=test_count, resume=resume)
    counts = ", ".join(f"{k} {v}" for k, v in manifest["counts"].items())
    click.echo(f"wrote {len(manifest['files'])} image(s) at {size}px to {out_dir} ({counts}; split from {manifest['split_source']}; skipped {len(manifest['skipped'])} unreadable)")


@data_group.command("synth")
@click.option("--name", default="shapes", show_default=True, help="A registered dataset (see `zoo data list`).")
@click.option("--count", type=int, default=100, show_default=True)
@click.option("--size", type=int, default=256, show_default=True)
@click.option("--split", type=click.Choice(["train", "val", "test"]), default="train", show_default=True)
@seed_option
@click.option("--out", "out_dir", required=True)
def data_synth(name, count, size, split, seed, out_dir) -> None:
    """Write COUNT images of a registered dataset (default: the procedural `shapes`) as PNGs."""
    from zoo.data.shapes import write_dataset

    manifest = write_dataset(name, count, size, seed, out_dir, split=split)
    click.echo(f"wrote {manifest['count']} {name} image(s) of {size}x{size} to {out_dir}")


@data_group.command("eval-set")
@click.option("--data", required=True, help="A folder, a prepared folder, or a registered dataset name.")
@click.option("--masks", required=True, help="A mask kind (see `zoo masks list`) or a folder of mask files.")
@click.option("--count", type=int, default=100, show_default=True)
@click.option("--size", "resolution", type=int, default=256, show_default=True)
@click.option("--split", default="test", show_default=True, help="Split of a prepared or registered dataset.")
@convention_option
@click.option("--resize-masks", is_flag=True, help="Mask folder only: resize masks of another size to the images (nearest) instead of refusing them.")
@click.option("--strict", is_flag=True, help="Stop at the first unreadable image instead of skipping it.")
@seed_option
@click.option("--out", "out_dir", required=True)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def data_eval_set(data, masks, count, resolution, split, mask_convention, resize_masks, strict, seed, out_dir, as_json) -> None:
    """Build a fixed image/mask pairing (images/, masks/, manifest.json) that every method is scored on;
    COUNT images of the split, round-robin over its photographs (crops named PHOTO__cNN)."""
    from zoo.data.evalset import build_eval_set

    with echo_warnings():
        es = build_eval_set(data, masks, count, seed, out_dir, resolution=resolution, progress=not as_json, split=split, mask_convention=mask_convention, strict=strict, resize_masks=resize_masks)
    summary = {"out": str(out_dir), "count": len(es), "hash": es.hash, "bins": es.manifest["bin_counts"], "skipped": len(es.manifest["skipped"])}
    if as_json:
        print_json(summary)
        return
    click.echo(f"wrote eval set of {len(es)} pairs to {out_dir} (hash {es.hash[:16]})")
    print_table([(k, v) for k, v in es.manifest["bin_counts"].items() if v], ["hole ratio", "images"], indent="  ")


COMMANDS = [data_group]
