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
