"""Geometric mask kinds: boxes, the center square, outpainting borders and RePaint's fixed masks.

RePaint (Lugmayr et al., CVPR 2022) evaluates at 256 px on LaMa's thin / thick masks plus four
fixed masks (``data/datasets/gt_keep_masks/{ev2li,genhalf,ex64,nn2}`` in the official repo):

* every second line: every other row is unknown (hole ratio 1/2);
* half: one half of the image is unknown (hole ratio 1/2);
* expand (``ex64``): only a center square of side 64/256 of the image is known, everything
  else must be generated (hole ratio 15/16);
* super-resolve 2x (``nn2``): only the pixels on a stride-2 grid are known (hole ratio 3/4),
  i.e. nearest-neighbour super-resolution.

The official repository ships these as PNG files downloaded by ``download.sh``; they are
rebuilt here from that description (see docs/data.md for what could not be checked offline).
"""

from __future__ import annotations

import numpy as np


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


def outpaint_mask(
    height: int,
    width: int,
    rng: np.random.Generator,
    min_padding: float = 0.04,
    max_padding: float = 0.25,
    side_proba: float = 0.5,
) -> np.ndarray:
    """LaMa's ``OutpaintingMaskGenerator`` with its defaults: each border (left, top, right,
    bottom) is masked with probability 1/2 over a depth of 4 %-25 % of the image; if no
    border was chosen, one is picked uniformly."""
    mask = np.zeros((height, width), np.float32)

    def depth(size: int) -> int:
        return int(rng.integers(int(min_padding * size), int(max_padding * size)))

    # padding depths are drawn first (left, top, right, bottom), then the coin flips
    d = [depth(width), depth(height), depth(width), depth(height)]
    chosen = [rng.random() < side_proba for _ in range(4)]
    if not any(chosen):
        chosen[int(rng.integers(4))] = True
    if chosen[0]:
        mask[:, : d[0]] = 1
    if chosen[1]:
        mask[: d[1], :] = 1
    if chosen[2]:
        mask[:, width - d[2] :] = 1
    if chosen[3]:
        mask[height - d[3] :, :] = 1
    return mask


def every_second_line(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """Rows 1, 3, 5, ... are holes (RePaint ``ev2li``)."""
    mask = np.zeros((height, width), np.float32)
    mask[1::2] = 1
    return mask


def half_mask(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """The right half is the hole (RePaint ``genhalf``: generate half the image)."""
    mask = np.zeros((height, width), np.float32)
    mask[:, width // 2 :] = 1
    return mask


def expand_mask(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """Only the centered (H/4, W/4) square is known (RePaint ``ex64``: 64 px of 256)."""
    mask = np.ones((height, width), np.float32)
    kh, kw = max(1, height // 4), max(1, width // 4)
    top, left = (height - kh) // 2, (width - kw) // 2
    mask[top : top + kh, left : left + kw] = 0
    return mask


def super_resolve_2x(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """Only pixels (2i, 2j) are known (RePaint ``nn2``)."""
    mask = np.ones((height, width), np.float32)
    mask[0::2, 0::2] = 0
    return mask
