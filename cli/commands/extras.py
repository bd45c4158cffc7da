"""``zoo new-plugin`` (``zoo bench`` and ``zoo demo`` live in bench.py)."""

from __future__ import annotations

import click



@click.command("new-plugin")
@click.argument("name")
@click.option("--out", "out_dir", default=None, help="Folder for the package (default: ./zoo-NAME).")
@click.option("--kind", default="method", show_default=True, metavar="method|metric|method,metric",
              help="A learned method, a per-image hole metric, or method,metric: one package with both.")
def new_plugin_cmd(name: str, out_dir: str | None, kind: str) -> None:
    """Write a pip-installable plugin package NAME that works as generated (docs/plugins.md)."""
    from zoo.scaffold import names, new_plugin, parse_kinds

    root = new_plugin(name, out_dir, kind)
    kinds = parse_kinds(kind)
    n = names(name, kinds)
    what = ", ".join(f"{k} {n['metric'] if k == 'metric' else n['name']}" for k in kinds)
    click.echo(f"wrote plugin {n['plugin']!r} ({what}; package {n['package']}, distribution {n['dist']}) to {root}")
    click.echo(f"next: python -m pip install --no-build-isolation -e {root}  &&  zoo plugins  &&  (cd {root} && python -m pytest)")


COMMANDS = [new_plugin_cmd]
