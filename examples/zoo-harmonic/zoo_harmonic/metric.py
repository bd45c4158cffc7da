"""grad-error-hole: mean |grad(pred) - grad(gt)| over the hole, images on [0, 1]."""

from __future__ import annotations

import torch


def _grads(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    gx = torch.zeros_like(x)
    gy = torch.zeros_like(x)
    gx[..., :, :-1] = x[..., :, 1:] - x[..., :, :-1]
    gy[..., :-1, :] = x[..., 1:, :] - x[..., :-1, :]
    return gx, gy


def grad_error_hole(pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per image (B,): pred, gt (B, 3, H, W) in [-1, 1]; mask (B, 1, H, W), 1 = hole."""
    p, g = (pred + 1) / 2, (gt + 1) / 2
    (px, py), (gx, gy) = _grads(p), _grads(g)
    err = ((px - gx).abs() + (py - gy).abs()) / 2 * mask
    return err.flatten(1).sum(1) / (3 * mask.flatten(1).sum(1)).clamp(min=1)
