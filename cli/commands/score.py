"""``zoo score`` (shared metrics on predictions)."""

from __future__ import annotations

import click

from zoo.errors import ZooError


@click.command("score", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
def score_cmd() -> None:
    """Score predictions against ground truth (not available yet)."""
    raise ZooError("`zoo score` is not available yet in this version")


COMMANDS = [score_cmd]
