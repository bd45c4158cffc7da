"""``zoo fetch NAME [--out CKPT]``: download a registry checkpoint, verify, unpack, import."""

from __future__ import annotations

import click


@click.command("fetch")
@click.argument("name")
@click.option("--out", default=None, help="Zoo checkpoint to write (default: $ZOO_CACHE_DIR/checkpoints/METHOD-NAME.safetensors).")
@click.option("--overwrite", is_flag=True, help="Replace an existing --out (and re-import a cached one).")
def fetch_cmd(name: str, out: str | None, overwrite: bool) -> None:
    """Download the checkpoint NAME (or METHOD/NAME) listed in registry.yaml into the cache
    (resumable, sha256-verified), unpack it and import it. ZOO_OFFLINE=1 downloads nothing."""
    from zoo.fetch import fetch

    result = fetch(name, out, overwrite=overwrite)
    for note in result.notes:
        click.echo(f"Note: {note}", err=True)
    click.echo(f"checkpoint: {result.checkpoint}")


COMMANDS = [fetch_cmd]
