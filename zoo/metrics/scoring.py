"""Score a folder of predictions against a folder of ground truths.

``score_folders(pred, gt, metrics, masks)`` pairs the files by name, checks counts and
sizes, runs every per-image metric in batches and every distribution metric on Inception
features (the reference side cached), and returns a :class:`ScoreResult`: per metric the
value, a 95 % confidence interval and the same per hole-ratio bin.

Confidence intervals: per-image metrics use Student's t on the per-image values
(mean +- t(0.975, n-1) * sd / sqrt(n)); distribution metrics use a paired bootstrap
(``bootstrap`` resamples of the image indices, 2.5 / 97.5 percentiles; 0 turns it off).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from zoo.errors import ZooError, plugin_error, tag_plugin_origin
from zoo.imageio import image_size, keyed_images, load_image, load_mask
from zoo.spec import MetricSpec

ALL = "all"  # the bin label of the whole set
INCEPTION_SETS = ("inception", "inception-logits")
PATCH_SETS = ("laplacian-patches", "laplacian-patches-hole")  # zoo.metrics.swd
FEATURE_SETS = INCEPTION_SETS + PATCH_SETS


@dataclass
class Pair:
    key: str
    pred: Path
    gt: Path
    mask: Path | None = None


def pair_folders(pred_dir: str | Path, gt_dir: str | Path, mask_dir: str | Path | None = None) -> list[Pair]:
    """Match predictions, ground truths (and masks) by relative name without suffix.

    Refuses (one-line ZooError) different names or counts, and images whose sizes differ.
    """
    pred_dir, gt_dir = Path(pred_dir), Path(gt_dir)
    pk, gk = keyed_images(pred_dir), keyed_images(gt_dir)
    if not pk:
        raise ZooError(f"no images found in --pred {pred_dir}")
    if not gk:
        raise ZooError(f"no images found in --gt {gt_dir}")
    if set(pk) != set(gk):
        only_gt, only_pred = sorted(set(gk) - set(pk)), sorted(set(pk) - set(gk))
        first = f"{only_gt[0]!r} only in --gt" if only_gt else f"{only_pred[0]!r} only in --pred"
        raise ZooError(
            f"--pred has {len(pk)} images and --gt has {len(gk)}; {len(only_gt) + len(only_pred)} names do not match (first: {first})"
        )
    mk: dict[str, Path] = {}
    if mask_dir is not None:
        mk = keyed_images(Path(mask_dir))
        missing = sorted(set(gk) - set(mk))
        if missing:
            raise ZooError(f"{len(missing)} ground-truth image(s) have no mask of the same name in --masks {mask_dir} (first: {missing[0]!r})")
    pairs = []
    for key in sorted(gk):
        sp, sg = image_size(pk[key]), image_size(gk[key])
        if sp != sg:
            raise ZooError(f"prediction {pk[key]} is {sp[0]}x{sp[1]} but ground truth {gk[key]} is {sg[0]}x{sg[1]}; sizes must be equal")
        if mk:
            sm = image_size(mk[key])
            if sm != sg:
                raise ZooError(f"mask {mk[key]} is {sm[0]}x{sm[1]} but ground truth {gk[key]} is {sg[0]}x{sg[1]}")
        pairs.append(Pair(key, pk[key], gk[key], mk.get(key)))
    return pairs


# --------------------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------------------
def mean_ci(values: Sequence[float], value_range: tuple[float | None, float | None] = (None, None)) -> dict[str, Any]:
    """Mean and Student-t 95 % interval of the finite values, clipped to ``value_range``
    (the values the metric can take)."""
    from scipy import stats

    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], dtype=np.float64)
    n = len(v)
    if n == 0:
        return {"value": None, "ci_low": None, "ci_high": None, "n": 0}
    mean = float(v.mean())
    if n < 2:
        return {"value": mean, "ci_low": None, "ci_high": None, "n": 1}
    half = float(stats.t.ppf(0.975, n - 1) * v.std(ddof=1) / math.sqrt(n))
    return {"value": mean, "ci_low": _clip(mean - half, value_range), "ci_high": _clip(mean + half, value_range), "n": n}


def _clip(x: float, value_range: tuple[float | None, float | None]) -> float:
    lo, hi = value_range
    if lo is not None:
        x = max(x, lo)
    if hi is not None:
        x = min(x, hi)
    return x


def _finite(x: float) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


def _owner(spec: MetricSpec) -> str:
    """``plugin NAME``: who registered the metric (for messages)."""
    from zoo.plugins import get_manager

    found = get_manager().names("metrics").get(spec.name)
    return f"plugin {found[1]}" if found else "not registered"


def _call_metric(spec: MetricSpec, *args: Any) -> Any:
    """``spec.fn(*args)``; an exception from the metric's code is tagged with its plugin."""
    try:
        return spec.fn(*args)
    except (ZooError, KeyboardInterrupt):
        raise
    except Exception as exc:
        found = _owner(spec).removeprefix("plugin ")
        tag_plugin_origin(exc, found, f"metric {spec.name!r} (zoo_register_metrics)")
        raise


