"""`zoo compare`: one eval set for every method, every report file, ranking, resuming an
interrupted run without recomputing finished methods, checkpoints and mask folders."""

from __future__ import annotations

import csv
import json
from dataclasses import make_dataclass

import numpy as np
import pytest
import torch
from PIL import Image

from zoo import MethodSpec, SampleOutput, hookimpl
from zoo.plugins import get_manager


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path / "zoo-cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setenv("ZOO_OFFLINE", "1")


def _run(*args):
    from click.testing import CliRunner

    from zoo_cli.main import app

    return CliRunner().invoke(app, [str(a) for a in args])


def _error(res) -> str:
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.splitlines() if ln.startswith("Error:")]
    assert len(lines) == 1
    return lines[0]


class TestMethods:
    """Two classical test methods: `gray-fill` (worse than telea) and `flaky`, which fails
    once after its first batch (an interrupted run). Sample calls are counted."""

    calls: dict[str, int] = {}
    fail_after: int | None = None

    @hookimpl
    def zoo_register_methods(self):
        cfg = make_dataclass("NoCfg", [])
        return [MethodSpec(n, "test method", "classical", cfg, {"default": {}}, needs_training=False) for n in ("gray-fill", "flaky")]

    @hookimpl
    def zoo_build_model(self, method, config):
        return torch.nn.Identity() if method in ("gray-fill", "flaky") else None

    @hookimpl
    def zoo_sample(self, method, model, config, images, masks, generator):
        if method not in ("gray-fill", "flaky"):
            return None
        TestMethods.calls[method] = TestMethods.calls.get(method, 0) + 1
        if method == "flaky" and TestMethods.fail_after is not None and TestMethods.calls[method] > TestMethods.fail_after:
            raise KeyboardInterrupt  # as if the user pressed Ctrl-C mid-run
        noise = torch.rand(images.shape, generator=generator) * 0.2
        return SampleOutput(torch.zeros_like(images) + noise.to(images), {"nfe": 1})


@pytest.fixture
def test_methods():
    TestMethods.calls = {}
    TestMethods.fail_after = None
    get_manager().register(TestMethods(), name="testmethods")
    return TestMethods


def test_compare_writes_every_file_and_ranks(tmp_path, test_methods):
    out = tmp_path / "report"
    from test_metrics_support import inception_weights_file

    res = _run("compare", "--metric", "psnr,ssim,l1-hole,fid", "--data", "shapes", "--masks", "box",
               "--methods", "gray-fill,telea", "--out", out, "--count", 8, "--size", 32, "--batch-size", 4,
               "--fid-weights", inception_weights_file(), "--fid-layer", "64", "--bootstrap", "0")
    assert res.exit_code == 0, res.output
    assert "fid on 8 images is unreliable: use at least 2048" in res.output
    for name in ("results.json", "results.csv", "report.md", "grid.png", "plots/psnr.png", "plots/ssim.png", "plots/l1-hole.png", "plots/fid.png"):
        assert (out / name).is_file(), name
    for png in ("grid.png", "plots/psnr.png"):
        with Image.open(out / png) as img:
            assert img.format == "PNG" and img.size[0] > 200 and img.size[1] > 200
            assert np.asarray(img.convert("L")).std() > 5  # not a blank canvas
    results = json.loads((out / "results.json").read_text())
    assert results["ranking"] == ["telea", "gray-fill"]  # telea beats a gray fill on every metric
    by = {m["label"]: m for m in results["methods"]}
    # the ground-truth side of FID is extracted once for both methods
    assert by["gray-fill"]["info"]["reference_features"] == "computed"
    assert by["telea"]["info"]["reference_features"] == "cached"
    assert by["telea"]["scores"]["metrics"]["fid"]["value"] < by["gray-fill"]["scores"]["metrics"]["fid"]["value"]
    assert by["telea"]["scores"]["metrics"]["psnr"]["value"] > by["gray-fill"]["scores"]["metrics"]["psnr"]["value"]
    report = (out / "report.md").read_text()
    assert "| 1 | **telea** (best) |" in report and "| 2 | gray-fill |" in report
    assert "psnr ↑" in report and "l1-hole ↓" in report and "[" in report  # CI brackets
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert {r["method"] for r in rows} == {"telea", "gray-fill"}
    assert any(r["bin"] == "all" and r["metric"] == "ssim" for r in rows) and any(r["bin"].endswith("%") for r in rows)
    # identical inputs: every method's known pixels equal the one eval set's images
    from zoo.data.evalset import load_eval_set
    from zoo.imageio import load_image

    ev = load_eval_set(out / "evalset")
    for label in ("telea", "gray-fill"):
        for i, item in enumerate(ev.items):
            img, mask = ev.load(i)
            pred = load_image(out / "predictions" / label / f"{item['name']}.png")
            assert torch.equal(pred * (1 - mask), img * (1 - mask))


