"""Mask kinds: seeded generators of hole masks (1 = hole), extensible through plugins.

``mask_kind(name)`` returns a :class:`zoo.MaskGeneratorSpec`; ``make_mask(kind, h, w,
seed, index)`` draws mask ``index`` of the sequence for ``seed`` (same arguments, same
mask on every machine with the same numpy major version: all drawing is integer pixel
work with ``cv2.line`` / numpy slicing, and the random stream is numpy's PCG64).

Published protocols are drawn on their published canvas (256 or 512 px) and resized to the
requested size with integer nearest-neighbour indexing, so the hole-ratio distribution is the
published one at any resolution (a 64 px training run sees LaMa's masks scaled by 1/4).
Kinds named without a size (``lama-thick``, ``mat-large``) pick the 512 protocol when the
shorter requested side is at least 512 and the 256 protocol otherwise. See docs/data.md.
"""

from __future__ import annotations

from functools import partial
from typing import Callable

import numpy as np
import torch

from zoo.errors import choices_error
from zoo.masks import lama, mat
from zoo.masks.simple import (
    box_mask,
    center_mask,
    every_second_line,
    expand_mask,
    half_mask,
    outpaint_mask,
    super_resolve_2x,
)
from zoo.spec import MaskGeneratorSpec

__all__ = ["make_mask", "mask_array", "mask_kind", "kinds", "mask_rng", "resize_nearest", "BUILTIN_KINDS", "box_mask", "center_mask"]


def resize_nearest(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour resize with integer index arithmetic (exact on every machine)."""
    h, w = mask.shape
    if (h, w) == (height, width):
        return mask
    rows = (np.arange(height, dtype=np.int64) * h) // height
    cols = (np.arange(width, dtype=np.int64) * w) // width
    return mask[rows[:, None], cols[None, :]]


def _on_canvas(draw: Callable[[np.random.Generator], np.ndarray], height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    return resize_nearest(draw(rng), height, width).astype(np.float32)


def _lama(name: str | None, height: int, width: int, rng: np.random.Generator, family: str = "") -> np.ndarray:
    key = name or f"{family}-{512 if min(height, width) >= 512 else 256}"
    proto = lama.PROTOCOLS[key]
    return _on_canvas(lambda r: lama.lama_mask(proto.size, proto.size, proto, r), height, width, rng)


def _free_form(name: str | None, height: int, width: int, rng: np.random.Generator, family: str = "") -> np.ndarray:
    key = name or f"{family}-{512 if min(height, width) >= 512 else 256}"
    proto = mat.PROTOCOLS[key]
    return _on_canvas(lambda r: mat.free_form_mask(proto, r), height, width, rng)


def _lama_kinds() -> list[MaskGeneratorSpec]:
    specs = []
    blurbs = {
        "thin": "LaMa thin strokes (random_thin_{size}.yaml), <=50 % coverage",
        "medium": "LaMa medium strokes or 30 % boxes (random_medium_{size}.yaml), <=50 % coverage",
        "thick": "LaMa thick strokes or 30 % boxes (random_thick_{size}.yaml), <=50 % coverage",
    }
    for width_name, blurb in blurbs.items():
        specs.append(MaskGeneratorSpec(f"lama-{width_name}", blurb.format(size="256|512") + "; 512 protocol when the image is >=512 px", partial(_lama, None, family=width_name)))
        for size in (256, 512):
            specs.append(MaskGeneratorSpec(f"lama-{width_name}-{size}", blurb.format(size=size), partial(_lama, f"{width_name}-{size}")))
    specs.append(
        MaskGeneratorSpec(
            "lama-train",
            "LaMa's training mixture (abl-04-256-mh-dist.yaml): 1/2 thick strokes, 1/2 boxes, no cap",
            partial(_lama, "train"),
        )
    )
    return specs


def _mat_kinds() -> list[MaskGeneratorSpec]:
    specs = [
        MaskGeneratorSpec("mat-large", "MAT/CoModGAN-style free-form large masks (mask_generator_{256,512}.py); 512 protocol when >=512 px", partial(_free_form, None, family="mat-large")),
        MaskGeneratorSpec("mat-small", "MAT free-form small masks (mask_generator_{256,512}_small.py); 512 protocol when >=512 px", partial(_free_form, None, family="mat-small")),
        MaskGeneratorSpec("mat-train", "MAT's training masks: RandomMask(s, hole_range=[0, 1]) of mask_generator_{256,512}.py", partial(_free_form, None, family="mat-large")),
        MaskGeneratorSpec("comodgan", "CoModGAN's free-form masks (training/mask_generator.py, hole_range [0, 1]) at 512", partial(_free_form, "comodgan-512")),
    ]
    for size in (256, 512):
        specs.append(MaskGeneratorSpec(f"mat-large-{size}", f"MAT large masks, mask_generator_{size}.py", partial(_free_form, f"mat-large-{size}")))
        specs.append(MaskGeneratorSpec(f"mat-small-{size}", f"MAT small masks, mask_generator_{size}_small.py", partial(_free_form, f"mat-small-{size}")))
    return specs


BUILTIN_KINDS: list[MaskGeneratorSpec] = [
    MaskGeneratorSpec("box", "one random axis-aligned box, 10-50 % of the area", box_mask),
    MaskGeneratorSpec("center", "the centered box of half height and width", center_mask),
    MaskGeneratorSpec("outpaint", "LaMa outpainting borders: each side w.p. 1/2, 4-25 % deep", outpaint_mask),
    MaskGeneratorSpec("repaint-every-second-line", "RePaint ev2li: every second row unknown (50 %)", every_second_line),
    MaskGeneratorSpec("repaint-half", "RePaint genhalf: the right half unknown (50 %)", half_mask),
    MaskGeneratorSpec("repaint-expand", "RePaint ex64: only the center 1/4 x 1/4 known (93.75 %)", expand_mask),
    MaskGeneratorSpec("repaint-nn2", "RePaint nn2: only every second pixel of every second row known (75 %)", super_resolve_2x),
    *_lama_kinds(),
    *_mat_kinds(),
]


def kinds() -> dict[str, MaskGeneratorSpec]:
    from zoo.plugins import get_manager

    return {k.name: k for k in get_manager().collect("zoo_register_mask_generators")}


def mask_kind(name: str) -> MaskGeneratorSpec:
    found = kinds()
    if name not in found:
        raise choices_error("mask kind", name, found)
    return found[name]


def mask_rng(seed: int, index: int) -> np.random.Generator:
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, int(index) & 0xFFFFFFFF])


def mask_array(kind: MaskGeneratorSpec | str, height: int, width: int, seed: int, index: int) -> np.ndarray:
    """Mask ``index`` of ``kind`` for ``seed`` as an (H, W) uint8 array, 1 = hole."""
    spec = mask_kind(kind) if isinstance(kind, str) else kind
    arr = np.asarray(spec.generate(height, width, mask_rng(seed, index)))
    if arr.shape != (height, width):
        raise ValueError(f"mask kind {spec.name!r} returned shape {arr.shape}, expected {(height, width)}")
    return (arr > 0.5).astype(np.uint8)


def make_mask(kind: MaskGeneratorSpec | str, height: int, width: int, seed: int, index: int) -> torch.Tensor:
    """Mask ``index`` of ``kind`` for ``seed``: (1, H, W) float, 1 = hole."""
    return torch.from_numpy(mask_array(kind, height, width, seed, index).astype(np.float32))[None]
