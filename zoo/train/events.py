"""Listening to the engine's steps from outside a plugin: ``with step_listener(fn): ...``.

Every optimizer step of every :func:`zoo.train.fit` call running in this process while the
``with`` block is open calls ``fn(event)`` once, on every process, after the engine's own
per-step work (EMA, logging, progress) and before validation and checkpoints. ``zoo bench
--train`` times steps with it; a notebook can plot losses live with it.

``event.seconds`` is the step's wall time: from taking the batch to the end of the per-step
work, with CUDA synchronised first when a listener is open (so GPU steps are timed, not just
queued). A multi-stage method (maskgit, dit-mca) runs one ``fit`` per stage: ``event.out_dir``
says which (``RUN/vae``, ``RUN/tokenizer``, ...). A listener that raises stops the training
like any other error, so keep them small.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator


@dataclass(frozen=True)
class StepEvent:
    """One finished optimizer step."""

    method: str
    step: int  # steps done in this run, this one included (1, 2, ...)
    steps: int  # the run's target
    out_dir: Path  # the run (or stage) folder of this fit call
    seconds: float  # wall time of this step (see the module docstring)
    rank: int  # this process's rank (0 on one process)
    logs: dict[str, float] = field(default_factory=dict)  # this step's losses, this process's values
    skipped: tuple[str, ...] = ()  # phases whose update was skipped (NaN/Inf loss)


_LISTENERS: list[Callable[[StepEvent], None]] = []


@contextlib.contextmanager
def step_listener(fn: Callable[[StepEvent], None]) -> Iterator[None]:
    """Call ``fn(event)`` after every engine step while inside the block."""
    _LISTENERS.append(fn)
    try:
        yield
    finally:
        _LISTENERS.remove(fn)


def listening() -> bool:
    """Whether any listener is open (the engine syncs CUDA for the step time only then)."""
    return bool(_LISTENERS)


def emit(event: StepEvent) -> None:
    for fn in list(_LISTENERS):
        fn(event)


__all__ = ["StepEvent", "emit", "listening", "step_listener"]
