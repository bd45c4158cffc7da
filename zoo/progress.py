"""One switch for the progress bars that a sampler or a per-image optimiser draws inside a
command's own bar (RePaint's resampling loop, DiT-MCA's chain, DIP's iterations).

Those loops are called through ``zoo_sample`` hooks, which have no progress argument, so a
command that was asked for ``--no-progress`` (``zoo study``, ``zoo compare``, ...) silences
them with :func:`silenced` (or the environment variable ``ZOO_NO_PROGRESS=1``, which also
reaches worker processes); a loop asks :func:`enabled` before it draws a bar.
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterator

ENV = "ZOO_NO_PROGRESS"


def enabled(progress: bool = True) -> bool:
    """Whether a loop may draw its bar: ``progress`` and not silenced."""
    return bool(progress) and os.environ.get(ENV, "") in ("", "0")


@contextlib.contextmanager
def silenced(active: bool = True) -> Iterator[None]:
    """Inner bars off inside the block (and in processes it starts); no-op when not ``active``."""
    if not active:
        yield
        return
    before = os.environ.get(ENV)
    os.environ[ENV] = "1"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = before


__all__ = ["ENV", "enabled", "silenced"]
