"""``zoo masks ...`` (mask generation, statistics, convention conversion)."""

from __future__ import annotations

import contextlib

import click

from zoo_cli.options import existing_dir, seed_option
from zoo_cli.output import print_json, print_named

convention_option = click.option(
    "--mask-convention",
    type=click.Choice(["hole-white", "hole-black"]),
    default="hole-white",
    show_default=True,
    help="How the files mark holes: hole-white (zoo, LaMa) or hole-black (RePaint, diffusers; MAT's 0 = hole).",
)


@contextlib.contextmanager
def echo_warnings():
    """Warnings inside are shown by the CLI's one handler (``zoo_cli.main.user_warnings``):
    one ``Warning: ...`` line per kind, with a count at the end. Kept as a marker of the
    commands that report data problems as warnings."""
    yield


@click.group("masks")
def masks_group() -> None:
    """Generate masks of a published protocol, or summarise a folder of masks."""


@masks_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def masks_list(as_json: bool) -> None:
    """List mask kinds."""
    from zoo.masks import kinds

    print_named(sorted(kinds().items()), "kind", as_json)


@masks_group.command("generate")
@click.option("--kind", required=True, help="Mask kind (see `zoo masks list`).")
@click.option("--size", type=int, default=256, show_default=True, help="Mask width (and height unless --height).")
@click.option("--height", type=int, default=None, help="Mask height if not square.")
@click.option("--count", type=int, default=100, show_default=True)
@seed_option
@click.option("--out", "out_dir", required=True, help="Folder for 000000.png ... and manifest.json.")
def masks_generate(kind, size, height, count, seed, out_dir) -> None:
    """Write COUNT masks of KIND (8-bit PNG, white = hole) and a manifest."""
    from zoo.masks.tools import generate_masks, hole_ratio_stats

    manifest = generate_masks(kind, size, count, seed, out_dir, height=height)
    stats = hole_ratio_stats([it["hole_ratio"] for it in manifest["items"]])
    click.echo(f"wrote {count} {kind} mask(s) of {manifest['width']}x{manifest['height']} to {out_dir} (hole ratio mean {stats['mean']:.3f}, std {stats['std']:.3f})")


@masks_group.command("stats")
@click.argument("folder", callback=existing_dir)
@convention_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def masks_stats(folder, mask_convention, as_json) -> None:
    """Hole-ratio mean, spread, percentiles and histogram of the masks in FOLDER."""
    from zoo.masks.tools import folder_stats, format_stats

    with echo_warnings():
        stats = folder_stats(folder, mask_convention, progress=not as_json)
    if as_json:
        print_json(stats)
    else:
        click.echo(format_stats(stats))


@masks_group.command("convert")
@click.argument("folder", callback=existing_dir)
@convention_option
@click.option("--out", "out_dir", required=True, help="Folder for the converted masks (8-bit PNG, white = hole); never FOLDER or inside it.")
@click.option("--overwrite", is_flag=True, help="Write into an existing folder that is not empty (its files of the same names are replaced).")
def masks_convert(folder, mask_convention, out_dir, overwrite) -> None:
    """Rewrite the masks in FOLDER (any convention, gray/RGB/RGBA) as zoo masks."""
    from zoo.fsutil import check_output_dir, removed_on_failure
    from zoo.imageio import IMAGE_TYPES, list_images, load_mask, save_mask

    out = check_output_dir(out_dir, {"FOLDER": folder}, overwrite)
    files = list_images(folder)
    if not files:
        from zoo.errors import ZooError

        raise ZooError(f"no mask files ({IMAGE_TYPES}) found in {folder}")
    with echo_warnings(), removed_on_failure(out):
        for path in files:
            rel = path.relative_to(folder).with_suffix(".png")
            save_mask(out / rel, load_mask(path, mask_convention))
    click.echo(f"wrote {len(files)} mask(s) to {out_dir} (white = hole)")


@masks_group.command("check")
@click.argument("images", callback=existing_dir)
@click.argument("masks", callback=existing_dir)
@convention_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def masks_check(images, masks, mask_convention, as_json) -> None:
    """Check that every image in IMAGES has a readable, binary mask of the same size in MASKS."""
    from zoo.errors import ZooError
    from zoo.masks.tools import check_pairs

    report = check_pairs(images, masks, mask_convention)
    if as_json:
        print_json(report)
    else:
        for line in report["problems"]:
            click.echo(f"problem: {line}")
        mean = report["mean_hole_ratio"]
        click.echo(f"{report['pairs']} pair(s), {len(report['problems'])} problem(s)" + (f", mean hole ratio {mean:.4f}" if mean is not None else ""))
    if report["problems"]:
        raise ZooError(f"{len(report['problems'])} problem(s) in {images} / {masks}; first: {report['problems'][0]}")


COMMANDS = [masks_group]
