"""Options shared by several commands."""

from __future__ import annotations

import click

set_option = click.option(
    "--set", "set_items", multiple=True, metavar="KEY=VALUE", help="Override a config field (repeatable); unknown keys and wrong types are errors."
)
seed_option = click.option("--seed", type=int, default=0, show_default=True, help="Seed for every random choice.")
device_option = click.option("--device", default=None, help="auto, cpu, cuda[:N] or mps (default: $ZOO_DEVICE or auto).")


def existing_dir(ctx: click.Context, param: click.Parameter, value):
    """Callback: a folder that must exist, reported as a one-line user error."""
    from pathlib import Path

    from zoo.errors import ZooError

    if value is None:
        return value
    if Path(value).exists() and not Path(value).is_dir():
        raise ZooError(f"{param.opts[0]} {value}: a file, not a folder; give the folder that holds the files")
    if not Path(value).is_dir():
        raise ZooError(f"{param.opts[0]} {value}: folder does not exist")
    return Path(value)


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




def eval_options(fn):
    """The options every command that builds an eval set and scores it shares."""
    for option in reversed(
        [
            click.option("--count", type=int, default=100, show_default=True, help="Eval-set size (when the eval set is built)."),
            click.option("--size", type=int, default=256, show_default=True, help="Eval-set resolution (square)."),
            seed_option,
            click.option("--batch-size", type=int, default=8, show_default=True),
            fid_weights_option,
            fid_layer_option,
            bootstrap_option,
            device_option,
        ]
    ):
        fn = option(fn)
    return fn
