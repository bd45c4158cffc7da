"""``zoo new-plugin``, ``zoo bench``, ``zoo demo``."""

from __future__ import annotations

import click

from zoo.errors import ZooError


@click.command("new-plugin")
@click.argument("name")
def new_plugin_cmd(name: str) -> None:
    """Create a plugin package skeleton (not available yet)."""
    raise ZooError("`zoo new-plugin` is not available yet in this version")


@click.command("bench", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
def bench_cmd() -> None:
    """Speed and memory benchmarks (not available yet; see benchmarks/)."""
    raise ZooError("`zoo bench` is not available yet in this version; see benchmarks/")


@click.command("demo", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
def demo_cmd() -> None:
    """A side-by-side demo (not available yet)."""
    raise ZooError("`zoo demo` is not available yet in this version")


COMMANDS = [new_plugin_cmd, bench_cmd, demo_cmd]
