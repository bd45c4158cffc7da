"""The built-in metrics as data: names, descriptions, flags, value ranges and sample sizes.

Declaring them imports neither torch nor numpy, because the core plugin returns this list
from ``zoo_register_metrics`` on every ``zoo list`` and ``zoo plugins``: each ``fn`` and
``prepare`` is a thin wrapper that imports its implementation (:mod:`zoo.metrics.pixel`,
:mod:`zoo.metrics.perceptual`, :mod:`zoo.metrics.distribution`, :mod:`zoo.metrics.swd`) on
its first call.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from zoo.spec import MetricSpec

#: Below the feature dimension (2048) the covariance of the features is rank-deficient,
#: FID is dominated by its small-sample bias, and a linear SVM separates any 2N <= 2049
#: points, so U-IDS reads 0 whatever the method. Papers use 10,000+ images.
STABLE_COUNT = 2048
_WHY = "the feature dimension; below it the estimate is dominated by small-sample bias, papers use 10,000+"


def _pixel(name: str, *args: Any, **kwargs: Any) -> Any:
    from zoo.metrics import pixel

    return getattr(pixel, name)(*args, **kwargs)


def _perceptual(name: str, *args: Any, **kwargs: Any) -> Any:
    from zoo.metrics import perceptual

    return getattr(perceptual, name)(*args, **kwargs)


def _distribution(name: str, *args: Any, **kwargs: Any) -> Any:
    from zoo.metrics import distribution

    return getattr(distribution, name)(*args, **kwargs)


def _swd(name: str, *args: Any, **kwargs: Any) -> Any:
    from zoo.metrics import swd

    return getattr(swd, name)(*args, **kwargs)


#: Each level of a 64 px set has 128 descriptors per image; the sorted-projection estimate
#: of a 147-dimensional distribution needs thousands of them before its sampling noise is
#: small next to the differences between methods (see docs/metrics.md).
SWD_COUNT = 100
_SWD_WHY = "128 descriptors per image and level; fewer images leave the estimate dominated by sampling noise, the paper used 16,384"

def _lpips_ready(net: str) -> None:
    from zoo.metrics.perceptual import backbone_url
    from zoo.metrics.weights import cached_or_download

    cached_or_download(backbone_url(net), f"LPIPS {net} backbone")


BUILTIN_METRICS = [
    MetricSpec("psnr", "PSNR (dB) on the whole image", True, partial(_pixel, "psnr"), value_range=(0.0, None)),
    MetricSpec("psnr-hole", "PSNR (dB) over the hole only", True, partial(_pixel, "psnr_hole"), needs_mask=True, value_range=(0.0, None)),
    MetricSpec("ssim", "SSIM (Gaussian window, sigma 1.5) on the whole image", True, partial(_pixel, "ssim"), value_range=(-1.0, 1.0)),
    MetricSpec("ssim-hole", "SSIM map averaged over the hole only", True, partial(_pixel, "ssim_hole"), needs_mask=True, value_range=(-1.0, 1.0)),
    MetricSpec("l1", "L1 on [0, 1] over the whole image", False, partial(_pixel, "l1"), value_range=(0.0, 1.0)),
    MetricSpec("l1-hole", "L1 on [0, 1] over the hole", False, partial(_pixel, "l1_hole"), needs_mask=True, value_range=(0.0, 1.0)),
    MetricSpec("lpips", "LPIPS v0.1, AlexNet backbone", False, partial(_perceptual, "lpips_alex"), prepare=partial(_lpips_ready, "alex"), value_range=(0.0, None)),
    MetricSpec("lpips-vgg", "LPIPS v0.1, VGG16 backbone", False, partial(_perceptual, "lpips_vgg"), prepare=partial(_lpips_ready, "vgg"), value_range=(0.0, None)),
    MetricSpec("fid", "Frechet Inception Distance (torch-fidelity)", False, partial(_distribution, "fid"), per_image=False,
               features="inception", min_count=STABLE_COUNT, min_count_reason=_WHY),
    MetricSpec("kid", "Kernel Inception Distance (torch-fidelity, subsets of min(1000, N))", False, partial(_distribution, "kid"),
               per_image=False, features="inception", min_count=1000, min_count_reason="torch-fidelity's default KID subset size"),
    MetricSpec("is", "Inception Score of the predictions (torch-fidelity, 10 splits)", True, partial(_distribution, "inception_score"),
               per_image=False, features="inception-logits", min_count=5000, min_count_reason="the usual 10 splits of 500+ images"),
    MetricSpec("p-ids", "Paired Inception Discriminative Score (CoModGAN)", True, partial(_distribution, "p_ids"), per_image=False,
               features="inception", min_count=STABLE_COUNT, min_count_reason=_WHY),
    MetricSpec("u-ids", "Unpaired Inception Discriminative Score (CoModGAN)", True, partial(_distribution, "u_ids"), per_image=False,
               features="inception", min_count=STABLE_COUNT, min_count_reason=_WHY),
    MetricSpec("swd", "Sliced Wasserstein distance x1e3 of 7x7 Laplacian-pyramid patches (Karras et al. 2018), mean over levels", False,
               partial(_swd, "swd"), per_image=False, features="laplacian-patches", min_count=SWD_COUNT, min_count_reason=_SWD_WHY,
               value_range=(0.0, None), detail=partial(_swd, "swd_levels")),
    MetricSpec("swd-hole", "swd on patches centred in the hole only", False, partial(_swd, "swd"), per_image=False,
               features="laplacian-patches-hole", needs_mask=True, min_count=SWD_COUNT, min_count_reason=_SWD_WHY,
               value_range=(0.0, None), detail=partial(_swd, "swd_levels")),
]
