"""RePaint's resampling schedule (Lugmayr et al. 2022, sec. 4.2 and Algorithm 1).

The schedule is a walk over chain levels: from ``t_T - 1`` down to ``-1`` (the clean
image), and every ``jump_length`` levels it jumps back up ``jump_length`` levels
(re-noising) to denoise that stretch again, ``jump_n_sample - 1`` times per jump point.
A step down calls the network once; a step up (the "undo" step) costs nothing but noise.

``jump_points`` returns the same list as the published ``get_schedule_jump`` of
andreas128/RePaint with all its options (``jump2_*`` / ``jump3_*``: two inner tiers of
jumps, ``start_resampling``: resample only from that level down, ``n_sample``: one-level
resamplings at every step); ``tests/fixtures/repaint_schedule_jump.json`` holds the official
lists for a grid of settings. For 250 / 10 / 10 it has 4,571 points, 2,410 steps down and
2,160 steps up.
"""

from __future__ import annotations

from dataclasses import dataclass

from zoo.errors import ZooError

_NO_LIMIT = 100_000_000  # start_resampling=None: the official default, larger than any chain


def _counters(t_T: int, length: int, n_sample: int) -> dict[int, int]:
    """Jump points 0, L, 2L, ... below ``t_T - L``, each with ``n_sample - 1`` jumps left."""
    return {j: n_sample - 1 for j in range(0, t_T - length, length)}


def jump_points(
    t_T: int,
    jump_length: int,
    jump_n_sample: int,
    jump2_length: int = 1,
    jump2_n_sample: int = 1,
    jump3_length: int = 1,
    jump3_n_sample: int = 1,
    start_resampling: int | None = None,
    n_sample: int = 1,
) -> list[int]:
    """Levels visited, ``[t_T - 1, ..., -1]``; consecutive points differ by exactly 1.

    Three nested tiers of jumps (``jump*_length`` levels back up, ``jump*_n_sample - 1``
    times per jump point); taking an outer jump refills the counters of the tiers inside it,
    so each outer stretch is resampled with the inner pattern again. Jumps (and the
    ``n_sample`` one-level resamplings) happen only at levels ``<= start_resampling`` (minus
    the jump's length); ``None`` means everywhere.
    """
    values = (t_T, jump_length, jump_n_sample, jump2_length, jump2_n_sample, jump3_length, jump3_n_sample, n_sample)
    if min(values) < 1:
        raise ZooError(
            "schedule needs t_T, jump_length, jump_n_sample, jump2_length, jump2_n_sample, jump3_length, "
            f"jump3_n_sample, n_sample >= 1 (got {', '.join(map(str, values))})"
        )
    start = _NO_LIMIT if start_resampling is None else start_resampling
    tiers = [(jump3_length, jump3_n_sample), (jump2_length, jump2_n_sample), (jump_length, jump_n_sample)]  # innermost first
    left = [_counters(t_T, length, n) for length, n in tiers]
    t, points = t_T, []
    while t >= 1:
        t -= 1  # one step down (a network call)
        points.append(t)
        if t + 1 < t_T - 1 and t <= start:  # n_sample: one level up and down again, n_sample - 1 times
            for _ in range(n_sample - 1):
                points += [t + 1, t]
        for tier, (length, _) in enumerate(tiers):  # inner tiers first, each seeing the level the last left
            if left[tier].get(t, 0) > 0 and t <= start - length:
                left[tier][t] -= 1
                points += range(t + 1, t + length + 1)  # undo steps back up
                t += length
                for inner in range(tier):
                    left[inner] = _counters(t_T, *tiers[inner])
    points.append(-1)
    return points


def diffusers_points(t_T: int, jump_length: int, jump_n_sample: int) -> list[int]:
    """The level walk of diffusers' ``RePaintPipeline`` for the same parameters.

    diffusers visits the same pattern one level lower: it starts at ``t_T - 1``, takes one
    extra step down first, and its jump points are ``L - 1, 2L - 1, ...`` (it ends with
    re-noising the clean image once per jump). Same counts of steps down and up.
    """
    return [t_T - 1] + [p - 1 for p in jump_points(t_T, jump_length, jump_n_sample)[:-1]]


@dataclass(frozen=True)
class ScheduleCounts:
    points: int
    down: int  # network calls
    up: int  # undo (re-noising) steps


def count_steps(points: list[int]) -> ScheduleCounts:
    down = sum(1 for a, b in zip(points, points[1:]) if b < a)
    up = sum(1 for a, b in zip(points, points[1:]) if b > a)
    return ScheduleCounts(len(points), down, up)
