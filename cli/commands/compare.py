"""``zoo compare`` (side-by-side reports)."""

from __future__ import annotations

import click

from zoo.errors import ZooError


@click.command("compare", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
def compare_cmd() -> None:
    """Compare methods on one eval set (not available yet)."""
    raise ZooError("`zoo compare` is not available yet in this version")


COMMANDS = [compare_cmd]
