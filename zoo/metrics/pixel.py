"""Pixel metrics: PSNR, SSIM and L1, on the whole image and on the hole only.

Every function takes ``pred, gt`` (B, 3, H, W) in [-1, 1] and ``mask`` (B, 1, H, W) with
1 = hole, and returns one value per image (B,). Images are mapped to [0, 1] and the
arithmetic runs in float64, so the numbers equal scikit-image's on the same 8-bit files:

* ``psnr``  = ``skimage.metrics.peak_signal_noise_ratio(gt, pred, data_range=1)``; the MSE
  is floored at 1e-12, so an exact copy scores 120 dB instead of infinity.
* ``ssim``  = ``skimage.metrics.structural_similarity(gt, pred, channel_axis=-1,
  data_range=1, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)``: the
  Gaussian-window SSIM of Wang et al. 2004 (11x11 window, sigma 1.5, K1 0.01, K2 0.03) that
  inpainting papers report; like skimage, the mean skips a 5-pixel border.
* ``*-hole`` variants average the same per-pixel quantity over hole pixels only (the SSIM
  map is computed on the whole image with symmetric padding, then averaged over the hole).
"""

from __future__ import annotations

import numpy as np
import torch

SSIM_SIGMA = 1.5  # Gaussian window of Wang et al. 2004
SSIM_TRUNCATE = 3.5  # scipy.ndimage / skimage default: radius = int(3.5 * 1.5 + 0.5) = 5
SSIM_K1, SSIM_K2 = 0.01, 0.03
MSE_FLOOR = 1e-12


def _unit(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 1] in float64."""
    return (x.double().clamp(-1, 1) + 1) / 2


def _hole(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return (mask.double() > 0.5).double().expand_as(like)


def _masked_mean(values: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Per-image mean of ``values`` weighted by ``weight``; NaN where the weight is 0."""
    total = weight.flatten(1).sum(1)
    out = (values * weight).flatten(1).sum(1) / total.clamp_min(1)
    return torch.where(total > 0, out, torch.full_like(out, float("nan")))


def psnr(pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """PSNR (dB) on [0, 1] images over the whole image."""
    mse = (_unit(pred) - _unit(gt)).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(1.0 / mse.clamp_min(MSE_FLOOR))


def psnr_hole(pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """PSNR (dB) on [0, 1] images over hole pixels only."""
    sq = (_unit(pred) - _unit(gt)).pow(2)
    mse = _masked_mean(sq, _hole(mask, sq))
    return 10 * torch.log10(1.0 / mse.clamp_min(MSE_FLOOR))


def l1(pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean absolute error on [0, 1] images over the whole image."""
    return (_unit(pred) - _unit(gt)).abs().flatten(1).mean(1)


def l1_hole(pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean absolute error on [0, 1] images over hole pixels only."""
    err = (_unit(pred) - _unit(gt)).abs()
    return _masked_mean(err, _hole(mask, err))


def _gaussian_taps(sigma: float = SSIM_SIGMA, truncate: float = SSIM_TRUNCATE) -> torch.Tensor:
    radius = int(truncate * sigma + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    w = torch.exp(-0.5 * (x / sigma) ** 2)
    return w / w.sum()  # (2r+1,)


def _blur(x: np.ndarray, taps: np.ndarray) -> np.ndarray:
    """Separable Gaussian filter over H and W of (B, C, H, W), same size out, with scipy's
    'reflect' (symmetric: d c b a | a b c d) padding, as skimage does."""
    from scipy.ndimage import correlate1d

    x = correlate1d(x, taps, axis=-2, mode="reflect")
    return correlate1d(x, taps, axis=-1, mode="reflect")


def ssim_map(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Per-pixel SSIM (B, C, H, W) of [0, 1] images (data range 1), Gaussian window.

    Computed with scipy on the CPU in float64 (a depthwise float64 conv in torch is ~10x
    slower); the result comes back on ``pred``'s device."""
    x, y = _unit(gt).cpu().numpy(), _unit(pred).cpu().numpy()
    taps = _gaussian_taps().numpy()
    mx, my = _blur(x, taps), _blur(y, taps)
    vx = _blur(x * x, taps) - mx * mx  # population (co)variances: use_sample_covariance=False
    vy = _blur(y * y, taps) - my * my
    cxy = _blur(x * y, taps) - mx * my
    c1, c2 = SSIM_K1**2, SSIM_K2**2
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return torch.from_numpy(s).to(pred.device)


def ssim(pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean SSIM over the image (5-pixel border left out, as skimage does)."""
    r = _gaussian_taps().numel() // 2
    s = ssim_map(pred, gt)[..., r:-r, r:-r]
    return s.flatten(1).mean(1)


def ssim_hole(pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of the SSIM map over hole pixels only."""
    s = ssim_map(pred, gt)
    return _masked_mean(s, _hole(mask, s))
