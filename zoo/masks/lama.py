"""LaMa's random masks (Suvorov et al., WACV 2022), re-implemented from the published protocol.

Three building blocks, each a function of a ``numpy.random.Generator`` and a canvas size:

* **irregular strokes**: ``times`` poly-lines, each of 1-5 straight segments drawn with
  ``cv2.line`` (integer end points, so the pixels are the same on every machine); a segment
  turns by one of four fixed angles (0.01, 1.01, 2.01, 3.01 rad, mirrored on every other
  stroke), has length ``10 + U{0..max_len-1}`` and width ``5 + U{0..max_width-1}``.
* **boxes**: ``times`` axis-aligned rectangles with sides in ``[bbox_min, bbox_max]`` and a
  margin to the border.
* **the mixture**: one of the two, chosen with the (renormalised) probabilities.

The evaluation sets (``configs/data_gen/random_{thin,medium,thick}_{256,512}.yaml``) draw from
the mixture at 256 or 512 px and **reject any mask covering more than 50 %** of the image
(``max_tamper_area: 0.5``); keeping one of 5 variants that pass is the same distribution as
drawing until one passes, which is what :func:`lama_eval_mask` does.

Two quirks of the official generators with no ramp (``ramp_kwargs=None``) are kept because
they change the distribution: the stroke count is drawn from ``[min_times, max_times + 1]``
and the box side from ``[bbox_min, bbox_max]`` (one more than the config says).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from zoo.errors import ZooError

# (sin, cos) of the four stroke angles 0.01 + k (k = 0..3) and of their mirrors
# 2 * 3.1415926 - angle, as LaMa computes them. Written out as literals (computed once with
# math.sin / math.cos) so that no libm difference between machines can move an end point.
_ANGLE_SIN_COS = {
    (0, False): (0.009999833334166664, 0.9999500004166653),
    (0, True): (-0.0099999405083938, 0.9999499993448815),
    (1, False): (0.8468318446180152, 0.5318607213743555),
    (1, True): (-0.8468319016226223, 0.5318606306112658),
    (2, False): (0.905090563325201, -0.4252188520981522),
    (2, True): (-0.9050905177504152, -0.42521894910538194),
    (3, False): (0.13121319215018423, -0.9913541739488259),
    (3, True): (-0.1312130858972532, -0.9913541880121958),
}


@dataclass(frozen=True)
class StrokeParams:
    """``irregular_kwargs`` of a LaMa config."""

    min_times: int
    max_times: int
    max_width: int
    max_len: int
    max_angle: int = 4


@dataclass(frozen=True)
class BoxParams:
    """``box_kwargs`` of a LaMa config."""

    margin: int
    bbox_min_size: int
    bbox_max_size: int
    min_times: int
    max_times: int


@dataclass(frozen=True)
class LamaProtocol:
    """One LaMa mask configuration: strokes (+ optional boxes), canvas size, coverage cap."""

    strokes: StrokeParams
    boxes: BoxParams | None  # None: box_proba = 0
    box_proba: float  # relative to irregular_proba = 1 (renormalised)
    size: int  # the canvas the published masks are drawn on
    max_area: float = 1.0  # reject masks covering more than this fraction (eval sets: 0.5)


# Published settings: configs/data_gen/random_*_{256,512}.yaml (eval sets) and
# configs/training/data/abl-04-256-mh-dist.yaml (training mixture of big-lama / lama-fourier).
PROTOCOLS: dict[str, LamaProtocol] = {
    "thin-256": LamaProtocol(StrokeParams(4, 50, 10, 40), None, 0.0, 256, 0.5),
    "medium-256": LamaProtocol(StrokeParams(4, 5, 50, 100), BoxParams(0, 10, 50, 1, 5), 0.3, 256, 0.5),
    "thick-256": LamaProtocol(StrokeParams(1, 5, 100, 200), BoxParams(10, 30, 150, 1, 3), 0.3, 256, 0.5),
    "thin-512": LamaProtocol(StrokeParams(4, 70, 20, 100), None, 0.0, 512, 0.5),
    "medium-512": LamaProtocol(StrokeParams(4, 10, 100, 200), BoxParams(0, 30, 150, 1, 5), 0.3, 512, 0.5),
    "thick-512": LamaProtocol(StrokeParams(1, 5, 250, 450), BoxParams(10, 30, 300, 1, 4), 0.3, 512, 0.5),
    "train": LamaProtocol(StrokeParams(1, 5, 100, 200), BoxParams(10, 30, 150, 1, 4), 1.0, 256, 1.0),
}


def irregular_strokes(height: int, width: int, p: StrokeParams, rng: np.random.Generator) -> np.ndarray:
    """LaMa's ``make_random_irregular_mask`` (draw_method=LINE): (H, W) uint8, 1 = hole."""
    mask = np.zeros((height, width), np.uint8)
    times = int(rng.integers(p.min_times, p.max_times + 2))  # [min, max + 1]: the no-ramp quirk
    for i in range(times):
        x, y = int(rng.integers(width)), int(rng.integers(height))
        for _ in range(1 + int(rng.integers(5))):
            k = int(rng.integers(p.max_angle))
            sin, cos = _ANGLE_SIN_COS[(k, i % 2 == 0)]
            length = 10 + int(rng.integers(p.max_len))
            brush = 5 + int(rng.integers(p.max_width))
            # float64 product, truncated toward zero like numpy's astype(int32), then clipped
            end_x = min(max(int(x + length * sin), 0), width)
            end_y = min(max(int(y + length * cos), 0), height)
            cv2.line(mask, (x, y), (end_x, end_y), 1, brush)
            x, y = end_x, end_y
    return mask


