"""``zoo fetch NAME [--out CKPT]``: download a registry checkpoint, verify, unpack, import;
``zoo fetch --list``: every registry checkpoint and its verification state."""

from __future__ import annotations

import json

import click

from zoo.errors import ZooError


@click.command("fetch")
@click.argument("name", required=False)
@click.option("--out", default=None, help="Zoo checkpoint to write (default: $ZOO_CACHE_DIR/checkpoints/METHOD-NAME.safetensors).")
@click.option("--overwrite", is_flag=True, help="Replace an existing --out (and re-import a cached one).")
@click.option("--list", "list_", is_flag=True, help="List the registry's checkpoints and how each is verified; download nothing.")
@click.option("--json", "as_json", is_flag=True, help="With --list: machine-readable output.")
def fetch_cmd(name: str | None, out: str | None, overwrite: bool, list_: bool, as_json: bool) -> None:
    """Download the checkpoint NAME (or METHOD/NAME) listed in registry.yaml into the cache
    (resumable), check its sha256, unpack it and import it. An entry without a published
    sha256 is unverified: its first download's sha256 is recorded in the cache manifest and
    a later download that differs is refused (trust on first use). ZOO_OFFLINE=1 downloads
    nothing."""
    if list_:
        from zoo.fetch import list_checkpoints

        if name:
            raise ZooError("zoo fetch --list takes no NAME; give either --list or NAME")
        rows = list_checkpoints()
        if as_json:
            click.echo(json.dumps(rows, indent=2))
            return
        width = max((len(r["name"]) for r in rows), default=4)
        for r in rows:
            click.echo(f"{r['name']:<{width}}  {r['state']:<10}  {r['detail']}")
            if r["download"] == "by hand":
                click.echo(f"{'':<{width}}  {'by hand':<10}  {r['by_hand']}")
        return
    if not name:
        raise ZooError("zoo fetch needs NAME (a checkpoint of registry.yaml, e.g. big-lama), or --list to see them")
    from zoo.fetch import fetch

    result = fetch(name, out, overwrite=overwrite)
    for note in result.notes:
        click.echo(f"Note: {note}", err=True)
    click.echo(f"checkpoint: {result.checkpoint}")


COMMANDS = [fetch_cmd]