def test_interrupted_compare_resumes_without_recomputing(tmp_path, test_methods):
    out = tmp_path / "report"
    args = ("compare", "--metric", "psnr", "--data", "shapes", "--masks", "box", "--methods", "gray-fill,flaky",
            "--out", out, "--count", 8, "--size", 32, "--batch-size", 2)
    test_methods.fail_after = 1  # flaky dies in its second batch
    res = _run(*args)
    assert res.exit_code != 0 and not (out / "results.json").exists()
    assert test_methods.calls == {"gray-fill": 4, "flaky": 2}
    assert (out / "predictions" / "gray-fill" / "done.json").is_file()
    assert len(list((out / "predictions" / "flaky").glob("*.png"))) == 2  # its first batch survived
    first_batch = (out / "predictions" / "flaky" / "000000.png").read_bytes()

    test_methods.fail_after = None
    res = _run(*args)
    assert res.exit_code == 0, res.output
    # gray-fill was finished: not sampled again; flaky sampled only its 3 missing batches
    assert test_methods.calls == {"gray-fill": 4, "flaky": 2 + 3}
    assert (out / "predictions" / "flaky" / "000000.png").read_bytes() == first_batch
    results = json.loads((out / "results.json").read_text())
    assert {m["label"]: m["predictions"] for m in results["methods"]} == {"gray-fill": "cached", "flaky": "resumed"}

    # a third run recomputes nothing; its numbers are the same
    res = _run(*args)
    assert res.exit_code == 0 and test_methods.calls == {"gray-fill": 4, "flaky": 5}
    again = json.loads((out / "results.json").read_text())
    assert again["methods"][1]["scores"]["metrics"] == results["methods"][1]["scores"]["metrics"]

    # seeds depend on the batch position only: an uninterrupted run makes the same pixels
    res = _run(*args[:-8], "--out", tmp_path / "fresh", "--count", 8, "--size", 32, "--batch-size", 2)
    assert res.exit_code == 0, res.output
    for f in (out / "predictions" / "flaky").glob("*.png"):
        assert f.read_bytes() == (tmp_path / "fresh" / "predictions" / "flaky" / f.name).read_bytes()