def _metric_error(spec: MetricSpec, message: str) -> ZooError:
    from zoo.plugins import get_manager

    found = get_manager().names("metrics").get(spec.name)
    return plugin_error(found[1] if found else "?", "zoo_register_metrics", f"metric {spec.name!r} {message}")


def _per_image_values(spec: MetricSpec, pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor) -> list[float]:
    """One float per image from a per-image metric, whose ``fn`` must return a tensor (or
    array) of shape (B,); another type or shape is one line naming the metric's plugin."""
    b = pred.shape[0]
    out = _call_metric(spec, pred, gt, mask)
    if not isinstance(out, torch.Tensor):
        if type(out).__module__ == "numpy" and hasattr(out, "shape"):
            out = torch.from_numpy(np.asarray(out))
        else:
            raise _metric_error(spec, f"returned {type(out).__name__}; expected a tensor of shape ({b},), one value per image")
    if tuple(out.shape) != (b,):
        raise _metric_error(spec, f"returned shape {tuple(out.shape)} for a batch of {b}; expected ({b},), one value per image")
    return out.detach().double().cpu().tolist()


def _scalar(spec: MetricSpec, value: Any) -> float | None:
    """A distribution metric's value as a float; another type is one line naming its plugin."""
    if value is None:
        return None
    try:
        if hasattr(value, "numel") and value.numel() != 1:
            raise TypeError
        return float(value)
    except (TypeError, ValueError):
        raise _metric_error(spec, f"returned {type(value).__name__}; expected one float for the whole set") from None


def _take(feats: dict[str, np.ndarray], idx: np.ndarray) -> dict[str, np.ndarray]:
    return {k: v[idx] for k, v in feats.items()}


def bootstrap_ci(spec: MetricSpec, pred: dict, gt: dict, resamples: int, seed: int, progress: bool) -> tuple[float | None, float | None]:
    """Paired bootstrap: resample image indices, recompute the metric, take percentiles."""
    n = len(next(iter(gt.values())))
    if resamples < 2 or n < 2:
        return None, None
    rng = np.random.default_rng(seed)
    vals = []
    for _ in tqdm(range(resamples), desc=f"bootstrap {spec.name}", disable=not progress, leave=False, dynamic_ncols=True):
        idx = np.sort(rng.integers(0, n, n))
        vals.append(spec.fn(_take(pred, idx), _take(gt, idx)))
    vals = np.asarray([v for v in vals if v is not None and math.isfinite(v)])
    if len(vals) < 2:
        return None, None
    lo, hi = np.percentile(vals, [2.5, 97.5])
    return float(lo), float(hi)


