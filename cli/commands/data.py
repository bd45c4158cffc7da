"""``zoo data ...`` (dataset preparation)."""

from __future__ import annotations

import click


@click.group("data")
def data_group() -> None:
    """Prepare datasets, synthesise `shapes`, build eval sets."""


@data_group.command("list")
def data_list() -> None:
    """List registered dataset names."""
    from zoo.data import dataset_names

    for name in dataset_names():
        click.echo(name)


COMMANDS = [data_group]
