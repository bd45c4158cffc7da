"""MaskGIT's mask schedules gamma(r): the share of tokens still masked at progress r in [0, 1].

Every schedule decreases from gamma(0) (1, except ``exp``: 1 - 1/N) to gamma(1) = 0 exactly;
``log`` and ``exp`` depend on N, the number of tokens to generate, as in the official
``mask_schedule.schedule``. Training masks ceil(gamma(r) * N) tokens with r ~ U(0, 1);
decoding keeps ceil(gamma((t+1)/T) * N) tokens masked after iteration t.
"""

from __future__ import annotations

import math

from zoo.errors import choices_error
from zoo_plugins.maskgit.config import SCHEDULES


def gamma(schedule: str, r: float, n: int = 256) -> float:
    """gamma(r) in [0, 1] for progress r in [0, 1]; n = tokens to generate (log, exp)."""
    if schedule not in SCHEDULES:
        raise choices_error("mask schedule", schedule, SCHEDULES)
    r = min(max(float(r), 0.0), 1.0)
    if r >= 1.0:
        return 0.0  # exactly: cos(pi / 2) is 6e-17 in floats, and ceil(6e-17 * N) would be 1
    n = max(int(n), 2)
    if schedule == "cosine":
        g = math.cos(math.pi / 2 * r)
    elif schedule == "linear":
        g = 1.0 - r
    elif schedule == "square":
        g = 1.0 - r**2
    elif schedule == "cubic":
        g = 1.0 - r**3
    elif schedule == "sqrt":
        g = 1.0 - math.sqrt(r)
    elif schedule == "log":
        g = 1.0 if r <= 0 else -math.log2(r) / math.log2(n)
    else:  # exp
        g = 1.0 - 2.0 ** (-math.log2(n) * (1.0 - r))
    return min(max(g, 0.0), 1.0)


def masked_count(schedule: str, r: float, n: int) -> int:
    """ceil(gamma(r) * n): tokens masked at progress r."""
    return min(n, math.ceil(gamma(schedule, r, n) * n - 1e-9))