def test_checkpoints_mask_folders_and_bad_requests(tmp_path):
    from zoo.checkpoint import save_checkpoint
    from zoo.config import resolve_config
    from zoo.runner import checkpoint_meta

    manager = get_manager()
    spec = manager.method("conv-l1")
    config, preset = resolve_config(spec, "tiny", None)
    model = manager.call("zoo_build_model", "conv-l1", config=config)
    ckpt = tmp_path / "conv.safetensors"
    save_checkpoint(ckpt, model.state_dict(), checkpoint_meta("conv-l1", config, preset, 0, {"kind": "test"}))

    masks = tmp_path / "mymasks"
    masks.mkdir()
    for i in range(4):
        m = np.zeros((32, 32), np.uint8)
        m[4:4 + 6 * (i + 1), 4:20] = 255
        Image.fromarray(m).save(masks / f"m{i}.png")
    out = tmp_path / "r"
    res = _run("compare", "--metric", "psnr", "--data", "shapes", "--masks", masks, "--methods", "telea",
               "--checkpoint", ckpt, "--out", out, "--count", 4, "--size", 32)
    assert res.exit_code == 0, res.output
    results = json.loads((out / "results.json").read_text())
    assert [m["label"] for m in results["methods"]] == ["telea", "conv-l1"]
    assert results["methods"][1]["checkpoint"] == str(ckpt)
    manifest = json.loads((out / "evalset" / "manifest.json").read_text())
    assert [it["mask_source"] for it in manifest["items"]] == ["m0.png", "m1.png", "m2.png", "m3.png"]

    # the eval-set folder itself may be given as --masks (same images for another report)
    res = _run("compare", "--metric", "ssim", "--masks", out / "evalset", "--methods", "telea", "--out", tmp_path / "r2")
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "r2" / "results.json").read_text())["eval_set"]["hash"] == manifest["hash"]

    # bad requests: one line each, exit 2
    assert "needs a checkpoint" in _error(_run("compare", "--metric", "psnr", "--data", "shapes", "--masks", "box", "--methods", "conv-l1", "--out", tmp_path / "x"))
    msg = _error(_run("compare", "--metric", "psnr", "--data", "shapes", "--masks", masks, "--methods", "telea", "--out", out, "--count", 3, "--size", 32))
    assert "already holds an eval set with count=4" in msg
    assert "unknown metric 'psnrr'" in _error(_run("compare", "--metric", "psnrr", "--data", "shapes", "--masks", "box", "--methods", "telea", "--out", tmp_path / "y"))
    assert "unknown mask kind" in _error(_run("compare", "--metric", "psnr", "--data", "shapes", "--masks", "blobs", "--methods", "telea", "--out", tmp_path / "z", "--count", 2, "--size", 32))
    assert "nothing to compare" in _error(_run("compare", "--metric", "psnr", "--data", "shapes", "--masks", "box", "--out", tmp_path / "w"))
    assert "has 4 mask files but --count is 9" in _error(_run("compare", "--metric", "psnr", "--data", "shapes", "--masks", masks, "--methods", "telea", "--out", tmp_path / "v", "--count", 9, "--size", 32))


def test_missing_weights_stop_compare_before_any_sampling(tmp_path, test_methods):
    out = tmp_path / "r"
    for metric, name in (("psnr,lpips", "alexnet-owt-7be5be79.pth"), ("fid", "weights-inception-2015-12-05-6726825d.pth")):
        msg = _error(_run("compare", "--metric", metric, "--data", "shapes", "--masks", "box", "--methods", "gray-fill",
                          "--out", out, "--count", 4, "--size", 32))
        assert name in msg and "hub" in msg
    assert test_methods.calls == {} and not out.exists()


def test_sampling_overrides_label_and_separate_the_cache(cli, tmp_path):
    """--set METHOD.key=value reaches the method's config, shows in the label, and a change of
    setting is not served from the other setting's cached predictions."""
    out = tmp_path / "rep"
    common = ["compare", "--metric", "psnr", "--data", "shapes", "--masks", "box", "--count", "3", "--size", "32", "--out", out, "--methods", "telea"]
    res = cli(*common, "--set", "telea.algorithm=ns")
    assert res.exit_code == 0, res.output
    assert "telea[algorithm=ns]" in (out / "results.json").read_text()
    assert "telea[algorithm=ns]" in (out / "report.md").read_text()
    ns = sorted(p.read_bytes() for p in (out / "predictions").rglob("*.png"))
    res = cli(*common)
    assert res.exit_code == 0, res.output
    telea_dirs = sorted(p.name for p in (out / "predictions").iterdir())
    assert len(telea_dirs) == 2, telea_dirs  # one folder per setting
    assert ns, "predictions were written"

    bad = cli(*common, "--set", "lama.foo=1")
    assert bad.exit_code == 2 and "method 'lama' is not compared here" in bad.output
    bad = cli(*common, "--set", "telea.algorithm=magic")
    assert bad.exit_code == 2 and "valid choices: telea, ns" in bad.output
    bad = cli(*common, "--set", "algorithm=ns")
    assert bad.exit_code == 2 and "METHOD.KEY=VALUE" in bad.output
