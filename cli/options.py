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
    if not Path(value).is_dir():
        raise ZooError(f"{param.opts[0]} {value}: folder does not exist")
    return Path(value)
