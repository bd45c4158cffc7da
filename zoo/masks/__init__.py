"""Mask kinds: seeded generators of hole masks (1 = hole), extensible through plugins.

``mask_kind(name)`` returns a :class:`zoo.MaskGeneratorSpec`; ``make_mask(kind, h, w,
seed, index)`` draws mask ``index`` of the sequence for ``seed`` (same arguments, same
mask on every machine).
"""

from __future__ import annotations

import numpy as np
import torch

from zoo.errors import choices_error
from zoo.spec import MaskGeneratorSpec


def box_mask(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """One axis-aligned box covering 10 %-50 % of the image area."""
    area = rng.uniform(0.1, 0.5)
    aspect = np.exp(rng.uniform(np.log(0.5), np.log(2.0)))
    bh = int(round(min(height, np.sqrt(area * height * width * aspect))))
    bw = int(round(min(width, area * height * width / max(bh, 1))))
    top = int(rng.integers(0, height - bh + 1))
    left = int(rng.integers(0, width - bw + 1))
    mask = np.zeros((height, width), np.float32)
    mask[top : top + bh, left : left + bw] = 1.0
    return mask


def center_mask(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """The centered box of half the height and width (25 % of the area)."""
    mask = np.zeros((height, width), np.float32)
    mask[height // 4 : height // 4 + height // 2, width // 4 : width // 4 + width // 2] = 1.0
    return mask


BUILTIN_KINDS = [
    MaskGeneratorSpec("box", "one random axis-aligned box, 10-50 % of the area", box_mask),
    MaskGeneratorSpec("center", "the centered box of half height and width", center_mask),
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


def make_mask(kind: MaskGeneratorSpec | str, height: int, width: int, seed: int, index: int) -> torch.Tensor:
    """Mask ``index`` of ``kind`` for ``seed``: (1, H, W) float, 1 = hole."""
    spec = mask_kind(kind) if isinstance(kind, str) else kind
    arr = spec.generate(height, width, mask_rng(seed, index))
    return torch.from_numpy(np.asarray(arr, dtype=np.float32))[None]
