"""RePaint's resampling schedule (Lugmayr et al. 2022, sec. 4.2 and Algorithm 1).

The schedule is a walk over chain levels: from ``t_T - 1`` down to ``-1`` (the clean
image), and every ``jump_length`` levels it jumps back up ``jump_length`` levels
(re-noising) to denoise that stretch again, ``jump_n_sample - 1`` times per jump point.
A step down calls the network once; a step up (the "undo" step) costs nothing but noise.

``jump_points`` returns the same list as the published ``get_schedule_jump(t_T, n_sample=1,
jump_length, jump_n_sample)`` of andreas128/RePaint: for 250 / 10 / 10 it has 4,571 points,
2,410 steps down and 2,160 steps up.
"""

from __future__ import annotations

from dataclasses import dataclass

from zoo.errors import ZooError


def jump_points(t_T: int, jump_length: int, jump_n_sample: int) -> list[int]:
    """Levels visited, ``[t_T - 1, ..., -1]``; consecutive points differ by exactly 1."""
    if t_T < 1 or jump_length < 1 or jump_n_sample < 1:
        raise ZooError(f"schedule needs t_T, jump_length, jump_n_sample >= 1 (got {t_T}, {jump_length}, {jump_n_sample})")
    # jump points 0, L, 2L, ... (below t_T - L), each re-visited jump_n_sample - 1 times
    jumps = {j: jump_n_sample - 1 for j in range(0, t_T - jump_length, jump_length)}
    t, points = t_T, []
    while t >= 1:
        t -= 1  # one step down (a network call)
        points.append(t)
        if jumps.get(t, 0) > 0:  # jump back up jump_length levels (undo steps)
            jumps[t] -= 1
            for _ in range(jump_length):
                t += 1
                points.append(t)
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
