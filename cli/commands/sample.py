"""``zoo sample METHOD --checkpoint CKPT --images DIR --masks DIR --out DIR``"""

from __future__ import annotations

from pathlib import Path

import click

from zoo_cli.options import device_option, existing_dir, seed_option, set_option


@click.command("sample")
@click.argument("method")
@click.option("--checkpoint", default=None, help="A zoo checkpoint (.safetensors); not needed for classical methods.")
@click.option("--images", required=True, callback=existing_dir, help="Folder of input images.")
@click.option("--masks", required=True, callback=existing_dir, help="Folder of masks with the images' names (white = hole).")
@click.option("--out", "out_dir", required=True, help="Folder for the inpainted PNGs.")
@seed_option
@click.option("--num-samples", type=int, default=1, show_default=True, help="Samples per image (NAME_s0.png, ...).")
@set_option
@click.option("--batch-size", type=int, default=8, show_default=True)
@click.option("--mask-convention", type=click.Choice(["hole-white", "hole-black"]), default="hole-white", show_default=True, help="hole-black for RePaint/diffusers-style masks.")
@device_option
@click.option("--overwrite", is_flag=True, help="Write into an existing non-empty --out (only the files this command writes are replaced). "
              "Not needed to resume an interrupted run: the same command continues it.")
@click.option("--devices", type=int, default=1, show_default=True, help="Processes the batches are split over (gloo; files identical to one process). Across machines: accelerate launch ... -m zoo_cli.main sample ...")
def sample_cmd(method, checkpoint, images, masks, out_dir, seed, num_samples, set_items, batch_size, mask_convention, device, overwrite, devices) -> None:
    """Inpaint every image in --images with the mask of the same name in --masks."""
    from zoo.config import parse_set_options
    from zoo.errors import ZooError
    from zoo.shard import world

    if devices < 1:
        raise ZooError("--devices must be at least 1")
    if batch_size < 1:
        raise ZooError("--batch-size must be at least 1")
    kwargs = dict(method=method, checkpoint=checkpoint, images=images, masks=masks, out_dir=out_dir, seed=seed, num_samples=num_samples,
                  overrides=parse_set_options(set_items), batch_size=batch_size, mask_convention=mask_convention, device=device, overwrite=overwrite)
    rank, size = world()
    try:
        report = _run(kwargs, devices, rank, size)
    except KeyboardInterrupt:
        from zoo.runner import read_sample_progress

        finished = len(list(Path(out_dir).rglob("*.png"))) if read_sample_progress(Path(out_dir))[1] else 0
        hint = f"{finished} image(s) finished in {out_dir}; run the same command again to resume" if finished else "no image was finished"
        click.echo(f"Interrupted: {hint}.", err=True)
        raise SystemExit(130) from None
    if report is None:
        return  # not process 0 of a launcher: process 0 reports for all
    for note in report.notes:
        click.echo(f"Note: {note}", err=True)
    nfe = report.info.get("nfe")
    extra = f", {nfe} network call{'s' if nfe != 1 else ''} per image" if nfe else ""
    resumed = f"; {report.resumed} more were already there from an interrupted run" if report.resumed else ""
    click.echo(f"wrote {report.count - report.resumed} image(s) to {report.out_dir}{extra}{resumed}")


def _run(kwargs: dict, devices: int, rank: int, size: int):
    """Sample in this process, over ``devices`` new ones, or as one of a launcher's processes;
    the report (``None`` on a launcher's processes other than 0)."""
    from zoo import runner
    from zoo.shard import launch_sample, run_world

    if devices > 1 and size == 1:
        runner.build_model(kwargs["method"], kwargs["checkpoint"], kwargs["overrides"])  # a bad method or checkpoint: one line before any process starts
        done = launch_sample(devices, kwargs)
    elif size > 1:  # one of several processes that accelerate launch / torchrun started
        done = run_world("sample", kwargs)
        if rank != 0:
            return None
    else:
        return runner.sample_folder(**kwargs)
    return runner.SampleReport(count=done["count"], out_dir=Path(kwargs["out_dir"]), info=done["info"], notes=done["notes"], resumed=done["resumed"])

COMMANDS = [sample_cmd]
