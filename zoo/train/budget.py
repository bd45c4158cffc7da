"""``--time-budget``: train until a time budget is spent, then save as usual.

Two clocks (``--budget-clock``): ``wall`` (default) counts wall-clock seconds; ``cpu``
counts the CPU seconds of the training process (``time.process_time``: every thread of the
process, user + system; DataLoader worker processes are not counted, so a CPU budget
assumes ``num_workers=0``, the default). On a CPU, ``cpu`` with one thread
(``OMP_NUM_THREADS=1``) is "CPU-minutes": other load on the machine slows the run down but
does not change the compute it gets, so methods trained one beside the other, or beside
other work, still get equal compute. On a GPU use ``wall`` (the GPU's time is not CPU time).

The clock of one :func:`zoo.train.fit` call starts when the engine's setup is done (library
imports, building optimizers and loading a checkpoint to resume do not count: they are
per-process costs, seconds on a loaded CPU, not training); the data pipeline, every step
with its validation, sample grids and checkpoints count. It adds the seconds earlier runs
of the same folder spent (kept in each checkpoint), so ``--resume`` continues with what is
left. The run stops after the step at which the time spent plus one
more step (the median of the steps timed so far) would pass the budget, and saves its
final checkpoint: it ends within the budget plus about one step and the save.

The learning-rate schedule needs a length. After the first step (which pays for warm-up
work) the engine times :data:`PROBE_STEPS` steps, then fixes the expected step count once:
``expected = steps done + floor(seconds left / median seconds per step)``. The task's
``total_steps`` is set to it, and schedules written with :meth:`TrainTask.schedule_steps`
stretch or shrink to it, so warm-up and decay still happen inside the budget. The count
is stored in the checkpoint and kept on ``--resume`` (the same budget); a resume with a
larger budget measures again.
"""

from __future__ import annotations

import statistics
import time

PROBE_STEPS = 5  # steps timed (after the first) before the expected step count is fixed
CLOCKS = ("wall", "cpu")


class BudgetClock:
    """Seconds spent by one fit call (plus earlier runs of it) against ``budget_s``."""

    def __init__(self, budget_s: float | None, clock: str = "wall") -> None:
        self.budget_s = budget_s
        self.clock = clock
        self._now = time.process_time if clock == "cpu" else time.perf_counter
        self.started = self._now()
        self.spent_before = 0.0  # seconds of earlier runs of this folder (from the checkpoint)
        self.times: list[float] = []  # this run's step times, first step excluded
        self.last: float | None = None
        self.first_done = False
        self.expected: int | None = None
        self.sec_per_step: float | None = None

    @property
    def active(self) -> bool:
        return self.budget_s is not None

    def elapsed(self) -> float:
        return self.spent_before + (self._now() - self.started)

    def remaining(self) -> float:
        return float("inf") if self.budget_s is None else self.budget_s - self.elapsed()

    def begin(self) -> None:
        """Setup is done: the clock runs (step times are measured from here too)."""
        self.started = self.last = self._now()

    def tick(self, step: int) -> int | None:
        """A step finished (``step`` steps done); returns the expected step count on the
        tick that fixes it, else None."""
        now = self._now()
        if self.last is not None:
            if self.first_done:
                self.times.append(now - self.last)
            self.first_done = True
        self.last = now
        if self.active and self.expected is None and len(self.times) >= PROBE_STEPS:
            self.sec_per_step = statistics.median(self.times)
            self.expected = step + max(0, int(self.remaining() / self.sec_per_step))
            return self.expected
        return None

    def next_step_estimate(self) -> float:
        if self.times:
            return statistics.median(self.times[-PROBE_STEPS * 4 :])
        return 0.0

    def spent(self) -> bool:
        """Whether to stop now: one more step would pass the budget."""
        return self.active and self.elapsed() + self.next_step_estimate() >= float(self.budget_s)  # type: ignore[arg-type]

    def state(self) -> dict:
        return {"elapsed_s": round(self.elapsed(), 3), "time_budget_s": self.budget_s, "expected_steps": self.expected, "sec_per_step": self.sec_per_step, "clock": self.clock}

    def load(self, state: dict) -> None:
        """Continue from a checkpoint's :meth:`state` (the expected count is kept when the
        budget is the same)."""
        self.spent_before = float(state.get("elapsed_s") or 0.0)
        if state.get("time_budget_s") == self.budget_s and state.get("clock", "wall") == self.clock and state.get("expected_steps"):
            self.expected = int(state["expected_steps"])
            self.sec_per_step = state.get("sec_per_step")


def checkpoint_budget(ckpt_dir) -> dict:
    """The budget state a checkpoint folder holds (``elapsed_s``, ...), read from its
    metadata only; {} for a checkpoint without one."""
    import json
    from pathlib import Path

    from safetensors import safe_open

    from zoo.train.state import META_KEY, STATE_FILE

    try:
        with safe_open(str(Path(ckpt_dir) / STATE_FILE), framework="pt") as fh:
            tree = json.loads((fh.metadata() or {}).get(META_KEY, "{}"))
    except Exception:  # noqa: BLE001 - unreadable: no budget state (resume reports the file)
        return {}
    budget = tree.get("budget") if isinstance(tree, dict) else None
    return budget if isinstance(budget, dict) else {}


BUDGET_WITH_STEPS = ("--time-budget and --steps both given: a budgeted run trains until its time is spent, whatever the step count; "
                     "give --time-budget alone (or --steps alone for a fixed length)")


def budget_record(options, result) -> dict:
    """RUN/run.json's ``budget``: the wall-clock budget (None: trained by steps), the steps
    reached and the seconds spent, in all and per stage (each stage's seconds include the
    earlier runs of a resumed stage)."""
    stages = list(getattr(result, "stages", None) or [])
    return {
        "time_budget_s": getattr(options, "time_budget_s", None),
        "clock": getattr(options, "budget_clock", None) or "wall",
        "steps_reached": int(result.step),
        "seconds": round(sum(float(s.get("seconds") or 0.0) for s in stages), 3),
        "stages": stages,
    }


__all__ = ["BUDGET_WITH_STEPS", "BudgetClock", "CLOCKS", "PROBE_STEPS", "budget_record", "checkpoint_budget"]
