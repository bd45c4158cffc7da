"""Metrics shared by every method. Per-image metrics take ``pred, gt, mask`` ((B, C, H, W),
images in [-1, 1], mask 1 = hole) and return one value per image."""

from __future__ import annotations

import torch

from zoo.errors import choices_error
from zoo.spec import MetricSpec


def _to_unit(x: torch.Tensor) -> torch.Tensor:
    return (x.float().clamp(-1, 1) + 1) / 2


def psnr(pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """PSNR in dB on [0, 1] images over the whole image."""
    mse = (_to_unit(pred) - _to_unit(gt)).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(1.0 / mse.clamp_min(1e-12))


def l1_hole(pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean absolute error on [0, 1] images over hole pixels only."""
    m = mask.expand_as(pred).float()
    err = (_to_unit(pred) - _to_unit(gt)).abs() * m
    return err.flatten(1).sum(1) / m.flatten(1).sum(1).clamp_min(1)


BUILTIN_METRICS = [
    MetricSpec("psnr", "PSNR (dB) on the whole image", True, psnr),
    MetricSpec("l1-hole", "L1 on [0, 1] over the hole", False, l1_hole),
]


def metrics() -> dict[str, MetricSpec]:
    from zoo.plugins import get_manager

    return {m.name: m for m in get_manager().collect("zoo_register_metrics")}


def metric(name: str) -> MetricSpec:
    found = metrics()
    if name not in found:
        raise choices_error("metric", name, found)
    return found[name]