# --------------------------------------------------------------------------------------
# Result
# --------------------------------------------------------------------------------------
@dataclass
class ScoreResult:
    """Per metric: ``{"value", "ci_low", "ci_high", "n", "higher_is_better", "ci",
    "bins": {bin: {"value", "ci_low", "ci_high", "n"}}}``; per-image values by name."""

    names: list[str]
    bins: list[str | None]
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    per_image: dict[str, list[float | None]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "count": len(self.names),
            "metrics": self.metrics,
            "per_image": {"names": self.names, "bins": self.bins, **self.per_image},
            "warnings": self.warnings,
            "info": self.info,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ScoreResult":
        per = dict(d["per_image"])
        names, bins = per.pop("names"), per.pop("bins")
        return cls(names, bins, d["metrics"], per, d.get("warnings", []), d.get("info", {}))


def bin_order(labels: Sequence[str | None]) -> list[str]:
    """Distinct bin labels sorted by their lower edge ('0-10%' < '10-20%' < ...)."""
    def lower(b: str) -> float:
        try:
            return float(b.split("-")[0])
        except ValueError:
            return math.inf

    return sorted({b for b in labels if b is not None}, key=lambda b: (lower(b), b))


# --------------------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------------------
def preflight(metrics: Sequence[MetricSpec], fid_weights: str | Path | None = None) -> None:
    """Fail before any work when a metric's weights are missing (one-line ZooError)."""
    from zoo.metrics.weights import inception_weights

    for spec in metrics:
        if spec.prepare is not None:
            spec.prepare()
    if any(spec.features in INCEPTION_SETS for spec in metrics):
        inception_weights(fid_weights)


def score_folders(
    pred_dir: str | Path,
    gt_dir: str | Path,
    metrics: Sequence[MetricSpec],
    mask_dir: str | Path | None = None,
    *,
    bins: dict[str, str] | None = None,
    reference_key: dict[str, Any] | None = None,
    device: str | torch.device | None = None,
    fid_weights: str | Path | None = None,
    fid_layer: str = "2048",
    bootstrap: int = 10,
    batch_size: int = 16,
    seed: int = 0,
    progress: bool = True,
) -> ScoreResult:
    """Score predictions against ground truth; see the module docstring.

    ``bins`` maps an image name to its hole-ratio bin (from an eval-set manifest); without
    it the bins come from the masks' hole ratios. ``reference_key`` identifies the ground
    truth for the feature cache (an eval set's manifest hash and resolution); without it the
    ground-truth files' content hash is used.
    """
    from zoo.data.evalset import hole_ratio_bin
    from zoo.device import get_device

    if batch_size < 1:
        raise ZooError(f"--batch-size {batch_size}: must be at least 1")
    if bootstrap < 0:
        raise ZooError(f"--bootstrap {bootstrap}: must be 0 (no resampling) or more")
    dev = get_device(device)
    metrics = list(metrics)
    needs_mask = [m.name for m in metrics if m.needs_mask]
    if needs_mask and mask_dir is None:
        raise ZooError(f"metric {needs_mask[0]!r} is measured on the hole and needs --masks DIR")
    pairs = pair_folders(pred_dir, gt_dir, mask_dir)
    preflight(metrics, fid_weights)
    n = len(pairs)
    result = ScoreResult(names=[p.key for p in pairs], bins=[None] * n)
    if bins is not None:
        result.bins = [bins.get(p.key) for p in pairs]

    for spec in metrics:
        if spec.min_count and n < spec.min_count:
            result.warnings.append(
                f"{spec.name} on {n} images is unreliable: use at least {spec.min_count} ({spec.min_count_reason})"
            )

    # -- per-image metrics (and hole ratios) in batches ---------------------------------
    per_image = [m for m in metrics if m.per_image]
    values: dict[str, list[float | None]] = {m.name: [] for m in per_image}
    non_finite: dict[str, int] = {}  # metric -> images whose value was NaN or infinite
    if per_image or (mask_dir is not None and bins is None):
        bar = tqdm(total=n, desc="score", disable=not progress, dynamic_ncols=True, leave=False)
        for start in range(0, n, batch_size):
            chunk = pairs[start : start + batch_size]
            groups: dict[tuple[int, ...], list[int]] = {}
            loaded = []
            for i, p in enumerate(chunk):
                gt = load_image(p.gt)
                loaded.append((load_image(p.pred), gt, load_mask(p.mask) if p.mask is not None else torch.zeros(1, *gt.shape[1:])))
                groups.setdefault(tuple(gt.shape), []).append(i)
            batch_vals: dict[str, list[float | None]] = {m.name: [None] * len(chunk) for m in per_image}
            for idx in groups.values():
                pred = torch.stack([loaded[i][0] for i in idx]).to(dev)
                gt = torch.stack([loaded[i][1] for i in idx]).to(dev)
                mask = torch.stack([loaded[i][2] for i in idx]).to(dev)
                if mask_dir is not None and bins is None:
                    for j, i in enumerate(idx):
                        result.bins[start + i] = hole_ratio_bin(float(mask[j].mean()))
                for spec in per_image:
                    out = _per_image_values(spec, pred, gt, mask)
                    for j, i in enumerate(idx):
                        batch_vals[spec.name][i] = _finite(out[j])
                        if not math.isfinite(out[j]):
                            non_finite[spec.name] = non_finite.get(spec.name, 0) + 1
            for name, vals in batch_vals.items():
                values[name].extend(vals)
            bar.update(len(chunk))
        bar.close()

    order = bin_order(result.bins)
    for spec in per_image:
        vals = values[spec.name]
        entry = {**mean_ci(vals, spec.value_range), "higher_is_better": spec.higher_is_better, "ci": "t", "description": spec.description}
        entry["bins"] = {b: mean_ci([v for v, bb in zip(vals, result.bins) if bb == b], spec.value_range) for b in order}
        for b in order:  # the bin's cell says how many of its images had no finite value
            k = sum(1 for v, bb in zip(vals, result.bins) if bb == b and v is None)
            if k:
                entry["bins"][b]["non_finite"] = k
        if non_finite.get(spec.name):
            k = non_finite[spec.name]
            entry["non_finite"] = k
            result.warnings.append(f"metric {spec.name!r} ({_owner(spec)}) gave NaN or infinite values for {k} of {n} images; "
                                   f"they are left out of its mean (n={n - k})")
        result.metrics[spec.name] = entry
        result.per_image[spec.name] = vals

    # -- distribution metrics ---------------------------------------------------------
    dist = [m for m in metrics if not m.per_image]
    feature_metrics = [m for m in dist if m.features]
    unknown = sorted({m.features for m in feature_metrics} - set(FEATURE_SETS))
    if unknown:
        raise ZooError(f"metric feature set {unknown[0]!r} is not provided by the zoo; valid choices: {', '.join(FEATURE_SETS)}")
    features: dict[str, tuple[dict, dict]] = {}
    if any(m.features in INCEPTION_SETS for m in feature_metrics):
        logits = any(m.features == "inception-logits" for m in feature_metrics)
        pair = _inception_pair(pairs, Path(gt_dir), reference_key, dev, fid_weights, fid_layer, logits, progress, result)
        features.update({name: pair for name in INCEPTION_SETS})
    for name in sorted({m.features for m in feature_metrics} & set(PATCH_SETS)):
        features[name] = _patch_pair(pairs, name.endswith("-hole"), seed, progress)
    if feature_metrics:
        bin_arr = np.asarray([b if b is not None else "" for b in result.bins])
        for spec in feature_metrics:
            pred_f, gt_f = features[spec.features]
            value = _finite(_call_metric(spec, pred_f, gt_f))
            lo, hi = bootstrap_ci(spec, pred_f, gt_f, bootstrap, seed, progress)
            entry = {"value": value, "ci_low": lo, "ci_high": hi, "n": n, "higher_is_better": spec.higher_is_better,
                     "ci": f"bootstrap({bootstrap})" if lo is not None else None, "description": spec.description, "bins": {}}
            for b in order:
                idx = np.flatnonzero(bin_arr == b)
                entry["bins"][b] = {"value": _finite(spec.fn(_take(pred_f, idx), _take(gt_f, idx))), "ci_low": None, "ci_high": None, "n": int(len(idx))}
                if entry["bins"][b]["value"] is None:
                    entry["bins"][b]["non_finite"] = int(len(idx))
            if value is None:  # a NaN over the whole set: marked in the report, and a warning
                entry["non_finite"] = n
                result.warnings.append(f"metric {spec.name!r} ({_owner(spec)}) gave NaN or infinite over the whole set of {n} images; reported as n/a")
            if spec.detail is not None:
                entry["detail"] = {k: _finite(v) for k, v in spec.detail(pred_f, gt_f).items()}
            result.metrics[spec.name] = entry
    for spec in dist:
        if not spec.features:  # a plugin's folder-level metric: whole set only
            raw = _call_metric(spec, Path(pred_dir), Path(gt_dir))
            value = _finite(_scalar(spec, raw))
            result.metrics[spec.name] = {"value": value, "ci_low": None, "ci_high": None, "n": n, "higher_is_better": spec.higher_is_better,
                                         "ci": None, "description": spec.description, "bins": {}}
            if value is None:
                result.metrics[spec.name]["non_finite"] = n
                result.warnings.append(f"metric {spec.name!r} ({_owner(spec)}) gave {raw!r} over the whole set; reported as n/a")
    # keep the order the user asked for
    result.metrics = {m.name: result.metrics[m.name] for m in metrics}
    return result


def _patch_pair(pairs, hole: bool, seed: int, progress: bool):
    """Laplacian-pyramid patch descriptors of predictions and ground truths (``swd``): image i
    of both sets gets the same patch positions (from ``seed`` and i; with ``hole``, centres
    in mask i's hole)."""
    from zoo.metrics.swd import extract

    if hole and any(p.mask is None for p in pairs):
        raise ZooError("swd-hole is measured on the hole and needs --masks DIR")
    masks = [p.mask for p in pairs] if hole else None
    gt_f = extract([p.gt for p in pairs], masks, seed=seed, progress=progress, desc="swd descriptors (reference)")
    pred_f = extract([p.pred for p in pairs], masks, seed=seed, progress=progress, desc="swd descriptors (predictions)")
    return pred_f, gt_f


def _inception_pair(pairs, gt_root, reference_key, dev, fid_weights, fid_layer, logits, progress, result):
    """Inception features of predictions (always computed) and ground truths (cached)."""
    from zoo.metrics.cache import content_hash, reference_features
    from zoo.metrics.inception import InceptionFeatures

    extractor = InceptionFeatures(fid_weights, dev, fid_layer)
    gt_files = [p.gt for p in pairs]
    if reference_key is None:
        reference_key = {"content": content_hash(gt_files, gt_root), "size": list(image_size(gt_files[0]))}
    key = {**reference_key, "extractor": extractor.ident, "count": len(pairs)}
    gt_f, status = reference_features(key, len(pairs), lambda: extractor(gt_files, progress=progress, desc="inception (reference)"))
    pred_f = extractor([p.pred for p in pairs], logits=logits, progress=progress, desc="inception (predictions)")
    result.info["reference_features"] = status
    result.info["extractor"] = extractor.ident
    return pred_f, gt_f
