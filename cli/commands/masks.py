"""``zoo masks ...`` (mask generation and statistics)."""

from __future__ import annotations

import click


@click.group("masks")
def masks_group() -> None:
    """Generate masks of a published protocol, or summarise a folder of masks."""


@masks_group.command("list")
def masks_list() -> None:
    """List mask kinds."""
    from zoo.masks import kinds

    for name, spec in sorted(kinds().items()):
        click.echo(f"{name}: {spec.description}")


COMMANDS = [masks_group]
