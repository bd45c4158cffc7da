"""Metrics shared by every method, extensible through ``zoo_register_metrics``.

Per-image metrics take ``pred, gt, mask`` ((B, C, H, W), images in [-1, 1], mask 1 = hole)
and return one value per image. Distribution metrics (FID, KID, IS, P-IDS, U-IDS) take the
Inception features of all predictions and all ground truths. ``score_folders`` (in
:mod:`zoo.metrics.scoring`) runs any list of them and reports each per hole-ratio bin too.
"""

from __future__ import annotations

from zoo.errors import choices_error
from zoo.metrics import distribution as _dist
from zoo.metrics.perceptual import backbone_url, lpips_alex, lpips_vgg
from zoo.metrics.pixel import l1, l1_hole, psnr, psnr_hole, ssim, ssim_hole
from zoo.spec import MetricSpec

#: Below the feature dimension (2048) the covariance of the features is rank-deficient,
#: FID is dominated by its small-sample bias, and a linear SVM separates any 2N <= 2049
#: points, so U-IDS reads 0 whatever the method. Papers use 10,000+ images.
STABLE_COUNT = 2048
_WHY = "the feature dimension; below it the estimate is dominated by small-sample bias, papers use 10,000+"

def _lpips_ready(net: str) -> None:
    from zoo.metrics.weights import cached_or_download

    cached_or_download(backbone_url(net), f"LPIPS {net} backbone")


BUILTIN_METRICS = [
    MetricSpec("psnr", "PSNR (dB) on the whole image", True, psnr, value_range=(0.0, None)),
    MetricSpec("psnr-hole", "PSNR (dB) over the hole only", True, psnr_hole, needs_mask=True, value_range=(0.0, None)),
    MetricSpec("ssim", "SSIM (Gaussian window, sigma 1.5) on the whole image", True, ssim, value_range=(-1.0, 1.0)),
    MetricSpec("ssim-hole", "SSIM map averaged over the hole only", True, ssim_hole, needs_mask=True, value_range=(-1.0, 1.0)),
    MetricSpec("l1", "L1 on [0, 1] over the whole image", False, l1, value_range=(0.0, 1.0)),
    MetricSpec("l1-hole", "L1 on [0, 1] over the hole", False, l1_hole, needs_mask=True, value_range=(0.0, 1.0)),
    MetricSpec("lpips", "LPIPS v0.1, AlexNet backbone", False, lpips_alex, prepare=lambda: _lpips_ready("alex"), value_range=(0.0, None)),
    MetricSpec("lpips-vgg", "LPIPS v0.1, VGG16 backbone", False, lpips_vgg, prepare=lambda: _lpips_ready("vgg"), value_range=(0.0, None)),
    MetricSpec("fid", "Frechet Inception Distance (torch-fidelity)", False, _dist.fid, per_image=False,
               features="inception", min_count=STABLE_COUNT, min_count_reason=_WHY),
    MetricSpec("kid", "Kernel Inception Distance (torch-fidelity, subsets of min(1000, N))", False, _dist.kid,
               per_image=False, features="inception", min_count=1000, min_count_reason="torch-fidelity's default KID subset size"),
    MetricSpec("is", "Inception Score of the predictions (torch-fidelity, 10 splits)", True, _dist.inception_score,
               per_image=False, features="inception-logits", min_count=5000, min_count_reason="the usual 10 splits of 500+ images"),
    MetricSpec("p-ids", "Paired Inception Discriminative Score (CoModGAN)", True, _dist.p_ids, per_image=False,
               features="inception", min_count=STABLE_COUNT, min_count_reason=_WHY),
    MetricSpec("u-ids", "Unpaired Inception Discriminative Score (CoModGAN)", True, _dist.u_ids, per_image=False,
               features="inception", min_count=STABLE_COUNT, min_count_reason=_WHY),
]


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
