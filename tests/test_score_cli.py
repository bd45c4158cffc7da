"""`zoo score`: predictions made anywhere (--pred/--gt) and METHOD on an eval set, the
plugin score hook, and every bad input's one-line message."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from test_metrics_support import inception_weights_file, write_pairs
from zoo import MethodSpec, SampleOutput, hookimpl
from zoo.plugins import get_manager


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path / "zoo-cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setenv("ZOO_OFFLINE", "1")


def _error(res) -> str:
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.splitlines() if ln.startswith("Error:")]
    assert len(lines) == 1 and "Traceback" not in res.output
    return lines[0]


def _run(*args):
    from click.testing import CliRunner

    from zoo_cli.main import app

    return CliRunner().invoke(app, [str(a) for a in args])


def test_score_folders_json_matches_direct_metrics(tmp_path):
    from zoo.imageio import load_image, load_mask
    from zoo.metrics.pixel import l1_hole, psnr

    pred, gt, masks = write_pairs(tmp_path, n=5, size=32)
    res = _run("score", "--pred", pred, "--gt", gt, "--masks", masks, "--metric", "psnr,ssim,l1-hole", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.output[res.output.index("{"):])
    assert out["count"] == 5 and list(out["metrics"]) == ["psnr", "ssim", "l1-hole"]
    for i, name in enumerate(out["per_image"]["names"]):
        p, g, m = load_image(pred / f"{name}.png")[None], load_image(gt / f"{name}.png")[None], load_mask(masks / f"{name}.png")[None]
        assert out["per_image"]["psnr"][i] == pytest.approx(psnr(p, g).item())
        assert out["per_image"]["l1-hole"][i] == pytest.approx(l1_hole(p, g, m).item())
    psnr_m = out["metrics"]["psnr"]
    assert psnr_m["value"] == pytest.approx(np.mean(out["per_image"]["psnr"]))
    assert psnr_m["ci_low"] < psnr_m["value"] < psnr_m["ci_high"]
    # hole ratios 9%..81%: several bins, each bin's mean is the mean of its images
    bins = out["per_image"]["bins"]
    assert len(set(bins)) >= 3
    for b, bm in psnr_m["bins"].items():
        vals = [v for v, bb in zip(out["per_image"]["psnr"], bins) if bb == b]
        assert bm["n"] == len(vals) and bm["value"] == pytest.approx(np.mean(vals))


def test_score_table_and_fid_warning(tmp_path):
    pred, gt, masks = write_pairs(tmp_path, n=4, size=32)
    res = _run("score", "--pred", pred, "--gt", gt, "--masks", masks, "--metric", "psnr,fid",
               "--fid-weights", inception_weights_file(), "--fid-layer", "64", "--bootstrap", "0")
    assert res.exit_code == 0, res.output
    assert "Warning: fid on 4 images is unreliable: use at least 2048" in res.output
    assert "per hole-ratio bin" in res.output and "psnr" in res.output


def test_bad_inputs_are_one_line_errors(tmp_path):
    pred, gt, masks = write_pairs(tmp_path, n=3, size=32)
    # unknown metric: valid choices listed
    msg = _error(_run("score", "--pred", pred, "--gt", gt, "--metric", "psnr,fdi"))
    assert "unknown metric 'fdi'" in msg and "fid" in msg and "ssim" in msg
    # a hole metric without masks
    assert "needs --masks" in _error(_run("score", "--pred", pred, "--gt", gt, "--metric", "l1-hole"))
    # counts / names differ
    (pred / "001.png").unlink()
    msg = _error(_run("score", "--pred", pred, "--gt", gt, "--metric", "psnr"))
    assert "--pred has 2 images and --gt has 3" in msg and "'001' only in --gt" in msg
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(pred / "zzz.png")
    msg = _error(_run("score", "--pred", pred, "--gt", gt, "--metric", "psnr"))
    assert "names do not match" in msg
    (pred / "zzz.png").unlink()
    # sizes differ
    Image.fromarray(np.zeros((30, 32, 3), np.uint8)).save(pred / "001.png")
    msg = _error(_run("score", "--pred", pred, "--gt", gt, "--metric", "psnr"))
    assert "is 32x30 but ground truth" in msg and "32x32" in msg
    # missing folder, missing arguments
    assert "does not exist" in _error(_run("score", "--pred", tmp_path / "nope", "--gt", gt, "--metric", "psnr"))
    assert "--pred DIR and --gt DIR" in _error(_run("score", "--metric", "psnr"))


class HoleLossPlugin:
    """A classical test method whose score hook adds its own number."""

    calls = 0

    @hookimpl
    def zoo_register_methods(self):
        from dataclasses import make_dataclass

        return [MethodSpec("mean-fill", "fill with the mean", "classical", make_dataclass("MeanCfg", []), {"default": {}}, needs_training=False)]

    @hookimpl
    def zoo_build_model(self, method, config):
        return torch.nn.Identity() if method == "mean-fill" else None

    @hookimpl
    def zoo_sample(self, method, model, config, images, masks, generator):
        if method != "mean-fill":
            return None
        return SampleOutput(images * (1 - masks), {"nfe": 0})

    @hookimpl
    def zoo_score(self, method, model, config, images, masks, outputs):
        if method != "mean-fill":
            return None
        HoleLossPlugin.calls += 1
        return {"hole-mse": float(((outputs - images) ** 2 * masks).sum() / masks.sum())}


def test_score_method_samples_then_scores_with_hook_numbers(tmp_path):
    manager = get_manager()
    manager.register(HoleLossPlugin(), name="meanfill")
    out = tmp_path / "run"
    res = _run("score", "mean-fill", "--data", "shapes", "--masks", "box", "--metric", "psnr,l1-hole",
               "--count", 6, "--size", 32, "--out", out, "--json")
    assert res.exit_code == 0, res.output
    data = json.loads(res.output[res.output.index("{"):])
    assert data["count"] == 6 and "mean-fill/hole-mse" in data["method_scores"]
    assert data["method_scores"]["mean-fill/hole-mse"] > 0
    assert len(list((out / "predictions" / "mean-fill").glob("*.png"))) == 6
    # the table shows the hook's number next to the shared metrics
    res = _run("score", "mean-fill", "--data", "shapes", "--masks", "box", "--metric", "psnr", "--count", 6, "--size", 32, "--out", out)
    assert "mean-fill/hole-mse" in res.output and "psnr" in res.output
    # a method that needs a checkpoint is refused without one
    assert "needs a checkpoint" in _error(_run("score", "conv-l1", "--data", "shapes", "--masks", "box", "--metric", "psnr", "--out", out))


def test_score_method_with_a_checkpoint(tmp_path):
    from zoo.checkpoint import save_checkpoint
    from zoo.config import resolve_config
    from zoo.runner import checkpoint_meta

    manager = get_manager()
    config, preset = resolve_config(manager.method("conv-l1"), "tiny", None)
    model = manager.call("zoo_build_model", "conv-l1", config=config)
    ckpt = tmp_path / "conv.safetensors"
    save_checkpoint(ckpt, model.state_dict(), checkpoint_meta("conv-l1", config, preset, 0, {"kind": "test"}))
    out = tmp_path / "run"
    res = _run("score", "conv-l1", "--checkpoint", ckpt, "--data", "shapes", "--masks", "center", "--metric", "l1-hole",
               "--count", 3, "--size", 32, "--out", out, "--json")
    assert res.exit_code == 0, res.output
    data = json.loads(res.output[res.output.index("{"):])
    assert data["count"] == 3 and data["metrics"]["l1-hole"]["value"] > 0
    assert set(data["per_image"]["bins"]) == {"20-30%"}  # center masks cover 25 %
    msg = _error(_run("score", "telea", "--checkpoint", ckpt, "--data", "shapes", "--masks", "box", "--metric", "psnr", "--out", out))
    assert "checkpoint of method 'conv-l1', not 'telea'" in msg


def test_score_method_takes_sampling_overrides(cli, tmp_path):
    base = ["score", "telea", "--data", "shapes", "--masks", "box", "--count", "2", "--size", "32", "--metric", "psnr", "--out", tmp_path / "s"]
    assert cli(*base, "--set", "algorithm=ns").exit_code == 0
    bad = cli(*base, "--set", "algorithm=zzz")
    assert bad.exit_code == 2 and "valid choices: telea, ns" in bad.output
    bad = cli("score", "--pred", tmp_path, "--gt", tmp_path, "--metric", "psnr", "--set", "algorithm=ns")
    assert bad.exit_code == 2 and "no meaning with --pred/--gt" in bad.output
