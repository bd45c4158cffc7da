"""P-IDS / U-IDS (CoModGAN) on synthetic features with known answers, and the low-rank FID
against torch-fidelity's formula."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from zoo.metrics.distribution import fid, ids_scores, p_ids, u_ids


def test_separable_fakes_score_zero():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(300, 16))
    fake = real + 0.0
    fake[:, 0] += 20.0  # every fake lies far on one side of a hyperplane
    u, p = ids_scores(real, fake)
    assert u == 0.0 and p == 0.0


def test_indistinguishable_fakes_score_about_one_half():
    rng = np.random.default_rng(1)
    real = rng.normal(size=(3000, 8))
    fake = rng.normal(size=(3000, 8))  # same distribution, independent draws
    u, p = ids_scores(real, fake)
    assert 0.45 < u < 0.55
    assert 0.47 < p < 0.53


def test_p_ids_counts_pairs_where_the_fake_scores_higher():
    rng = np.random.default_rng(2)
    real = rng.normal(size=(400, 6))
    fake = rng.normal(size=(400, 6))
    fake[:, 0] += 1.0  # a partly separable shift along one axis
    u, p = ids_scores(real, fake)
    from sklearn.svm import LinearSVC

    svm = LinearSVC(dual=False).fit(np.concatenate([real, fake]), [1] * 400 + [0] * 400)
    want = np.mean(svm.decision_function(fake) > svm.decision_function(real))
    assert p == pytest.approx(want)
    assert 0.0 < u < 0.5 and 0.0 < p < 0.5  # told apart only partly


def test_named_metrics_share_one_svm_fit():
    rng = np.random.default_rng(3)
    gt = {"pool": rng.normal(size=(50, 4)).astype(np.float32)}
    pred = {"pool": (rng.normal(size=(50, 4)) + 0.5).astype(np.float32)}
    u, p = ids_scores(gt["pool"], pred["pool"])  # real = ground truth, fake = prediction
    assert u_ids(pred, gt) == u and p_ids(pred, gt) == p


@pytest.mark.parametrize("n,d", [(5, 64), (12, 40), (60, 16)])
def test_fid_equals_torch_fidelity_formula(n, d):
    from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric

    rng = np.random.default_rng(n)
    x1 = rng.normal(size=(n, d)).astype(np.float32)
    x2 = (rng.normal(size=(n, d)) * 1.3 + 0.2).astype(np.float32)
    s1, s2 = (fid_features_to_statistics(torch.from_numpy(x)) for x in (x1, x2))
    want = fid_statistics_to_metric(s1, s2, verbose=False)["frechet_inception_distance"]
    assert fid({"pool": x1}, {"pool": x2}) == pytest.approx(want, rel=1e-6)
    assert fid({"pool": x1}, {"pool": x1}) == pytest.approx(0.0, abs=1e-6 * d)
