"""The root ``zoo`` group: one-line user errors (exit 2), plugin-added commands."""

from __future__ import annotations

import sys

import click

from zoo import __version__
from zoo.errors import ZooError


class ZooGroup(click.Group):
    """A click group whose user errors are one line on stderr with exit code 2."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):  # type: ignore[override]
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            rv = super().main(args, prog_name or "zoo", complete_var, standalone_mode=False, **extra)
        except click.UsageError as exc:
            click.echo(f"Error: {exc.format_message()}", err=True)
            sys.exit(2)
        except ZooError as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(2)
        except click.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            sys.exit(130)
        sys.exit(rv if isinstance(rv, int) else 0)


@click.group(cls=ZooGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="inpaint-zoo")
def app() -> None:
    """inpaint-zoo: train, sample, score and compare image-inpainting methods."""


def _register() -> None:
    from zoo_cli.commands import catalog, compare, data, extras, importer, masks, sample, score, train

    for module in (catalog, train, sample, score, compare, importer, data, masks, extras):
        for command in module.COMMANDS:
            app.add_command(command)
    try:
        from zoo.plugins import get_manager

        get_manager().hook.zoo_register_commands(cli=app)
    except Exception as exc:  # a plugin's command must not break the CLI
        click.echo(f"Warning: a plugin failed to add its commands ({type(exc).__name__}: {exc})", err=True)


_register()


def main() -> None:
    app.main(prog_name="zoo")


if __name__ == "__main__":
    main()
