"""Published protocols drawn on their own canvas and resized to the requested size.

A protocol (LaMa's, MAT's) is defined at 256 or 512 px; drawing it there and resizing with
integer nearest-neighbour indexing keeps the published hole-ratio distribution at any size.
"""

from __future__ import annotations

from typing import Callable

import numpy as np


def resize_nearest(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour resize with integer index arithmetic (exact on every machine)."""
    h, w = mask.shape
    if (h, w) == (height, width):
        return mask
    rows = (np.arange(height, dtype=np.int64) * h) // height
    cols = (np.arange(width, dtype=np.int64) * w) // width
    return mask[rows[:, None], cols[None, :]]


def on_canvas(draw: Callable[[np.random.Generator], np.ndarray], height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """``draw(rng)`` on the protocol's canvas, resized to (height, width), float32."""
    return resize_nearest(draw(rng), height, width).astype(np.float32)
