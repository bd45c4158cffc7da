"""`swd` / `swd-hole`: the sliced Wasserstein distance of Laplacian-pyramid patches
(Karras et al. 2018) against known cases, and through `zoo score`."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from scipy.special import gammaln

from test_metrics_support import write_pairs
from zoo.data import render
from zoo.metrics import swd as S


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path / "zoo-cache"))
    monkeypatch.setenv("ZOO_OFFLINE", "1")


def _shapes(n: int, size: int = 32, seed: int = 5) -> torch.Tensor:
    """(n, 3, size, size) shapes images in [-1, 1]."""
    arr = np.stack([render(i, seed, size) for i in range(n)]).astype(np.float32)
    return torch.from_numpy(arr).permute(0, 3, 1, 2) / 127.5 - 1


def _box_masks(n: int, size: int = 32) -> torch.Tensor:
    m = torch.zeros(n, 1, size, size)
    m[:, :, size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] = 1
    return m


# -- the pyramid -------------------------------------------------------------------------
def test_pyramid_matches_opencv_and_reconstructs():
    """Each band is the image minus cv2.pyrUp(cv2.pyrDown(image)) (OpenCV, the reference the
    paper's code matches), the last level is the low-pass residual, and the levels sum back."""
    import cv2

    img = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    levels = S.laplacian_pyramid(img, 2)
    hwc = img[0].permute(1, 2, 0).numpy().astype(np.float32)
    low = cv2.pyrDown(hwc)
    band = hwc - cv2.pyrUp(low, dstsize=(32, 32))
    assert levels[0].shape == (1, 3, 32, 32) and levels[1].shape == (1, 3, 16, 16)
    np.testing.assert_allclose(levels[1][0].permute(1, 2, 0).numpy(), low, atol=1e-5)
    np.testing.assert_allclose(levels[0][0].permute(1, 2, 0).numpy(), band, atol=1e-5)
    back = levels[0] + S.pyr_up(levels[1], (32, 32))
    assert torch.allclose(back, img, atol=1e-5)


@pytest.mark.parametrize("size,levels", [(16, [16]), (32, [32, 16]), (64, [64, 32, 16]), (256, [256, 128, 64, 32, 16])])
def test_level_count_follows_the_image_size_down_to_16px(size, levels):
    assert S.level_resolutions(size) == levels


def test_descriptor_shapes_and_hole_centres():
    imgs, masks = _shapes(3), _box_masks(3)
    d = S.descriptors(imgs)
    assert sorted(d) == ["L16", "L32"] and d["L32"].shape == (3, S.PER_IMAGE, 3 * 7 * 7)
    odd = S.descriptors(torch.zeros(1, 3, 33, 40))  # levels named by their own size: 33 -> 17 px
    assert sorted(odd) == ["L17", "L33"]
    # hole centres: every centre is a hole pixel of that level's (area-downsampled) mask
    hole = torch.zeros(32, 32, dtype=torch.bool)
    hole[10:20, 12:14] = True
    ys, xs, valid = S._centres(hole, 32, 32, np.random.default_rng(0))
    assert valid.all() and hole[ys, xs].all()
    _, _, none = S._centres(torch.zeros(32, 32, dtype=torch.bool), 32, 32, np.random.default_rng(0))
    assert not none.any()
    dh = S.descriptors(imgs, masks)
    assert dh["L32.valid"].all() and dh["L16.valid"].all()


# -- the sliced distance on point sets with a known answer ---------------------------------
def _mean_abs_direction_component(d: int) -> float:
    """E|theta_1| for theta uniform on the unit sphere of R^d: Gamma(d/2) / (sqrt(pi) Gamma((d+1)/2))."""
    return math.exp(gammaln(d / 2) - gammaln((d + 1) / 2)) / math.sqrt(math.pi)


def test_gaussians_of_different_spread_match_the_closed_form():
    """A ~ N(0, I), B ~ N(0, s^2 I) independent: every projection is N(0, 1) vs N(0, s^2),
    whose W1 is |1 - s| E|Z| = |1 - s| sqrt(2 / pi), whatever the direction."""
    rng = np.random.default_rng(1)
    a = rng.standard_normal((20000, 8))
    for s in (1.5, 2.0, 3.0):
        b = s * rng.standard_normal((20000, 8))
        assert S.sliced_wasserstein(a, b) == pytest.approx((s - 1) * math.sqrt(2 / math.pi), rel=0.04)


def test_shifted_set_matches_the_closed_form():
    """B = A + delta: each projection shifts by theta . delta, so the distance is the mean of
    |theta . delta| over the 512 directions, |delta| E|theta_1| in expectation."""
    rng = np.random.default_rng(2)
    a = rng.standard_normal((4000, 12))
    delta = np.zeros(12)
    delta[:3] = [3.0, -1.0, 2.0]
    expected = np.linalg.norm(delta) * _mean_abs_direction_component(12)
    assert S.sliced_wasserstein(a, a + delta) == pytest.approx(expected, rel=0.1)
    assert S.sliced_wasserstein(a, a) == 0.0


def test_sets_of_different_sizes_use_common_quantiles():
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((30000, 4)), 2 * rng.standard_normal((20000, 4))
    assert S.sliced_wasserstein(a, b) == pytest.approx(math.sqrt(2 / math.pi), rel=0.04)
    assert math.isnan(S.sliced_wasserstein(a[:0], b))


# -- the metric on images ---------------------------------------------------------------------
def test_identical_sets_score_zero_and_each_set_is_normalised_by_its_own_statistics():
    imgs, masks = _shapes(12), _box_masks(12)
    assert S.swd_images(imgs, imgs) == {"32px": 0.0, "16px": 0.0, "avg": 0.0}
    assert S.swd_images(imgs, imgs, masks)["avg"] == 0.0
    # a per-channel affine map (positive gain) of the whole set: removed by the normalisation
    gain, offset = torch.tensor([0.5, 1.3, 0.8]).view(1, 3, 1, 1), torch.tensor([0.2, -0.1, 0.05]).view(1, 3, 1, 1)
    affine = S.swd_images(imgs * gain + offset, imgs)
    assert affine["avg"] < 1e-2, affine
    # a non-linear tone change of the same images is not
    gamma = S.swd_images(((imgs + 1) / 2) ** 2.2 * 2 - 1, imgs)
    assert gamma["avg"] > 100 * max(affine["avg"], 1e-3), gamma


def test_deterministic_for_a_seed():
    imgs = _shapes(8)
    noisy = (imgs + 0.2 * torch.randn(imgs.shape, generator=torch.Generator().manual_seed(0))).clamp(-1, 1)
    first, again = S.swd_images(noisy, imgs, seed=3), S.swd_images(noisy, imgs, seed=3)
    assert first == again
    other = S.swd_images(noisy, imgs, seed=4)
    assert other != first and other["avg"] == pytest.approx(first["avg"], rel=0.3)


def test_more_noise_gives_a_larger_distance():
    imgs, masks = _shapes(12), _box_masks(12)
    noise = torch.randn(imgs.shape, generator=torch.Generator().manual_seed(1))
    whole = [S.swd_images((imgs + s * noise).clamp(-1, 1), imgs)["avg"] for s in (0.02, 0.1, 0.3, 0.8)]
    assert all(a < b for a, b in zip(whole, whole[1:])), whole
    # noise inside the hole only: swd-hole sees it undiluted, swd dilutes it with the intact part
    in_hole = [torch.where(masks.bool(), (imgs + s * noise).clamp(-1, 1), imgs) for s in (0.1, 0.4)]
    hole_vals = [S.swd_images(p, imgs, masks)["avg"] for p in in_hole]
    assert hole_vals[0] < hole_vals[1]
    assert S.swd_images(in_hole[1], imgs)["avg"] < hole_vals[1]


# -- through the zoo --------------------------------------------------------------------------
def test_registered_and_listed(cli):
    res = cli("score", "--list-metrics", "--json")
    found = {m["name"]: m for m in json.loads(res.output)}
    assert found["swd"]["per_image"] is False and found["swd"]["higher_is_better"] is False
    assert "swd-hole" in found


def test_zoo_score_reports_the_value_per_level_and_zero_for_the_truth(tmp_path, cli):
    pred, gt, masks = write_pairs(tmp_path, n=6, size=32, noise=60.0)
    res = cli("score", "--pred", pred, "--gt", gt, "--masks", masks, "--metric", "swd,swd-hole,psnr", "--json", "--bootstrap", "2")
    assert res.exit_code == 0, res.output
    out = json.loads(res.output[res.output.index("{"):])
    for name in ("swd", "swd-hole"):
        m = out["metrics"][name]
        assert set(m["detail"]) == {"32px", "16px"}
        assert m["value"] == pytest.approx(np.mean(list(m["detail"].values())))
        assert m["value"] > 0 and m["n"] == 6
    assert out["metrics"]["swd-hole"]["value"] > out["metrics"]["swd"]["value"]  # the noise is in the hole only
    assert any("swd on 6 images is unreliable" in w for w in out["warnings"])
    same = cli("score", "--pred", gt, "--gt", gt, "--masks", masks, "--metric", "swd,swd-hole", "--json", "--bootstrap", "0")
    zero = json.loads(same.output[same.output.index("{"):])
    assert zero["metrics"]["swd"]["value"] == 0.0 and zero["metrics"]["swd-hole"]["value"] == 0.0
    table = cli("score", "--pred", pred, "--gt", gt, "--metric", "swd", "--bootstrap", "0")
    assert "per pyramid level" in table.output and "32px" in table.output


def test_swd_hole_needs_masks_and_swd_refuses_mixed_sizes(tmp_path):
    from click.testing import CliRunner
    from PIL import Image

    from zoo_cli.main import app

    pred, gt, masks = write_pairs(tmp_path, n=3, size=32)
    res = CliRunner().invoke(app, ["score", "--pred", str(pred), "--gt", str(gt), "--metric", "swd-hole"])
    assert res.exit_code == 2 and "swd-hole" in res.output and "--masks" in res.output and "Traceback" not in res.output
    for d in (pred, gt):
        Image.fromarray(render(9, 1, 48)).save(d / "big.png")
    res = CliRunner().invoke(app, ["score", "--pred", str(pred), "--gt", str(gt), "--metric", "swd", "--bootstrap", "0"])
    assert res.exit_code == 2 and "one size" in res.output and "Traceback" not in res.output
    for d in (pred, gt):
        (d / "big.png").unlink()
        for f in d.iterdir():
            Image.fromarray(render(0, 1, 12)).save(f)
    res = CliRunner().invoke(app, ["score", "--pred", str(pred), "--gt", str(gt), "--metric", "swd", "--bootstrap", "0"])
    assert res.exit_code == 2 and "at least 16 px" in res.output


def test_zoo_compare_reports_swd_per_level(tmp_path, cli):
    out = tmp_path / "cmp"
    res = cli("compare", "--metric", "swd,swd-hole", "--data", "shapes", "--masks", "box", "--methods", "telea",
              "--out", out, "--count", "4", "--size", "32", "--bootstrap", "0")
    assert res.exit_code == 0, res.output
    report = (out / "report.md").read_text()
    assert "## swd per level" in report and "## swd-hole per level" in report and "| 32px | 16px |" in report
    results = json.loads((out / "results.json").read_text())
    text = json.dumps(results)
    assert '"detail": {"32px"' in text
