"""Sliced Wasserstein distance (SWD) between Laplacian-pyramid patch descriptors.

Karras et al., "Progressive Growing of GANs for Improved Quality, Stability, and Variation"
(ICLR 2018), section 5 and appendix D, with the protocol of the paper's official code:

- a Laplacian pyramid of every image (5x5 binomial filter [1 4 6 4 1]^2 / 256, mirrored
  borders, as cv2.pyrDown/pyrUp), one level per resolution from the image size down to
  16 px (64 px images: 64, 32, 16; 256 px: 256 ... 16); the last level is the low-pass
  residual;
- at every level, 128 descriptors per image: 7x7x3 neighbourhoods whose centres lie at
  least 3 px from the border, drawn at random;
- each set's descriptors of one level normalised per colour channel by that set's own
  mean and standard deviation (over all its descriptors and their 49 pixels);
- the sliced distance: 4 repeats x 128 random unit directions (512 in all); the set of
  projections of each set is sorted and the mean absolute difference of the sorted values
  is the 1-D Wasserstein-1 distance; averaged over directions and repeats;
- multiplied by 1000, reported per level and averaged over the levels.

What differs from the official code: descriptor positions and directions come from a
seeded generator, and the i-th prediction gets the patch positions of the i-th ground
truth (the official code draws fresh positions for each set). So the metric is
deterministic, an identical set scores exactly 0, and the difference measured is the
content at the same places, not sampling noise. ``swd-hole`` draws its centres among the
hole pixels only (at each level, a pixel is in the hole when at least half of the
full-resolution pixels it covers are).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

NHOOD = 7  # descriptor side (pixels)
PER_IMAGE = 128  # descriptors per image per level
DIR_REPEATS = 4
DIRS_PER_REPEAT = 128  # 4 x 128 = 512 directions
MIN_RESOLUTION = 16  # the coarsest level
SCALE = 1e3  # reported x 1000, as in the paper
SEED = 0
CHUNK = 64  # images per pyramid batch

_BINOMIAL = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0


def level_resolutions(size: int) -> list[int]:
    """Pyramid levels for images whose smaller side is ``size``: size, size/2, ... >= 16."""
    out = []
    res = int(size)
    while res >= MIN_RESOLUTION:
        out.append(res)
        res //= 2
    return out


def _blur(x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
    """Separable 5x5 binomial filter with mirrored (reflect-101) borders; (B, C, H, W)."""
    c = x.shape[1]
    k = (_BINOMIAL * math.sqrt(gain)).to(x)
    x = F.pad(x, (2, 2, 2, 2), mode="reflect")
    x = F.conv2d(x, k.view(1, 1, 1, 5).expand(c, 1, 1, 5), groups=c)
    return F.conv2d(x, k.view(1, 1, 5, 1).expand(c, 1, 5, 1), groups=c)


def pyr_down(x: torch.Tensor) -> torch.Tensor:
    """Blur then keep every second pixel (cv2.pyrDown): (B, C, H, W) -> (B, C, ceil(H/2), ceil(W/2))."""
    return _blur(x)[:, :, ::2, ::2]


def pyr_up(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Zero-insert to twice the size, blur with gain 4 (cv2.pyrUp), crop to ``size``."""
    b, c, h, w = x.shape
    up = x.new_zeros(b, c, 2 * h, 2 * w)
    up[:, :, ::2, ::2] = x
    return _blur(up, gain=4.0)[:, :, : size[0], : size[1]]


