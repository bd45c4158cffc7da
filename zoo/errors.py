"""The one exception type for user errors.

Anything a user can fix (an unknown method, a missing file, a bad ``--set`` value) raises
:class:`ZooError` with a one-line message that names the problem and, where there are
choices, lists the valid ones. The CLI prints it as ``Error: ...`` and exits with code 2.
"""

from __future__ import annotations

import errno
import os
import re
from typing import Iterable


class ZooError(Exception):
    """A user error: one line that names the problem and the valid choices."""

    exit_code = 2


class EnvironmentFailure(ZooError):
    """Not the user's input but the machine (a full disk, out of memory), reported as one line
    by a process other than the CLI's own (a ``--devices N`` worker): exit code 1."""

    exit_code = 1


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


# -- failures that are not a typo: the operating system, memory, bugs -----------------------------
# The CLI turns each into one line (zoo_cli.main.ZooGroup.main); docs/guarantees.md, "Error
# classes and exit codes", says which is which.

#: errno values that mean the path the user gave cannot be used as asked (exit 2); any other
#: OSError (a full disk, an I/O error, too many open files, ...) is the environment (exit 1).
USER_ERRNOS = frozenset(
    getattr(errno, name)
    for name in ("EACCES", "EPERM", "ENOTDIR", "ENOENT", "ENAMETOOLONG", "EROFS", "EEXIST", "EISDIR", "ELOOP", "ENOTEMPTY", "EINVAL")
    if hasattr(errno, name)
)

_HINTS = {
    "EACCES": "no permission; choose a path you may write to, or change the folder's permissions",
    "EPERM": "the operation is not permitted there; choose another path",
    "ENOTDIR": "a part of the path is a file; choose another path",
    "ENOENT": "the path, or a folder in it, does not exist and cannot be created there; choose another path",
    "ENAMETOOLONG": "the name is too long for the file system; choose a shorter path",
    "EROFS": "choose a path on a writable disk",
    "EEXIST": "it exists already; choose another path",
    "EISDIR": "it is a folder, not a file; choose a file path",
    "ENOSPC": "the disk is full; free some space or choose a path on another disk, then run the command again",
    "EDQUOT": "the disk quota is used up; free some space, then run the command again",
    "EIO": "the disk reported an I/O error; check the disk, then run the command again",
    "EMFILE": "too many open files; raise the limit (ulimit -n), then run the command again",
}

#: Function names (innermost frame first) -> the operation an OSError was raised in.
_OPERATIONS = {
    "mkdir": "create the folder", "makedirs": "create the folder", "mkdtemp": "create a folder in",
    "mkstemp": "create a temporary file in", "_mkstemp_inner": "create a file", "NamedTemporaryFile": "create a temporary file in",
    "replace": "rename a file to", "rename": "rename a file to", "unlink": "remove", "rmtree": "remove", "rmdir": "remove",
    "copyfile": "copy to", "copy": "copy to", "copy2": "copy to", "copytree": "copy to", "symlink_to": "link",
    "write_text": "write", "write_bytes": "write", "touch": "create", "fsync": "write", "chmod": "change the mode of",
    "read_text": "read", "read_bytes": "read", "iterdir": "list", "listdir": "list", "scandir": "list", "glob": "list",
    "rglob": "list", "stat": "read", "save": "write", "save_file": "write",
}

#: Attributes the core puts on an exception that passes through a write: (operation, path).
OS_CONTEXT_ATTR = "zoo_os_context"


def note_os_context(exc: BaseException, operation: str, path: object) -> None:
    """Record on ``exc`` what was being done to which path (the innermost note wins), for an
    error raised without a file name (a full disk while writing, a library's own I/O)."""
    if getattr(exc, OS_CONTEXT_ATTR, None) is None:
        try:
            setattr(exc, OS_CONTEXT_ATTR, (operation, str(path)))
        except Exception:  # noqa: BLE001 - an exception type that forbids attributes
            pass


def _library_errno(exc: BaseException) -> int | None:
    """The errno a library wrapped in its own exception: safetensors' ``... (os error 28)``
    or ``IoError(Os { code: 28, ...})``; None when there is none."""
    match = re.search(r"Os \{ code: (\d+)|\(os error (\d+)\)", str(exc))
    return int(match.group(1) or match.group(2)) if match else None


def as_os_error(exc: BaseException) -> OSError | None:
    """``exc`` as an OSError: itself, an OSError it was raised from (``raise ... from``; not one
    it was merely raised while handling: that is a bug's), or a library's error that wraps an
    operating-system error; None when it is none of these."""
    seen = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno is not None:
            return e
        code = _library_errno(e)
        if code is not None:
            wrapped = OSError(code, os.strerror(code))
            context = getattr(e, OS_CONTEXT_ATTR, None) or getattr(exc, OS_CONTEXT_ATTR, None)
            if context:
                setattr(wrapped, OS_CONTEXT_ATTR, context)
            wrapped.__traceback__ = e.__traceback__
            return wrapped
        e = e.__cause__
    return None


