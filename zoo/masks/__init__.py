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

from typing import TYPE_CHECKING

from zoo.errors import choices_error
from zoo.masks.catalog import BUILTIN_KINDS
from zoo.spec import MaskGeneratorSpec

if TYPE_CHECKING:
    import numpy as np
    import torch

__all__ = ["make_mask", "mask_array", "mask_kind", "kinds", "mask_rng", "resize_nearest", "BUILTIN_KINDS", "box_mask", "center_mask"]

# The drawing code imports numpy and cv2 (make_mask: torch): it loads on first use, so that
# declaring the built-in kinds (``zoo list`` and ``zoo plugins`` collect every plugin's) and
# ``zoo masks list`` stay light.
_SIMPLE = ("box_mask", "center_mask", "every_second_line", "expand_mask", "half_mask", "outpaint_mask", "super_resolve_2x")


def __getattr__(name: str):
    if name in _SIMPLE:
        from zoo.masks import simple

        return getattr(simple, name)
    if name == "resize_nearest":
        from zoo.masks.canvas import resize_nearest

        return resize_nearest
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def kinds() -> dict[str, MaskGeneratorSpec]:
    from zoo.plugins import get_manager

    return {k.name: k for k in get_manager().collect("zoo_register_mask_generators")}


def mask_kind(name: str) -> MaskGeneratorSpec:
    found = kinds()
    if name not in found:
        raise choices_error("mask kind", name, found)
    return found[name]


def mask_rng(seed: int, index: int) -> np.random.Generator:
    import numpy as np

    return np.random.default_rng([int(seed) & 0xFFFFFFFF, int(index) & 0xFFFFFFFF])


def mask_array(kind: MaskGeneratorSpec | str, height: int, width: int, seed: int, index: int) -> np.ndarray:
    """Mask ``index`` of ``kind`` for ``seed`` as an (H, W) uint8 array, 1 = hole."""
    import numpy as np

    spec = mask_kind(kind) if isinstance(kind, str) else kind
    arr = np.asarray(spec.generate(height, width, mask_rng(seed, index)))
    if arr.shape != (height, width):
        raise ValueError(f"mask kind {spec.name!r} returned shape {arr.shape}, expected {(height, width)}")
    return (arr > 0.5).astype(np.uint8)


def make_mask(kind: MaskGeneratorSpec | str, height: int, width: int, seed: int, index: int) -> torch.Tensor:
    """Mask ``index`` of ``kind`` for ``seed``: (1, H, W) float, 1 = hole."""
    import numpy as np
    import torch

    return torch.from_numpy(mask_array(kind, height, width, seed, index).astype(np.float32))[None]
