"""The one exception type for user errors.

Anything a user can fix (an unknown method, a missing file, a bad ``--set`` value) raises
:class:`ZooError` with a one-line message that names the problem and, where there are
choices, lists the valid ones. The CLI prints it as ``Error: ...`` and exits with code 2.
"""

from __future__ import annotations

from typing import Iterable


class ZooError(Exception):
    """A user error: one line that names the problem and the valid choices."""


def choices_error(what: str, value: object, valid: Iterable[object]) -> ZooError:
    """``unknown method 'x'; valid choices: a, b, c``."""
    valid = sorted(str(v) for v in valid)
    listed = ", ".join(valid) if valid else "(none)"
    return ZooError(f"unknown {what} {value!r}; valid choices: {listed}")


class ZooWarning(UserWarning):
    """A warning about the user's data, grouped by ``kind`` when shown.

    ``message`` is the whole line (it names the file); ``kind`` is the same for every file
    with the same problem (``"masks that are not binary"``). The CLI prints the first warning
    of a kind as ``Warning: MESSAGE`` and, at the end, how many of that kind there were."""

    def __init__(self, message: str, kind: str = "") -> None:
        super().__init__(message)
        self.kind = kind or message


class QuietExit(Exception):
    """Exit with ``code`` and print nothing: one process of several whose error another
    process (rank 0, or the parent of ``--devices N``) reports once."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class PluginError(ZooError):
    """A plugin broke the contract (returned the wrong type or shape, trained and returned
    nothing, ...): one line that names the plugin, the hook and what was expected. The
    user cannot fix it with a flag, but the line tells them whom to ask and the author what
    to change."""


def plugin_error(plugin: str, hook: str, message: str, method: str | None = None) -> PluginError:
    """``plugin 'x' (zoo_sample, method 'm'): MESSAGE``."""
    what = f"{hook}, method {method!r}" if method else hook
    return PluginError(f"plugin {plugin!r} ({what}): {message}")


#: The attribute an exception raised inside a plugin's hook carries: (plugin, hook, method).
ORIGIN_ATTR = "zoo_plugin_origin"


def tag_plugin_origin(exc: BaseException, plugin: str, hook: str, method: str | None = None) -> None:
    """Record on ``exc`` that it was raised inside ``plugin``'s ``hook`` (the innermost hook
    wins: a plugin hook that calls the core, which calls another plugin, keeps the latter)."""
    if getattr(exc, ORIGIN_ATTR, None) is None:
        try:
            setattr(exc, ORIGIN_ATTR, (plugin, hook, method))
        except Exception:  # noqa: BLE001 - an exception type that forbids attributes
            pass


def plugin_origin(exc: BaseException) -> tuple[str, str, str | None] | None:
    """``(plugin, hook, method)`` when ``exc`` (or an exception it was raised from) came
    out of a plugin's hook, else None."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        origin = getattr(exc, ORIGIN_ATTR, None)
        if origin is not None:
            return origin
        exc = exc.__cause__ or exc.__context__
    return None
