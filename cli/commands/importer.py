"""``zoo import METHOD OFFICIAL_FILE --out CKPT [--set key=value]...``"""

from __future__ import annotations

import click

from zoo_cli.options import set_option


@click.command("import")
@click.argument("method")
@click.argument("source")
@click.option("--out", required=True, help="Zoo checkpoint to write (.safetensors).")
@click.option("--overwrite", is_flag=True, help="Replace an existing --out (never OFFICIAL_FILE itself).")
@click.option("--preset", default=None, help="Preset to import into (default: picked by the importer, or read from the file).")
@set_option
def import_cmd(method: str, source: str, out: str, overwrite: bool, preset: str | None, set_items: tuple[str, ...]) -> None:
    """Convert an official checkpoint (file or folder) into a zoo checkpoint; --set gives
    what the file cannot tell (e.g. attention heads of a guided-diffusion UNet)."""
    from zoo import runner
    from zoo.config import parse_set_options

    notes: list[str] = []
    path = runner.import_checkpoint(method, source, out, preset, parse_set_options(set_items), notes=notes, overwrite=overwrite)
    for note in notes:
        click.echo(f"Note: {note}", err=True)
    click.echo(f"checkpoint: {path}")


COMMANDS = [import_cmd]
