"""Harmonic inpainting: Laplace's equation in the hole, the known pixels as boundary values."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from zoo.config import require


@dataclass
class HarmonicConfig:
    iterations: int = field(default=400, metadata={"help": "Jacobi iterations (more: closer to the exact solution)"})
    coarse_to_fine: bool = field(default=True, metadata={"help": "start from a 1/4-size solution (far fewer iterations for big holes)"})

    def validate(self) -> None:
        require(self.iterations >= 1, "iterations", self.iterations, "must be at least 1")


PRESETS = {"default": {}, "fast": {"iterations": 100}}


def _jacobi(x: torch.Tensor, holes: torch.Tensor, iterations: int) -> torch.Tensor:
    """x (B, 3, H, W); holes (B, 1, H, W), 1 = unknown. Known pixels stay; each hole pixel
    becomes the mean of its 4 neighbours (replicated at the border), repeatedly."""
    kernel = torch.tensor([[0.0, 0.25, 0.0], [0.25, 0.0, 0.25], [0.0, 0.25, 0.0]], dtype=x.dtype, device=x.device).expand(3, 1, 3, 3)
    for _ in range(iterations):
        avg = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kernel, groups=3)
        x = torch.where(holes.bool(), avg, x)
    return x


def harmonic_fill(images: torch.Tensor, masks: torch.Tensor, cfg: HarmonicConfig) -> torch.Tensor:
    """images (B, 3, H, W) in [-1, 1] (the zoo has erased the holes), masks 1 = hole."""
    start = images.clone()
    h, w = images.shape[-2:]
    if cfg.coarse_to_fine and min(h, w) >= 16:
        # solve at 1/4 size first (known pixels averaged, a coarse pixel is a hole if all its pixels are)
        known = 1 - masks
        small_known = F.avg_pool2d(known, 4, ceil_mode=True)
        small = F.avg_pool2d(images * known, 4, ceil_mode=True) / small_known.clamp(min=1e-6)
        small_holes = (small_known == 0).float()
        small = _jacobi(torch.where(small_holes.bool(), torch.zeros_like(small), small), small_holes, cfg.iterations)
        up = F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)
        start = torch.where(masks.bool(), up, images)
    out = _jacobi(start, masks, cfg.iterations)
    return images * (1 - masks) + out * masks
