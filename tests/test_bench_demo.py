"""``zoo bench`` and ``zoo demo`` (issue 19)."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from zoo_cli.main import app


def _run(args):
    res = CliRunner().invoke(app, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return res


def _model(method):
    from zoo.config import resolve_config
    from zoo.plugins import get_manager

    spec = get_manager().method(method)
    config, _ = resolve_config(spec, "tiny")
    torch.manual_seed(0)
    return get_manager().call("zoo_build_model", method, config=config).eval(), config


def test_bench_json_on_two_tiny_methods(tmp_path):
    from zoo.inpaint import inpaint

    out = tmp_path / "b.json"
    res = _run(["bench", "conv-l1", "maskgit", "--json", "--repeats", "2", "--out", str(out)])
    doc = json.loads(res.stdout)  # stdout holds only the JSON
    assert json.loads(out.read_text()) == doc
    assert doc["settings"]["batch_size"] == 1 and doc["settings"]["repeats"] == 2 and doc["settings"]["device"] == "cpu"
    assert doc["machine"]["cpu"] and doc["machine"]["torch_threads"] >= 1
    assert doc["versions"]["torch"] == torch.__version__ and "plugin:baselines" in doc["versions"]
    assert "RSS" in doc["memory_method"] and "FlopCounterMode" in doc["flops_method"]
    rows = {r["method"]: r for r in doc["results"]}
    assert set(rows) == {"conv-l1", "maskgit"}
    for method, r in rows.items():
        assert r["ok"], r["error"]
        model, config = _model(method)
        assert r["params"] == sum(p.numel() for p in model.parameters())
        images, masks = torch.zeros(1, 3, 32, 32), torch.zeros(1, 1, 32, 32)
        masks[..., 8:24, 8:24] = 1
        with torch.no_grad():
            _, info = inpaint(method, model, config, images, masks, torch.Generator().manual_seed(0))
        assert r["nfe"] == info["nfe"]
        assert r["preset"] == "tiny" and r["resolution"] == 32
        assert r["gflops_per_call"] > 0 and r["gflops_per_image"] == pytest.approx(r["gflops_per_call"] * r["nfe"])
        lat = r["latency_s_per_image"]
        assert 0 < lat["min"] <= lat["median"] <= lat["max"] < 60
        assert r["images_per_s"] == pytest.approx(1 / lat["median"])
        assert r["s_per_call"] == pytest.approx(lat["median"] / r["nfe"])
        assert r["peak_memory_bytes"] >= 0
    assert rows["maskgit"]["nfe"] > 1 and rows["conv-l1"]["nfe"] == 1


def test_bench_train_step_and_table():
    res = _run(["bench", "conv-l1", "--train", "--repeats", "2", "--no-flops"])
    assert "| conv-l1 | tiny | 32 |" in res.output and "train step s" in res.output
    from zoo.bench import BenchSettings, bench

    doc = bench(["conv-l1"], BenchSettings(train=True, repeats=2, flops=False), progress=False)
    t = doc["results"][0]["train"]
    assert t["steps_timed"] == 2 and 0 < t["step_s"]["min"] <= t["step_s"]["max"] < 60
    assert t["batch_size"] == 4 and t["peak_memory_bytes"] > 0  # the tiny preset's batch
    assert [st["stage"] for st in t["stages"]] == ["train"]


def test_bench_train_takes_the_engines_micro_batch_and_grad_checkpointing():
    from zoo.bench import BenchSettings, bench

    doc = bench(["lama"], BenchSettings(train=True, repeats=1, flops=False, micro_batch="2", grad_checkpointing=True), progress=False)
    st = doc["results"][0]["train"]["stages"][0]
    assert (st["micro_batch"], st["accum"]) == (2, 2)  # the tiny preset's batch of 4 in 2 passes
    assert doc["settings"]["micro_batch"] == "2" and doc["settings"]["grad_checkpointing"] is True
    res = CliRunner().invoke(app, ["bench", "conv-l1", "--train", "--micro-batch", "lots"])
    assert res.exit_code == 2 and res.output.strip().splitlines()[-1] == "Error: --micro-batch 'lots': expected a positive integer or 'auto'"


def test_bench_times_each_training_stage():
    """dit-mca trains a VAE (RUN/vae), then the denoiser: one step time per stage."""
    from zoo.bench import BenchSettings, bench, table

    doc = bench(["dit-mca"], BenchSettings(train=True, repeats=2, flops=False), progress=False, overrides={"dit-mca": {"vae_steps": "3"}})
    t = doc["results"][0]["train"]
    assert [st["stage"] for st in t["stages"]] == ["vae", "train"], t
    assert [st["steps_timed"] for st in t["stages"]] == [2, 2] and t["step_s"] == t["stages"][1]["step_s"]
    assert "vae " in table(doc) and "; train " in table(doc)


def test_a_failing_method_is_one_line_and_the_others_run(monkeypatch):
    import zoo.bench as zb
    from zoo.bench import BenchSettings, bench, table

    real = zb.bench_sampling

    def flaky(method, settings, overrides=None):
        if method == "lama":
            raise RuntimeError("boom\nsecond line")
        return real(method, settings, overrides)

    monkeypatch.setattr(zb, "bench_sampling", flaky)
    doc = bench(["lama", "telea"], BenchSettings(repeats=1, flops=False), progress=False)
    rows = {r["method"]: r for r in doc["results"]}
    assert not rows["lama"]["ok"] and rows["lama"]["error"] == "RuntimeError: boom"
    assert rows["telea"]["ok"] and rows["telea"]["nfe"] is None and rows["telea"]["params"] == 0
    assert "failed: RuntimeError: boom" in table(doc)


def test_peak_memory_sees_an_allocation():
    from zoo.bench import PeakMemory, release_memory

    release_memory()
    with PeakMemory(torch.device("cpu")) as mem:
        x = torch.ones(64 * 2**20 // 4)  # 64 MiB, touched
        del x
    assert mem.peak_bytes >= 48 * 2**20


def test_demo_fast_end_to_end_and_resumes(tmp_path):
    """The demo is a small study: every built-in learned method trained for the same budget,
    scored beside telea on the same test images; a rerun redoes nothing."""
    out = tmp_path / "demo"
    _run(["demo", "--out", str(out), "--budget", "fast"])
    from zoo.demo import BUDGETS, demo_methods

    learned, classical = demo_methods()
    assert {"conv-l1", "lama", "repaint"} <= set(learned) and "telea" in classical
    for m in learned:
        assert (out / "runs" / m / "2s" / "model.safetensors").is_file()
    cmp = out / "eval" / "test-lama-medium"
    for name in ("results.json", "results.csv", "report.md", "grid.png", "plots/psnr.png", "plots/ssim.png", "plots/l1-hole.png"):
        assert (cmp / name).is_file(), name
    for name in ("results.json", "results.csv", "per_image.csv", "report.md"):
        assert (out / name).is_file(), name
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert {r["method"] for r in rows} == set(learned) | set(classical)
    assert all(r["budget"] == "2s" for r in rows if r["method"] in learned)  # the same budget for every learned method
    assert all(r["metrics"]["psnr"]["n"] == BUDGETS["fast"].eval_count for r in rows)
    assert all(set(r["vs_telea"]) >= {"psnr", "ssim", "l1-hole"} for r in rows if r["method"] != "telea")
    readme = (out / "README.md").read_text()
    assert "lama-medium" in readme and "cannot show" in readme and all(f"| {m}@2s |" in readme for m in learned)
    assert readme.count("| trained |") == len(learned)
    # a rerun resumes: nothing is trained or evaluated again
    _run(["demo", "--out", str(out), "--budget", "fast"])
    readme = (out / "README.md").read_text()
    assert "| trained |" not in readme and readme.count("| cached | cached |") == len(learned)


def test_a_failing_training_step_keeps_the_sampling_figures(monkeypatch):
    import zoo.bench as zb
    from zoo.bench import BenchSettings, bench, table
    from zoo.errors import ZooError

    def no_weights(method, settings, overrides=None):
        raise ZooError("the perceptual loss needs weights X")

    monkeypatch.setattr(zb, "bench_training", no_weights)
    doc = bench(["conv-l1"], BenchSettings(repeats=1, flops=False, train=True), progress=False)
    r = doc["results"][0]
    assert r["ok"] and r["params"] > 0 and r["train"] == {"error": "the perceptual loss needs weights X"}
    assert "failed: the perceptual loss needs weights X" in table(doc)
