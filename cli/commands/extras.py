"""``zoo new-plugin`` (``zoo bench`` and ``zoo demo`` live in bench.py)."""

from __future__ import annotations

import click



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


COMMANDS = [new_plugin_cmd]