def _operation(exc: OSError) -> str:
    tb, names = exc.__traceback__, []
    while tb is not None:
        names.append((tb.tb_frame.f_code.co_name, tb.tb_frame.f_locals.get("mode")))
        tb = tb.tb_next
    for name, mode in reversed(names):  # innermost first
        if name == "open" and isinstance(mode, str):
            return "read" if set(mode) <= set("rbt") else "write"
        if name in _OPERATIONS:
            return _OPERATIONS[name]
    return "use"


def _path_text(path: object) -> str:
    return os.fsdecode(path) if isinstance(path, (str, bytes, os.PathLike)) else str(path)


def os_error_line(exc: OSError) -> tuple[str, int]:
    """One line for an operating-system error and its exit code: 2 when the path given cannot
    be used (:data:`USER_ERRNOS`), 1 when the environment failed (a full disk, an I/O error)."""
    name = errno.errorcode.get(exc.errno or 0, "")
    context = getattr(exc, OS_CONTEXT_ATTR, None)
    path = exc.filename if exc.filename is not None else (context[1] if context else None)
    operation = context[0] if context and exc.filename is None else _operation(exc)
    target = f" {_path_text(path)}" if path is not None else ""
    if exc.filename2 is not None:
        target += f" -> {_path_text(exc.filename2)}"
    reason = exc.strerror or str(exc)
    hint = _HINTS.get(name, "")
    if name == "EEXIST" and path is not None and os.path.isfile(path) and operation == "create the folder":
        reason, hint = "a file of that name exists", "a folder is needed there; choose another path"
    code = 2 if exc.errno in USER_ERRNOS else 1
    line = f"cannot {operation}{target}: {reason}" + (f" ({name})" if name else "") + (f"; {hint}" if hint else "")
    return line, code


def is_out_of_memory(exc: BaseException) -> bool:
    """MemoryError (numpy's allocation errors included), torch's (CUDA) OutOfMemoryError, and
    the CPU allocator's ``can't allocate memory``."""
    if isinstance(exc, MemoryError):
        return True
    if type(exc).__name__ == "OutOfMemoryError" or type(exc).__name__ == "SimulatedOutOfMemory":
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and ("out of memory" in text.lower() or "can't allocate memory" in text)


def memory_error_line(exc: BaseException, lower: Iterable[str] = ()) -> str:
    """``out of memory allocating 74.5 GiB (an array of shape ... float32); lower ...``."""
    text = str(exc).strip()
    what = ""
    shape, dtype = getattr(exc, "shape", None), getattr(exc, "dtype", None)
    match = re.search(r"(?:allocate|Tried to allocate) ([\d.]+ ?[KMGT]?i?B)", text)
    if match:
        what = f" allocating {match.group(1)}"
    else:
        match = re.search(r"tried to allocate (\d+) bytes", text)
        if match:
            what = f" allocating {_size(int(match.group(1)))}"
    if shape is not None:
        what += f" (an array of shape {tuple(shape)}, {dtype})"
    tips = list(lower)
    advice = f"; lower {', '.join(tips)}" if tips else ""
    return f"out of memory{what}{advice}"


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def failure_line(exc: BaseException, lower: Iterable[str] = ()) -> tuple[str, int] | None:
    """``(line, exit code)`` for an operating-system error or memory exhaustion; None for
    anything else (a user error is a ZooError; the rest is a bug)."""
    os_error = as_os_error(exc)
    if os_error is not None:
        return os_error_line(os_error)
    if is_out_of_memory(exc):
        return memory_error_line(exc, lower), 1
    return None


#: Where a bug in inpaint-zoo is reported (the first line before its traceback says so).
BUG_REPORT = "report it to the inpaint-zoo maintainers (the project's issue tracker) with the command and the traceback below"


def bug_line(exc: BaseException) -> str:
    """The line before a bug's traceback: not the user's fault, whom to tell."""
    first = str(exc).splitlines()[0] if str(exc) else ""
    return f"a bug in inpaint-zoo: {type(exc).__name__}" + (f": {first}" if first else "") + f" ({BUG_REPORT})"


def plain_warnings(_worker: object = None) -> None:
    """Show warnings as ``Warning: MESSAGE`` lines with no source line, library deprecation
    notices hidden: for the processes a command starts (``--devices N``, DataLoader workers:
    ``worker_init_fn``), which do not run inside the CLI's handler (zoo_cli.main.user_warnings)."""
    import sys
    import warnings

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        print(f"Warning: {message}", file=sys.stderr, flush=True)

    warnings.showwarning = show
    for category in (DeprecationWarning, PendingDeprecationWarning, FutureWarning):
        warnings.simplefilter("ignore", category)