def laplacian_pyramid(images: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """``levels`` band-pass images, finest first; the last one is the low-pass residual."""
    pyramid = [images.float()]
    for _ in range(1, levels):
        low = pyr_down(pyramid[-1])
        pyramid[-1] = pyramid[-1] - pyr_up(low, tuple(pyramid[-1].shape[-2:]))
        pyramid.append(low)
    return pyramid


def _centres(hole: torch.Tensor | None, h: int, w: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``PER_IMAGE`` descriptor centres (ys, xs, valid) at least NHOOD//2 px from the border;
    with ``hole`` (h, w) bool, among the hole pixels only (none valid where it has none)."""
    r = NHOOD // 2
    if hole is None:
        ys = rng.integers(r, h - r, PER_IMAGE)
        xs = rng.integers(r, w - r, PER_IMAGE)
        return ys, xs, np.ones(PER_IMAGE, dtype=bool)
    inner = hole.clone()
    inner[:r], inner[h - r :], inner[:, :r], inner[:, w - r :] = False, False, False, False
    cand = torch.nonzero(inner).numpy()
    if len(cand) == 0:
        return np.full(PER_IMAGE, r), np.full(PER_IMAGE, r), np.zeros(PER_IMAGE, dtype=bool)
    pick = cand[rng.integers(0, len(cand), PER_IMAGE)]
    return pick[:, 0], pick[:, 1], np.ones(PER_IMAGE, dtype=bool)


def _gather(level: torch.Tensor, ys: np.ndarray, xs: np.ndarray) -> torch.Tensor:
    """(B, 3, h, w) and centres (B, P) -> descriptors (B, P, 3 * 7 * 7)."""
    r = NHOOD // 2
    off = torch.arange(-r, r + 1)
    yy = torch.from_numpy(ys)[:, :, None, None] + off[None, None, :, None]  # (B, P, 7, 1)
    xx = torch.from_numpy(xs)[:, :, None, None] + off[None, None, None, :]  # (B, P, 1, 7)
    bb = torch.arange(level.shape[0])[:, None, None, None]
    patches = level.permute(0, 2, 3, 1)[bb, yy, xx]  # (B, P, 7, 7, 3)
    return patches.permute(0, 1, 4, 2, 3).reshape(level.shape[0], ys.shape[1], -1)


def descriptors(images: torch.Tensor, masks: torch.Tensor | None = None, *, start: int = 0, seed: int = SEED) -> dict[str, np.ndarray]:
    """Raw (unnormalised) descriptors of a batch of images of one size.

    ``images`` (B, 3, H, W); ``masks`` (B, 1, H, W), 1 = hole, for hole descriptors.
    Returns ``{"L<res>": (B, 128, 147) float32}`` per level and, with masks,
    ``{"L<res>.valid": (B, 128) uint8}`` (0 where an image has no hole pixel at that level).
    Image ``start + i`` gets the centres of generator ``(seed, level, start + i)``, so two
    sets paired by index (and by mask) get the same positions.
    """
    b, _, h, w = images.shape
    res = level_resolutions(min(h, w))
    if not res:
        raise ValueError(f"swd needs images of at least {MIN_RESOLUTION} px; got {w}x{h}")
    out: dict[str, np.ndarray] = {}
    for li, level in enumerate(laplacian_pyramid(images.detach().cpu(), len(res))):
        lh, lw = level.shape[-2:]
        hole = None
        if masks is not None:
            hole = F.interpolate(masks.detach().cpu().float(), size=(lh, lw), mode="area")[:, 0] >= 0.5
        ys, xs, valid = zip(*(_centres(None if hole is None else hole[i], lh, lw, np.random.default_rng([seed, li, start + i]))
                              for i in range(b)))
        key = f"L{min(lh, lw)}"  # the level's own size (odd sizes round up, as cv2.pyrDown)
        out[key] = _gather(level, np.stack(ys), np.stack(xs)).numpy().astype(np.float32)
        if masks is not None:
            out[key + ".valid"] = np.stack(valid).astype(np.uint8)
    return out


def extract(images: Sequence[Path], masks: Sequence[Path] | None = None, *, seed: int = SEED, progress: bool = False,
            desc: str = "swd descriptors") -> dict[str, np.ndarray]:
    """Descriptors of image files (all of one size), row i for file i; see :func:`descriptors`."""
    from tqdm.auto import tqdm

    from zoo.errors import ZooError
    from zoo.imageio import image_size, load_image, load_mask

    if masks is not None and len(masks) != len(images):
        raise ValueError("one mask per image")
    sizes = {image_size(p) for p in images}
    if len(sizes) > 1:
        a, b = sorted(sizes)[:2]
        raise ZooError(f"swd compares images of one size; found {a[0]}x{a[1]} and {b[0]}x{b[1]}")
    if sizes and min(next(iter(sizes))) < MIN_RESOLUTION:
        w, h = next(iter(sizes))
        raise ZooError(f"swd needs images of at least {MIN_RESOLUTION} px a side; these are {w}x{h}")
    parts: list[dict[str, np.ndarray]] = []
    for start in tqdm(range(0, len(images), CHUNK), desc=desc, disable=not progress, leave=False, dynamic_ncols=True):
        batch = torch.stack([load_image(p) for p in images[start : start + CHUNK]])
        mb = None if masks is None else torch.stack([load_mask(p) for p in masks[start : start + CHUNK]])
        parts.append(descriptors(batch, mb, start=start, seed=seed))
    if not parts:
        return {}
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def normalise(desc: np.ndarray) -> np.ndarray:
    """(M, 3 * 49) -> float32, each colour channel shifted and scaled to mean 0, std 1 over
    all M descriptors and their 49 pixels (the set's own statistics)."""
    d = np.asarray(desc, dtype=np.float64).reshape(len(desc), 3, -1)
    mean = d.mean(axis=(0, 2), keepdims=True)
    std = np.maximum(d.std(axis=(0, 2), keepdims=True), 1e-12)
    return ((d - mean) / std).reshape(len(desc), -1).astype(np.float32)


def sliced_wasserstein(a: np.ndarray, b: np.ndarray, *, repeats: int = DIR_REPEATS, per_repeat: int = DIRS_PER_REPEAT,
                       seed: int = SEED) -> float:
    """Mean over ``repeats x per_repeat`` random unit directions of the 1-D Wasserstein-1
    distance between the projections of point sets ``a`` (M, D) and ``b`` (K, D).

    With M == K it is the mean absolute difference of the sorted projections; otherwise
    both sorted sets are read at min(M, K) common quantile levels (nearest rank).
    """
    a = np.asarray(a, dtype=np.float32)
    b = np.asarray(b, dtype=np.float32)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"point sets must be (M, D) and (K, D); got {a.shape} and {b.shape}")
    if len(a) == 0 or len(b) == 0:
        return float("nan")
    n = min(len(a), len(b))
    rng = np.random.default_rng(seed)
    results = []
    for _ in range(repeats):
        dirs = rng.standard_normal((a.shape[1], per_repeat))
        dirs = (dirs / np.linalg.norm(dirs, axis=0, keepdims=True)).astype(np.float32)
        # numpy sorts rows of a C-contiguous array several times faster than torch on a CPU
        pa = np.sort(np.ascontiguousarray((a @ dirs).T), axis=1)
        pb = np.sort(np.ascontiguousarray((b @ dirs).T), axis=1)
        results.append(float(np.abs(_quantiles(pa, n) - _quantiles(pb, n)).mean(dtype=np.float64)))
    return float(np.mean(results))


def _quantiles(sorted_proj: np.ndarray, n: int) -> np.ndarray:
    """(directions, m) sorted rows -> (directions, n), read at quantile levels (k + 0.5) / n."""
    m = sorted_proj.shape[1]
    if m == n:
        return sorted_proj
    idx = np.minimum(((np.arange(n) + 0.5) * m / n).astype(np.int64), m - 1)
    return sorted_proj[:, idx]


def _levels(feats: dict[str, np.ndarray]) -> list[str]:
    return sorted((k for k in feats if not k.endswith(".valid")), key=lambda k: -int(k[1:]))


def _rows(feats: dict[str, np.ndarray], key: str) -> np.ndarray:
    """All descriptors of one level as (M, 147), the invalid (no hole) ones left out."""
    d = np.asarray(feats[key])
    d = d.reshape(-1, d.shape[-1])
    if key + ".valid" in feats:
        d = d[np.asarray(feats[key + ".valid"]).reshape(-1).astype(bool)]
    return d


def swd_levels(pred: dict[str, np.ndarray], gt: dict[str, np.ndarray], seed: int = SEED) -> dict[str, float]:
    """SWD x 1000 per pyramid level, ``{"64px": ..., "32px": ..., "16px": ...}``, between the
    descriptor sets from :func:`descriptors` / :func:`extract` (each normalised by its own
    statistics); NaN for a level where either set has no descriptor."""
    if _levels(pred) != _levels(gt):
        raise ValueError(f"descriptor levels differ: {_levels(pred)} vs {_levels(gt)}")
    out = {}
    for key in _levels(gt):
        a, b = _rows(gt, key), _rows(pred, key)
        out[f"{key[1:]}px"] = float("nan") if len(a) == 0 or len(b) == 0 else SCALE * sliced_wasserstein(normalise(a), normalise(b), seed=seed)
    return out


def swd(pred: dict[str, np.ndarray], gt: dict[str, np.ndarray], seed: int = SEED) -> float:
    """SWD x 1000 averaged over the pyramid levels (NaN when there is no descriptor)."""
    vals = [v for v in swd_levels(pred, gt, seed).values() if math.isfinite(v)]
    return float(np.mean(vals)) if vals else float("nan")


def swd_images(pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor | None = None, seed: int = SEED) -> dict[str, float]:
    """Convenience for tensors (B, 3, H, W) in [-1, 1]: per-level SWD x 1000 plus ``"avg"``;
    with ``mask`` (B, 1, H, W), on hole-centred descriptors only (``swd-hole``)."""
    p, g = descriptors(pred, mask, seed=seed), descriptors(gt, mask, seed=seed)
    levels = swd_levels(p, g, seed)
    vals = [v for v in levels.values() if math.isfinite(v)]
    return {**levels, "avg": float(np.mean(vals)) if vals else float("nan")}

