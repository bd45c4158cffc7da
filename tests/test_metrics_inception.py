"""FID / KID / IS against torch-fidelity's own calculate_metrics on the same images and
the same (random, locally built) Inception weights; the reference-feature cache; where the
weights come from and the message when they are missing. Nothing is downloaded."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch_fidelity

from test_metrics_support import inception_weights_file, write_pairs
from zoo import ZooError
from zoo.metrics import parse_metric_list
from zoo.metrics.scoring import score_folders
from zoo.metrics.weights import INCEPTION_URL, inception_weights


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path / "zoo-cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    monkeypatch.delenv("ZOO_FID_WEIGHTS", raising=False)


def _tf(pred, gt, weights, **kw):
    return torch_fidelity.calculate_metrics(
        input1=str(pred), input2=str(gt), cuda=False, feature_extractor_weights_path=str(weights),
        verbose=False, save_cpu_ram=True, cache=False, **kw)


def test_fid_kid_equal_torch_fidelity(tmp_path):
    # The 64-d layer keeps the test fast; the formulas and the extractor are the same as at 2048.
    weights = inception_weights_file()
    pred, gt, masks = write_pairs(tmp_path, n=6, noise=60)
    ours = score_folders(pred, gt, parse_metric_list("fid,kid"), masks, fid_weights=weights, fid_layer="64", bootstrap=0, progress=False)
    ref = _tf(pred, gt, weights, fid=True, kid=True, feature_layer_fid="64", feature_layer_kid="64", kid_subset_size=6)
    assert ref["frechet_inception_distance"] > 1e-3  # a real, non-trivial distance
    # N=6 < 64 dims: the zoo takes tr sqrt(S1 S2) exactly in the 6-d span; torch-fidelity's
    # non-symmetric eig of the rank-5 product carries ~1e-6 relative noise.
    assert ours.metrics["fid"]["value"] == pytest.approx(ref["frechet_inception_distance"], rel=1e-4)
    assert ours.metrics["kid"]["value"] == pytest.approx(ref["kernel_inception_distance_mean"], rel=1e-6, abs=1e-9)
    # per-bin numbers exist for every bin of the masks
    assert set(ours.metrics["fid"]["bins"]) == set(b for b in ours.bins)


def test_inception_score_equals_torch_fidelity(tmp_path):
    weights = inception_weights_file()
    pred, gt, _ = write_pairs(tmp_path, n=3, size=32)  # IS needs the full network: few images
    ours = score_folders(pred, gt, parse_metric_list("is"), fid_weights=weights, bootstrap=0, progress=False)
    # below 100 images the zoo uses N // 10 splits (at least 1): here 1
    ref = torch_fidelity.calculate_metrics(input1=str(pred), cuda=False, isc=True, isc_splits=1, feature_extractor_weights_path=str(weights),
                                           verbose=False, save_cpu_ram=True, cache=False)
    assert ref["inception_score_mean"] > 1.01  # not the trivial value of identical class posteriors
    assert ours.metrics["is"]["value"] == pytest.approx(ref["inception_score_mean"], rel=1e-9)


def test_reference_features_are_computed_once(tmp_path, monkeypatch):
    from zoo.metrics import inception

    weights = inception_weights_file()
    pred, gt, masks = write_pairs(tmp_path, n=4)
    calls = []
    original = inception.InceptionFeatures.__call__

    def counting(self, files, *a, **k):
        calls.append(Path(files[0]).parent.name)
        return original(self, files, *a, **k)

    monkeypatch.setattr(inception.InceptionFeatures, "__call__", counting)
    specs = parse_metric_list("fid,p-ids")
    first = score_folders(pred, gt, specs, masks, fid_weights=weights, fid_layer="64", bootstrap=0, progress=False)
    assert first.info["reference_features"] == "computed" and calls == ["gt", "pred"]
    # a second "method" on the same ground truth: only its predictions are extracted
    other = tmp_path / "pred2"
    shutil.copytree(pred, other)
    second = score_folders(other, gt, specs, masks, fid_weights=weights, fid_layer="64", bootstrap=0, progress=False)
    assert second.info["reference_features"] == "cached" and calls == ["gt", "pred", "pred2"]
    assert second.metrics["fid"]["value"] == pytest.approx(first.metrics["fid"]["value"], rel=1e-9)
    # another layer is another extractor: not served from the 64-d cache
    third = score_folders(pred, gt, parse_metric_list("fid"), masks, fid_weights=weights, fid_layer="192", bootstrap=0, progress=False)
    assert third.info["reference_features"] == "computed"


def test_bootstrap_ci_brackets_the_value_and_warning_gives_the_number(tmp_path):
    weights = inception_weights_file()
    pred, gt, masks = write_pairs(tmp_path, n=6, noise=60)
    r = score_folders(pred, gt, parse_metric_list("fid"), masks, fid_weights=weights, fid_layer="64", bootstrap=8, progress=False)
    m = r.metrics["fid"]
    assert m["ci"] == "bootstrap(8)" and m["ci_low"] <= m["ci_high"]
    assert any("fid on 6 images is unreliable: use at least 2048" in w for w in r.warnings)


def test_weights_come_from_flag_env_or_hub_cache(tmp_path, monkeypatch):
    weights = inception_weights_file()
    assert inception_weights(weights) == weights
    monkeypatch.setenv("ZOO_FID_WEIGHTS", str(weights))
    assert inception_weights() == weights
    monkeypatch.delenv("ZOO_FID_WEIGHTS")
    hub = Path(os.environ["TORCH_HOME"]) / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    (hub / os.path.basename(INCEPTION_URL)).symlink_to(weights)
    assert inception_weights() == hub / os.path.basename(INCEPTION_URL)


def test_missing_weights_name_the_file_and_the_folder(tmp_path, monkeypatch):
    with pytest.raises(ZooError) as err:
        inception_weights()
    msg = str(err.value)
    hub = Path(os.environ["TORCH_HOME"]) / "hub" / "checkpoints"
    assert "weights-inception-2015-12-05-6726825d.pth" in msg and str(hub) in msg and "--fid-weights" in msg
    assert "\n" not in msg
    with pytest.raises(ZooError, match="does not exist"):
        inception_weights(tmp_path / "nope.pth")
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a torch file")
    pred, gt, _ = write_pairs(tmp_path / "x", n=2)
    with pytest.raises(ZooError, match="not a readable torch-fidelity Inception weights file"):
        score_folders(pred, gt, parse_metric_list("fid"), fid_weights=bad, progress=False)


def test_missing_weights_through_the_cli_exit_2(tmp_path):
    from click.testing import CliRunner

    from zoo_cli.main import app

    pred, gt, _ = write_pairs(tmp_path, n=2)
    res = CliRunner().invoke(app, ["score", "--pred", str(pred), "--gt", str(gt), "--metric", "fid"])
    assert res.exit_code == 2
    lines = [ln for ln in res.output.splitlines() if ln.startswith("Error:")]
    assert len(lines) == 1 and "weights-inception-2015-12-05-6726825d.pth" in lines[0] and "Traceback" not in res.output
