"""Distribution metrics on Inception features: FID, KID, IS (torch-fidelity's own
formulas) and P-IDS / U-IDS (CoModGAN, Zhao et al. ICLR 2021, as MAT reports them).

Each function takes ``pred, gt``: dicts ``{"pool": (N, 2048), "logits": (N, 1008)}`` of
numpy arrays where row i of ``pred`` is the inpainting of row i of ``gt``.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch

KID_SUBSETS = 100  # torch-fidelity defaults
KID_SUBSET_SIZE = 1000
IS_SPLITS = 10
RNG_SEED = 2020


def fid(pred: dict, gt: dict) -> float:
    """Frechet distance between Gaussians fitted to the pool features.

    With at least as many images as feature dimensions this is torch-fidelity's own
    ``fid_statistics_to_metric``. With fewer (the covariances then have rank N - 1) the
    same quantity is computed in the N-dimensional span: tr sqrt(S1 S2) equals the sum of
    the singular values of A B^T, where S1 = A^T A and S2 = B^T B (A, B the centred features
    over sqrt(N - 1)); exact, and seconds instead of a 2048x2048 non-symmetric eig.
    """
    from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_features_to_statistics, fid_statistics_to_metric

    x1, x2 = pred["pool"], gt["pool"]
    if len(x1) < 2 or len(x2) < 2:
        return float("nan")
    if min(len(x1), len(x2)) >= x1.shape[1]:
        s1 = fid_features_to_statistics(torch.from_numpy(np.ascontiguousarray(x1)))
        s2 = fid_features_to_statistics(torch.from_numpy(np.ascontiguousarray(x2)))
        return float(fid_statistics_to_metric(s1, s2, verbose=False)[KEY_METRIC_FID])
    diff = np.mean(x1, axis=0) - np.mean(x2, axis=0)  # same dtype path as torch-fidelity
    a = x1.astype(np.float64) - x1.astype(np.float64).mean(0)
    b = x2.astype(np.float64) - x2.astype(np.float64).mean(0)
    a /= np.sqrt(len(x1) - 1)
    b /= np.sqrt(len(x2) - 1)
    tr_covmean = np.linalg.svd(a @ b.T, compute_uv=False).sum()
    return float(diff.dot(diff) + (a * a).sum() + (b * b).sum() - 2 * tr_covmean)


def kid(pred: dict, gt: dict) -> float:
    """Kernel Inception Distance (mean over subsets; subset size min(1000, N))."""
    from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, kid_features_to_metric

    size = min(KID_SUBSET_SIZE, len(pred["pool"]), len(gt["pool"]))
    if size < 2:
        return float("nan")
    out = kid_features_to_metric(
        torch.from_numpy(pred["pool"]), torch.from_numpy(gt["pool"]),
        kid_subsets=KID_SUBSETS, kid_subset_size=size, rng_seed=RNG_SEED, verbose=False,
    )
    return float(out[KEY_METRIC_KID_MEAN])


def is_splits(n: int) -> int:
    """torch-fidelity's 10 splits, fewer below 100 images so each split keeps >= 10 images
    (a split of one image always scores exactly 1)."""
    return max(1, min(IS_SPLITS, n // 10))


def inception_score(pred: dict, gt: dict) -> float:
    """Inception Score of the predictions alone (10 splits; see :func:`is_splits`)."""
    from torch_fidelity.metric_isc import KEY_METRIC_ISC_MEAN, isc_features_to_metric

    if "logits" not in pred:
        raise ValueError("the Inception Score needs the predictions' logits (MetricSpec features='inception-logits')")
    n = len(pred["logits"])
    if n < 1:
        return float("nan")
    out = isc_features_to_metric(torch.from_numpy(pred["logits"]), splits=is_splits(n), shuffle=True, rng_seed=RNG_SEED)
    return float(out[KEY_METRIC_ISC_MEAN])


def ids_scores(real: np.ndarray, fake: np.ndarray) -> tuple[float, float]:
    """(U-IDS, P-IDS) of CoModGAN, from (N, D) real and (N, D) paired fake features.

    1. fit a linear SVM (``sklearn.svm.LinearSVC(dual=False)``, C = 1) to tell real
       (label 1) from fake (label 0) on all 2N feature vectors;
    2. U-IDS = its misclassification rate on those same vectors (1 - accuracy);
    3. P-IDS = the fraction of pairs whose fake scores higher than its real image,
       mean(decision(fake_i) > decision(real_i)).
    Both are 0 when fakes are trivially told apart; U-IDS -> 0.5 and P-IDS -> 0.5 when fakes
    are indistinguishable from reals.
    """
    from sklearn.svm import LinearSVC

    if len(real) != len(fake):
        raise ValueError(f"P-IDS needs paired features: {len(real)} real vs {len(fake)} fake")
    if len(real) < 1:
        return float("nan"), float("nan")
    x = np.concatenate([real, fake]).astype(np.float64)
    y = np.array([1] * len(real) + [0] * len(fake))
    svm = LinearSVC(dual=False, random_state=0)
    svm.fit(x, y)
    u_ids = 1.0 - svm.score(x, y)
    p_ids = float(np.mean(svm.decision_function(fake) > svm.decision_function(real)))
    return float(u_ids), p_ids


_IDS_MEMO: dict[str, tuple[float, float]] = {}


def _ids_memo(pred: dict, gt: dict) -> tuple[float, float]:
    """P-IDS and U-IDS share one SVM fit: remember the last few results by content."""
    h = hashlib.sha1(np.ascontiguousarray(pred["pool"]).tobytes())
    h.update(np.ascontiguousarray(gt["pool"]).tobytes())
    key = h.hexdigest()
    if key not in _IDS_MEMO:
        if len(_IDS_MEMO) > 64:
            _IDS_MEMO.clear()
        _IDS_MEMO[key] = ids_scores(gt["pool"], pred["pool"])
    return _IDS_MEMO[key]


def u_ids(pred: dict, gt: dict) -> float:
    return _ids_memo(pred, gt)[0]


def p_ids(pred: dict, gt: dict) -> float:
    return _ids_memo(pred, gt)[1]
