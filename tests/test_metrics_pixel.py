"""PSNR / SSIM / L1 (whole image and hole only) against scikit-image and numpy, and the
metric registry (unknown names, plugin metrics)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from zoo import MetricSpec, ZooError, hookimpl
from zoo.metrics import metric, metrics, parse_metric_list
from zoo.metrics.pixel import l1, l1_hole, psnr, psnr_hole, ssim, ssim_hole
from zoo.plugins import get_manager

SKIMAGE_SSIM = dict(channel_axis=-1, data_range=1.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)


def _batch(seed=0, n=3, h=40, w=48):
    """uint8 ground truths, uint8 predictions (noisy in a box), the masks, and tensors."""
    rng = np.random.default_rng(seed)
    gt = rng.integers(0, 256, (n, h, w, 3)).astype(np.uint8)
    gt = np.clip(np.cumsum(gt, axis=2) // np.arange(1, w + 1)[None, None, :, None], 0, 255).astype(np.uint8)  # smoother
    noisy = np.clip(gt.astype(int) + rng.integers(-60, 60, gt.shape), 0, 255).astype(np.uint8)
    mask = np.zeros((n, h, w), bool)
    for i in range(n):
        mask[i, 5 + i : 25 + 2 * i, 8 : 30 + i] = True
    pred = np.where(mask[..., None], noisy, gt)
    t = lambda a: torch.from_numpy(a).permute(0, 3, 1, 2).float() / 127.5 - 1  # noqa: E731
    return gt, pred, mask, t(gt), t(pred), torch.from_numpy(mask[:, None].astype(np.float32))


def test_psnr_ssim_l1_equal_skimage_and_numpy():
    gt, pred, mask, tg, tp, tm = _batch()
    got_psnr, got_ssim, got_l1 = psnr(tp, tg, tm), ssim(tp, tg, tm), l1(tp, tg, tm)
    for i in range(len(gt)):
        a, b = gt[i] / 255.0, pred[i] / 255.0
        assert got_psnr[i].item() == pytest.approx(peak_signal_noise_ratio(a, b, data_range=1.0), abs=1e-4)
        assert got_ssim[i].item() == pytest.approx(structural_similarity(a, b, **SKIMAGE_SSIM), abs=1e-4)
        assert got_l1[i].item() == pytest.approx(np.abs(a - b).mean(), abs=1e-6)


def test_hole_variants_average_over_the_hole_only():
    gt, pred, mask, tg, tp, tm = _batch(seed=1)
    got_psnr, got_ssim, got_l1 = psnr_hole(tp, tg, tm), ssim_hole(tp, tg, tm), l1_hole(tp, tg, tm)
    for i in range(len(gt)):
        a, b = gt[i] / 255.0, pred[i] / 255.0
        hole = mask[i]
        mse = ((a - b) ** 2)[hole].mean()
        assert got_psnr[i].item() == pytest.approx(10 * np.log10(1 / mse), abs=1e-4)
        assert got_l1[i].item() == pytest.approx(np.abs(a - b)[hole].mean(), abs=1e-6)
        _, full = structural_similarity(a, b, full=True, **SKIMAGE_SSIM)  # (H, W, 3) map
        assert got_ssim[i].item() == pytest.approx(full.mean(axis=2)[hole].mean(), abs=1e-4)
    # outside the hole the prediction is exact, so the whole-image error is smaller
    assert (l1(tp, tg) < got_l1).all()
    # no hole at all: hole metrics are undefined (NaN), never a silent 0
    assert torch.isnan(l1_hole(tp, tg, torch.zeros_like(tm))).all()


def test_identical_images_score_perfectly():
    _, _, _, tg, _, tm = _batch()
    assert torch.allclose(ssim(tg, tg), torch.ones(3, dtype=torch.float64))
    assert (psnr(tg, tg) == 120).all()  # MSE floored at 1e-12
    assert (l1_hole(tg, tg, tm) == 0).all()


def test_unknown_metric_lists_the_valid_choices():
    with pytest.raises(ZooError) as err:
        parse_metric_list("psnr,fidd")
    msg = str(err.value)
    assert "unknown metric 'fidd'" in msg and "fid" in msg and "lpips" in msg and "p-ids" in msg
    with pytest.raises(ZooError, match="--metric is empty"):
        parse_metric_list(" , ")
    assert [m.name for m in parse_metric_list("ssim,psnr,ssim")] == ["ssim", "psnr"]


def test_every_issue_metric_is_registered():
    names = set(metrics())
    assert {"fid", "kid", "is", "lpips", "lpips-vgg", "psnr", "psnr-hole", "ssim", "ssim-hole", "l1", "l1-hole", "p-ids", "u-ids"} <= names
    assert metric("fid").higher_is_better is False and metric("p-ids").higher_is_better is True


class MaxErrPlugin:
    @hookimpl
    def zoo_register_metrics(self):
        fn = lambda pred, gt, mask: (pred - gt).abs().flatten(1).amax(1)  # noqa: E731
        return [MetricSpec("max-err", "largest absolute error", False, fn)]


def test_plugin_metric_through_the_hook(tmp_path):
    from test_metrics_support import write_pairs

    from zoo.metrics.scoring import score_folders

    manager = get_manager()
    manager.register(MaxErrPlugin(), name="maxerr")
    try:
        pred, gt, masks = write_pairs(tmp_path, n=4, size=24)
        r = score_folders(pred, gt, parse_metric_list("max-err,psnr"), masks, progress=False)
        m = r.metrics["max-err"]
        assert 0 < m["value"] <= 2 and m["higher_is_better"] is False
        assert len(m["bins"]) >= 2 and sum(b["n"] for b in m["bins"].values()) == 4  # per bin too
    finally:
        manager.unregister("maxerr")
    with pytest.raises(ZooError, match="unknown metric 'max-err'"):
        metric("max-err")
