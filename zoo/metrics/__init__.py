"""Metrics shared by every method, extensible through ``zoo_register_metrics``.

Per-image metrics take ``pred, gt, mask`` ((B, C, H, W), images in [-1, 1], mask 1 = hole)
and return one value per image. Distribution metrics (FID, KID, IS, P-IDS, U-IDS) take the
Inception features of all predictions and all ground truths. ``score_folders`` (in
:mod:`zoo.metrics.scoring`) runs any list of them and reports each per hole-ratio bin too.
"""

from __future__ import annotations

from zoo.errors import choices_error
from zoo.metrics.catalog import BUILTIN_METRICS, STABLE_COUNT
from zoo.spec import MetricSpec

# The implementations import torch: they load on first use, so that declaring the built-in
# metrics (``zoo list`` and ``zoo plugins`` collect every plugin's) stays torch-free.
_PIXEL = ("psnr", "psnr_hole", "ssim", "ssim_hole", "l1", "l1_hole")
_PERCEPTUAL = ("backbone_url", "lpips_alex", "lpips_vgg")


def __getattr__(name: str):
    if name in _PIXEL:
        from zoo.metrics import pixel

        return getattr(pixel, name)
    if name in _PERCEPTUAL:
        from zoo.metrics import perceptual

        return getattr(perceptual, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def metrics() -> dict[str, MetricSpec]:
    """Every registered metric by name (built-in and from plugins)."""
    from zoo.plugins import get_manager

    return {m.name: m for m in get_manager().collect("zoo_register_metrics")}


def metric(name: str) -> MetricSpec:
    """One metric by name, or a ZooError listing the valid names."""
    found = metrics()
    if name not in found:
        raise choices_error("metric", name, found)
    return found[name]


def parse_metric_list(text: str | list[str]) -> list[MetricSpec]:
    """``"fid,lpips"`` -> specs, in order, without duplicates; unknown names are errors."""
    from zoo.errors import ZooError

    names = text if isinstance(text, list) else [t.strip() for t in str(text).split(",")]
    names = [n for n in names if n]
    if not names:
        raise ZooError(f"--metric is empty; valid choices: {', '.join(sorted(metrics()))}")
    out: list[MetricSpec] = []
    for name in names:
        spec = metric(name)
        if spec not in out:
            out.append(spec)
    return out


__all__ = ["BUILTIN_METRICS", "metric", "metrics", "parse_metric_list", "psnr", "psnr_hole", "ssim", "ssim_hole", "l1", "l1_hole"]
