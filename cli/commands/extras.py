"""``zoo new-plugin``, ``zoo bench``, ``zoo demo``."""

from __future__ import annotations

import click

from zoo.errors import ZooError


@click.command("new-plugin")
@click.argument("name")
@click.option("--out", "out_dir", default=None, help="Folder for the package (default: ./zoo-NAME).")
@click.option("--kind", type=click.Choice(["method", "metric"]), default="method", show_default=True, help="A learned method, or a per-image metric.")
def new_plugin_cmd(name: str, out_dir: str | None, kind: str) -> None:
    """Write a pip-installable plugin package NAME that works as generated (docs/plugins.md)."""
    from zoo.scaffold import names, new_plugin

    root = new_plugin(name, out_dir, kind)
    n = names(name)
    click.echo(f"wrote {kind} plugin {n['plugin']!r} (package {n['package']}, distribution {n['dist']}) to {root}")
    click.echo(f"next: python -m pip install --no-build-isolation -e {root}  &&  zoo plugins  &&  (cd {root} && python -m pytest)")


@click.command("bench", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
def bench_cmd() -> None:
    """Speed and memory benchmarks (not available yet; see benchmarks/)."""
    raise ZooError("`zoo bench` is not available yet in this version; see benchmarks/")


@click.command("demo", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
def demo_cmd() -> None:
    """A side-by-side demo (not available yet)."""
    raise ZooError("`zoo demo` is not available yet in this version")


COMMANDS = [new_plugin_cmd, bench_cmd, demo_cmd]
