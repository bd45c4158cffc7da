"""Free-form masks of CoModGAN (Zhao et al., ICLR 2021) and MAT (Li et al., CVPR 2022).

Both papers draw masks with the same ``RandomMask(s, hole_range)`` routine and differ only
in how many shapes they try (``datasets/mask_generator_{256,512}[_small].py`` in MAT,
``training/mask_generator.py`` in CoModGAN):

* up to ``n_half`` rectangles with sides below s/2 and up to ``n_full`` below s, each of
  which may stick out of the image by half its size;
* up to ``n_brush`` brush strokes: 4-17 vertices joined by segments of length
  ~N(s*sqrt(2)/8, s*sqrt(2)/16) clipped to [0, 2x], turning around 2*pi/5 +- 2*pi/15
  (mirrored on every other vertex), width 12-47 px, with round joints;
* the whole stroke layer flipped vertically and/or horizontally with probability 1/2 each;
* masks whose hole ratio is not strictly inside ``hole_range`` are redrawn.

("Up to n" is ``randint(n)``: 0..n-1 tries.) The counts scale with
``coef = min(lo + hi, 1)``; with the published ``hole_range = [0, 1]`` it is 1.

Strokes are drawn with ``cv2.line`` (thickness = width, round caps) and filled circles at the
vertices instead of PIL's ``ImageDraw.line`` + ellipses: the same shape up to a pixel on the
border of each stroke, and integer-exact on every machine.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from zoo.errors import ZooError


@dataclass(frozen=True)
class FreeFormProtocol:
    n_half: int  # MultiFill(n_half, s // 2)
    n_full: int  # MultiFill(n_full, s)
    n_brush: int  # RandomBrush(n_brush, s)
    size: int  # canvas of the published generator
    hole_range: tuple[float, float] = (0.0, 1.0)


# (n_half, n_full, n_brush) as published.
PROTOCOLS: dict[str, FreeFormProtocol] = {
    "mat-large-512": FreeFormProtocol(5, 3, 9, 512),  # datasets/mask_generator_512.py (training and "large")
    "mat-small-512": FreeFormProtocol(3, 2, 4, 512),  # datasets/mask_generator_512_small.py
    "mat-large-256": FreeFormProtocol(4, 2, 8, 256),  # datasets/mask_generator_256.py
    "mat-small-256": FreeFormProtocol(2, 2, 3, 256),  # datasets/mask_generator_256_small.py
    "comodgan-512": FreeFormProtocol(10, 5, 20, 512),  # co-mod-gan training/mask_generator.py
}

MEAN_ANGLE = 2 * math.pi / 5
ANGLE_RANGE = 2 * math.pi / 15
MIN_WIDTH, MAX_WIDTH = 12, 48
MIN_VERTEX, MAX_VERTEX = 4, 18


def _fill(mask: np.ndarray, n_tries: int, max_size: int, rng: np.random.Generator) -> None:
    """``MultiFill``: up to n_tries - 1 rectangles (1 = hole here)."""
    s = mask.shape[0]
    if n_tries < 1:  # the official code would fail on randint(0); nothing to draw
        return
    for _ in range(int(rng.integers(n_tries))):
        w, h = int(rng.integers(max_size)), int(rng.integers(max_size))
        ww, hh = w // 2, h // 2
        x = int(rng.integers(-ww, s - w + ww))
        y = int(rng.integers(-hh, s - h + hh))
        mask[max(y, 0) : min(y + h, s), max(x, 0) : min(x + w, s)] = 1


def random_brush(s: int, n_tries: int, rng: np.random.Generator) -> np.ndarray:
    """``RandomBrush``: (s, s) uint8, 1 = stroke."""
    mask = np.zeros((s, s), np.uint8)
    average_radius = math.sqrt(2 * s * s) / 8
    for _ in range(int(rng.integers(n_tries)) if n_tries >= 1 else 0):
        num_vertex = int(rng.integers(MIN_VERTEX, MAX_VERTEX))
        angle_min = MEAN_ANGLE - rng.uniform(0, ANGLE_RANGE)
        angle_max = MEAN_ANGLE + rng.uniform(0, ANGLE_RANGE)
        angles = [2 * math.pi - rng.uniform(angle_min, angle_max) if i % 2 == 0 else rng.uniform(angle_min, angle_max) for i in range(num_vertex)]
        vertex = [(int(rng.integers(0, s)), int(rng.integers(0, s)))]
        for a in angles:
            r = min(max(rng.normal(average_radius, average_radius // 2), 0.0), 2 * average_radius)
            nx = min(max(vertex[-1][0] + r * math.cos(a), 0.0), float(s))
            ny = min(max(vertex[-1][1] + r * math.sin(a), 0.0), float(s))
            vertex.append((int(nx), int(ny)))
        width = int(rng.uniform(MIN_WIDTH, MAX_WIDTH))
        cv2.polylines(mask, [np.array(vertex, np.int32)], False, 1, width)
        for v in vertex:
            cv2.circle(mask, v, width // 2, 1, -1)
        rng.random(), rng.random()  # the official code draws two (unused) flips here
    if rng.random() > 0.5:
        mask = mask[::-1]
    if rng.random() > 0.5:
        mask = mask[:, ::-1]
    return np.ascontiguousarray(mask)


def free_form_mask(proto: FreeFormProtocol, rng: np.random.Generator, max_draws: int = 1000) -> np.ndarray:
    """``RandomMask(s, hole_range)``: (s, s) uint8, 1 = hole."""
    s = proto.size
    lo, hi = proto.hole_range
    coef = min(lo + hi, 1.0)
    for _ in range(max_draws):
        mask = np.zeros((s, s), np.uint8)
        _fill(mask, int(proto.n_half * coef), s // 2, rng)
        _fill(mask, int(proto.n_full * coef), s, rng)
        mask |= random_brush(s, int(proto.n_brush * coef), rng)
        ratio = np.count_nonzero(mask) / mask.size
        if lo < ratio < hi:
            return mask
    raise ZooError(f"no free-form mask with hole ratio in ({lo}, {hi}) after {max_draws} draws")
