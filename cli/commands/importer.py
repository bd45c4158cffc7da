"""``zoo import METHOD OFFICIAL_FILE --out CKPT``"""

from __future__ import annotations

import click


@click.command("import")
@click.argument("method")
@click.argument("source")
@click.option("--out", required=True, help="Zoo checkpoint to write (.safetensors).")
@click.option("--preset", default=None, help="Preset to import into (default: picked by the importer).")
def import_cmd(method: str, source: str, out: str, preset: str | None) -> None:
    """Convert an official checkpoint (file or folder) into a zoo checkpoint."""
    from zoo import runner

    path = runner.import_checkpoint(method, source, out, preset)
    click.echo(f"checkpoint: {path}")


COMMANDS = [import_cmd]