def random_boxes(height: int, width: int, p: BoxParams, rng: np.random.Generator) -> np.ndarray:
    """LaMa's ``make_random_rectangle_mask`` with no ramp: (H, W) uint8, 1 = hole."""
    mask = np.zeros((height, width), np.uint8)
    bbox_max = min(p.bbox_max_size + 1, height - 2 * p.margin, width - 2 * p.margin)
    if bbox_max <= p.bbox_min_size:
        raise ZooError(f"LaMa boxes need images larger than {p.bbox_min_size + 2 * p.margin} px")
    for _ in range(int(rng.integers(p.min_times, p.max_times + 1))):
        bw = int(rng.integers(p.bbox_min_size, bbox_max))
        bh = int(rng.integers(p.bbox_min_size, bbox_max))
        x0 = int(rng.integers(p.margin, width - p.margin - bw + 1))
        y0 = int(rng.integers(p.margin, height - p.margin - bh + 1))
        mask[y0 : y0 + bh, x0 : x0 + bw] = 1
    return mask


def mixed_mask(height: int, width: int, proto: LamaProtocol, rng: np.random.Generator) -> np.ndarray:
    """LaMa's ``MixedMaskGenerator``: strokes with probability 1 / (1 + box_proba), else boxes."""
    if proto.boxes is not None and proto.box_proba > 0 and rng.random() * (1.0 + proto.box_proba) >= 1.0:
        return random_boxes(height, width, proto.boxes, rng)
    return irregular_strokes(height, width, proto.strokes, rng)


def lama_mask(height: int, width: int, proto: LamaProtocol, rng: np.random.Generator, max_draws: int = 50) -> np.ndarray:
    """A mask of ``proto`` at (height, width); masks over ``proto.max_area`` are redrawn
    (gen_mask_dataset.py gives up after 10 attempts of 5 variants: 50 draws)."""
    for _ in range(max_draws):
        mask = mixed_mask(height, width, proto, rng)
        if np.count_nonzero(mask) <= proto.max_area * mask.size:
            return mask
    raise ZooError(f"no LaMa mask under {proto.max_area:.0%} coverage in {max_draws} draws at {height}x{width}")
