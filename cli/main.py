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


def _check_size(callback):
    def check(ctx: click.Context, param: click.Parameter, value):
        if value is not None and param.name:
            from zoo.config import check_upper_limit

            check_upper_limit(param.name, value, f"{param.opts[0]} {value}")
        return callback(ctx, param, value) if callback else value

    check.zoo_size_check = True  # type: ignore[attr-defined]
    return check


def bound_sizes(command: click.Command) -> None:
    """Give every integer option of ``command`` (and of its subcommands) the zoo's upper limit
    for its name, if there is one (``--steps``, ``--batch-size``, ``--count``, ...:
    :data:`zoo.config.UPPER_LIMITS`), checked when the command line is read."""
    for param in command.params:
        if isinstance(param, click.Option) and isinstance(param.type, click.types.IntParamType) and not getattr(param.callback, "zoo_size_check", False):
            param.callback = _check_size(param.callback)
    for sub in getattr(command, "commands", {}).values():
        bound_sizes(sub)


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
        bound_sizes(self)

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
            sys.exit(exc.exit_code)
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
            sys.exit(self._failure(exc, args))
        sys.exit(rv if isinstance(rv, int) else 0)

    def _failure(self, exc: Exception, args: list[str] | None) -> int:
        """Anything but a user error, as one line (and the exit code): an operating-system
        error names the path, the operation and the reason (2 when the path given cannot be
        used, 1 when the environment failed); memory exhaustion says what to lower (1); a bug
        keeps its traceback after a line that says whose bug it is and where to report it (1)."""
        import traceback

        from zoo.errors import bug_line, failure_line, plugin_origin

        close_progress_bars()
        gpu = "cuda" in str(exc).lower() or "cuda" in type(exc).__module__
        known = failure_line(exc, self._memory_options(args, gpu))
        if known is not None:
            click.echo(f"Error: {known[0]}", err=True)
            return known[1]
        origin = plugin_origin(exc)
        if origin is None:
            click.echo(f"Error: {bug_line(exc)}", err=True)
        else:
            plugin, hook, method = origin
            click.echo(f"Error: plugin {plugin!r} raised {type(exc).__name__} in {hook}" + (f" (method {method!r})" if method else "")
                       + f": {str(exc).splitlines()[0] if str(exc) else ''} (traceback below; report it to the plugin's author)", err=True)
        traceback.print_exception(exc)
        return 1

    def _memory_options(self, args: list[str] | None, gpu: bool) -> list[str]:
        """The options of the command that ran which lower its memory use, as the user types them."""
        words = list(sys.argv[1:] if args is None else args)
        command: click.Command | None = self
        while isinstance(command, click.Group) and words:
            word = words.pop(0)
            if not word.startswith("-"):
                command = command.commands.get(word) if word in command.commands else None
        if command is None or isinstance(command, click.Group):
            return []
        names = {opt for p in command.params for opt in getattr(p, "opts", [])}
        tips = [("--batch-size", "--batch-size"), ("--micro-batch", "--micro-batch auto"), ("--micro-batch", "--set resolution="),
                ("--size", "--size"), ("--resolution", "--resolution"), ("--num-samples", "--num-samples")]
        tips += [("--device", "--device cpu")] if gpu else []
        return [tip for flag, tip in tips if flag in names]


@click.group(cls=ZooGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="inpaint-zoo")
def app() -> None:
    """inpaint-zoo: train, sample, score and compare image-inpainting methods."""
    from zoo.registry import load_registry

    load_registry()  # a broken registry (or $ZOO_REGISTRY) is reported by every command


def _register() -> None:
    from zoo_cli.commands import bench, catalog, compare, data, extras, fetch, importer, masks, sample, score, serve, study, train

    for module in (catalog, train, sample, score, compare, importer, fetch, data, masks, extras, bench, serve, study):
        for command in module.COMMANDS:
            app.add_command(command)
    bound_sizes(app)
    # plugins' commands: ZooGroup._add_plugin_commands, on the first lookup of a command


_register()


def main() -> None:
    app.main(prog_name="zoo")


if __name__ == "__main__":
    main()
