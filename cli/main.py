"""The root ``zoo`` group: one-line user errors (exit 2), plugin-added commands."""

from __future__ import annotations

import contextlib
import sys
import warnings

import click

from zoo import __version__
from zoo.errors import QuietExit, ZooError


def _say(line: str) -> None:
    """One line on stderr that never shares a line with a progress bar."""
    if "tqdm" not in sys.modules:  # no bar was ever opened; importing tqdm.auto costs ~20 ms
        print(line, file=sys.stderr)
        return
    from tqdm.auto import tqdm

    tqdm.write(line, file=sys.stderr)


def close_progress_bars() -> None:
    """Close every open progress bar, so that what follows starts on a line of its own."""
    if "tqdm" not in sys.modules:  # no bar was ever opened (and the catalog commands stay fast)
        return
    from tqdm.auto import tqdm

    bars = list(getattr(tqdm, "_instances", []))
    for bar in bars:
        bar.close()
    if bars and not sys.stderr.isatty():
        sys.stderr.write("\n")  # a bar closed with leave=False ends in a bare carriage return
        sys.stderr.flush()


@contextlib.contextmanager
def user_warnings():
    """Python warnings as ``Warning: ...`` lines: the first of each kind when it happens (a
    :class:`~zoo.errors.ZooWarning` names its kind; other warnings are their own kind), and
    at the end how many of a kind there were when more than one. No source lines; library
    deprecation notices are not shown. Open progress bars are closed first."""
    counts: dict[str, int] = {}

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        kind = getattr(message, "kind", None) or str(message)
        counts[kind] = counts.get(kind, 0) + 1
        if counts[kind] == 1:
            _say(f"Warning: {message}")

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        for category in (DeprecationWarning, PendingDeprecationWarning, FutureWarning):
            warnings.simplefilter("ignore", category)
        warnings.showwarning = show
        try:
            yield
        finally:
            close_progress_bars()
            for kind, n in counts.items():
                if n > 1:
                    _say(f"Warning: {kind}: {n} in all")


class ZooGroup(click.Group):
    """A click group whose user errors are one line on stderr with exit code 2."""

    _plugin_commands_added = False

    def _add_plugin_commands(self) -> None:
        """Plugins add their commands when the first command is looked up or listed, not at
        import: ``zoo --version`` loads no plugin."""
        if self._plugin_commands_added:
            return
        self._plugin_commands_added = True
        from zoo.plugins import get_manager

        with user_warnings():  # e.g. a $ZOO_LOAD_PLUGINS name that matches no plugin, a plugin's failing command
            get_manager().add_commands(self)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        self._add_plugin_commands()
        return super().get_command(ctx, cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._add_plugin_commands()
        return super().list_commands(ctx)

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):  # type: ignore[override]
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            with user_warnings():
                rv = super().main(args, prog_name or "zoo", complete_var, standalone_mode=False, **extra)
        except click.UsageError as exc:
            click.echo(f"Error: {exc.format_message()}", err=True)
            sys.exit(2)
        except ZooError as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(2)
        except QuietExit as exc:  # another process of the same launch reports the error
            sys.exit(exc.code)
        except click.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except click.Abort as exc:
            if isinstance(exc.__cause__, KeyboardInterrupt):  # click turns Ctrl-C into Abort
                close_progress_bars()
                click.echo("Interrupted.", err=True)
                sys.exit(130)
            click.echo("Aborted!", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            sys.exit(130)
        except Exception as exc:
            from zoo.errors import plugin_origin

            origin = plugin_origin(exc)
            if origin is None:
                raise
            close_progress_bars()
            plugin, hook, method = origin
            click.echo(f"Error: plugin {plugin!r} raised {type(exc).__name__} in {hook}" + (f" (method {method!r})" if method else "")
                       + f": {str(exc).splitlines()[0] if str(exc) else ''} (traceback below; report it to the plugin's author)", err=True)
            import traceback

            traceback.print_exception(exc)
            sys.exit(1)
        sys.exit(rv if isinstance(rv, int) else 0)


@click.group(cls=ZooGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="inpaint-zoo")
def app() -> None:
    """inpaint-zoo: train, sample, score and compare image-inpainting methods."""
    from zoo.registry import load_registry

    load_registry()  # a broken registry (or $ZOO_REGISTRY) is reported by every command


def _register() -> None:
    from zoo_cli.commands import bench, catalog, compare, data, extras, fetch, importer, masks, sample, score, serve, train

    for module in (catalog, train, sample, score, compare, importer, fetch, data, masks, extras, bench, serve):
        for command in module.COMMANDS:
            app.add_command(command)
    # plugins' commands: ZooGroup._add_plugin_commands, on the first lookup of a command


_register()


def main() -> None:
    app.main(prog_name="zoo")


if __name__ == "__main__":
    main()
