"""`zoo new-plugin`: the scaffolds install offline and their own tests pass as generated (with
no warnings, using only the documented API); the method trains, samples and is compared next
to a built-in method with the scaffolded metric, which tells fills apart; taken names, bad
kinds and a full --out are one line that suggests only options that exist."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

#: What the generated tests may import from the zoo: the API docs/plugins.md documents.
DOCUMENTED = {
    "zoo": {"MaskGeneratorSpec", "TrainContext"},
    "zoo.testing": {"CHECKS", "run_check", "check_metric", "check_plugin", "example_batch"},
    "zoo.train": {"TrainOptions", "fit"},
}


def _run(args, site: Path, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(site), "OMP_NUM_THREADS": "1"}
    env.pop("ZOO_LOAD_PLUGINS", None)
    proc = subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, env=env, cwd=cwd)
    if check:
        assert proc.returncode == 0, f"{args}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def scaffolds(tmp_path_factory):
    """seam-fill: a method and its metric in one package; edge-error: a metric alone; plain-fill: a method alone."""
    root = tmp_path_factory.mktemp("scaffold")
    site = root / "site"
    for name, kind in (("seam-fill", "method,metric"), ("edge-error", "metric"), ("plain-fill", "method")):
        out = _run(["-m", "zoo_cli.main", "new-plugin", name, "--out", root / name, "--kind", kind], site).stdout
        assert f"wrote plugin {name.replace('-', '_')!r}" in out, out
        _run(["-m", "pip", "install", "--no-index", "--no-deps", "--no-build-isolation", "--quiet", "--target", site, root / name], site)
    return root, site


def test_one_package_holds_the_method_and_the_metric(scaffolds):
    root, site = scaffolds
    pkg = root / "seam-fill"
    for rel in ("pyproject.toml", "README.md", "zoo_seam_fill/config.py", "zoo_seam_fill/model.py", "zoo_seam_fill/train.py",
                "zoo_seam_fill/sample.py", "zoo_seam_fill/metric.py", "zoo_seam_fill/hooks.py",
                "tests/test_contract.py", "tests/test_metric.py", "tests/test_plugin.py"):
        assert (pkg / rel).is_file(), rel
    assert not (root / "edge-error" / "zoo_edge_error" / "model.py").exists() and not (root / "plain-fill" / "zoo_plain_fill" / "metric.py").exists()
    text = (pkg / "pyproject.toml").read_text()
    assert 'dependencies = ["inpaint-zoo"]' in text and 'seam_fill = "zoo_seam_fill.hooks"' in text
    code = [line for line in (pkg / "zoo_seam_fill" / "hooks.py").read_text().splitlines() if not line.lstrip().startswith("#")]
    assert not [line for line in code if "method !=" in line or "return None" in line]  # the core dispatches to the owner: no guards
    plugins = {p["name"]: p for p in json.loads(_run(["-m", "zoo_cli.main", "plugins", "--json"], site).stdout)}
    assert plugins["seam_fill"]["status"] == "ok" and plugins["seam_fill"]["source"] == "zoo-seam-fill"
    assert plugins["seam_fill"]["methods"] == ["seam-fill"] and plugins["seam_fill"]["metrics"] == ["seam-fill-grad-error"]
    assert plugins["edge_error"]["metrics"] == ["edge-error"] and not plugins["edge_error"]["methods"]
    assert plugins["plain_fill"]["methods"] == ["plain-fill"] and not plugins["plain_fill"]["metrics"]
    # registration imports no torch: `zoo list` / `zoo plugins` stay fast with the plugin installed
    probe = "import sys, zoo_seam_fill.hooks as h; h.zoo_register_methods(); h.zoo_register_metrics(); print('torch' in sys.modules)"
    assert _run(["-c", probe], site).stdout.strip() == "False"


@pytest.mark.parametrize("name", ["seam-fill", "edge-error", "plain-fill"])
def test_the_generated_tests_pass_without_warnings(scaffolds, name):
    root, site = scaffolds
    out = _run(["-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error::UserWarning"], site, cwd=root / name).stdout
    assert re.search(r"\d+ passed", out) and "failed" not in out and "warning" not in out.lower(), out


@pytest.mark.parametrize("name", ["seam-fill", "edge-error", "plain-fill"])
def test_the_generated_tests_use_only_the_documented_api(scaffolds, name):
    root, _ = scaffolds
    for path in sorted((root / name / "tests").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "zoo":
                used = {a.name for a in node.names}
                assert node.module in DOCUMENTED and used <= DOCUMENTED[node.module], f"{path.name}: from {node.module} import {used}"
            if isinstance(node, ast.Import):
                assert not any(a.name.split(".")[0] == "zoo" for a in node.names), f"{path.name}: {[a.name for a in node.names]}"


def test_the_generated_metric_tells_a_good_fill_from_a_bad_one(scaffolds):
    """The old template scored the known ring around the hole, which the core keeps equal to
    the truth: 0 for every fill. This one scores the hole."""
    _, site = scaffolds
    probe = """
import json, torch
from zoo.metrics import metric
from zoo.testing import example_batch
gt, mask = example_batch(n=4)
hole = mask.expand_as(gt).bool()
fills = {"truth": gt, "good": torch.where(hole, (gt + 0.05 * torch.randn(gt.shape, generator=torch.Generator().manual_seed(1))).clamp(-1, 1), gt),
         "flat": torch.where(hole, torch.zeros_like(gt), gt), "wrong": torch.where(hole, gt.flip(0), gt)}
print(json.dumps({k: metric(name).fn(v, gt, mask).tolist() for name in ("seam-fill-grad-error", "edge-error") for k, v in fills.items()}))
"""
    values = json.loads(_run(["-c", probe], site).stdout)
    assert values["truth"] == [0.0] * 4
    for i in range(4):
        assert values["good"][i] < values["flat"][i] and values["good"][i] < values["wrong"][i], values


def test_scaffolded_method_trains_samples_and_compares(scaffolds, tmp_path, image_folder):
    root, site = scaffolds
    rows = {r["name"]: r for r in json.loads(_run(["-m", "zoo_cli.main", "list", "--json"], site).stdout)}
    assert rows["seam-fill"]["available"] and rows["seam-fill"]["plugin"] == "seam_fill"
    run = tmp_path / "run"
    _run(["-m", "zoo_cli.main", "train", "seam-fill", "--data", "shapes", "--preset", "tiny", "--steps", "5", "--out", run], site)
    images, masks = image_folder
    _run(["-m", "zoo_cli.main", "sample", "seam-fill", "--checkpoint", run / "model.safetensors", "--images", images, "--masks", masks, "--out", tmp_path / "o"], site)
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["img0.png", "img1.png", "img2.png"]
    _run(["-m", "zoo_cli.main", "compare", "--metric", "psnr,seam-fill-grad-error,edge-error", "--data", "shapes", "--masks", "box", "--count", "4",
          "--size", "32", "--methods", "telea", "--checkpoint", run / "model.safetensors", "--out", tmp_path / "cmp", "--bootstrap", "0"], site)
    results = json.loads((tmp_path / "cmp" / "results.json").read_text())
    assert {m["label"] for m in results["methods"]} == {"telea", "seam-fill"}
    assert {m["name"] for m in results["metrics"]} == {"psnr", "seam-fill-grad-error", "edge-error"}
    values = {m["label"]: m["scores"]["metrics"]["seam-fill-grad-error"]["value"] for m in results["methods"]}
    assert all(0 < v < 1 for v in values.values()) and values["telea"] != values["seam-fill"], values  # not 0.0000 for every method


def _refused(cli, *args: str) -> str:
    res = cli("new-plugin", *args)
    assert res.exit_code == 2 and res.output.startswith("Error: ") and res.output.count("\n") == 1, res.output
    return res.output


def test_new_plugin_refuses_bad_and_taken_names_in_one_line(cli, tmp_path):
    from zoo import MetricSpec, hookimpl
    from zoo.plugins import get_manager

    for args, message in (
        (["Bad_Name"], "lowercase letters"),
        (["telea"], "name 'telea' is already used (method of plugin baselines)"),
        (["baselines"], "name 'baselines' is already used (plugin baselines)"),
        (["psnr", "--kind", "metric"], "name 'psnr' is already used (metric of plugin zoo)"),
        (["shapes", "--kind", "metric"], "(dataset of plugin zoo)"),
        (["box"], "(mask kind of plugin zoo)"),
        (["zoo"], "(plugin zoo)"),
        (["plugins"], "the package name 'zoo_plugins' (from 'plugins') is already importable"),
        (["fresh", "--kind", "gan"], "unknown plugin kind 'gan'; valid choices: method, metric, method,metric"),
    ):
        out = _refused(cli, *args, "--out", tmp_path / "x")
        assert message in out, out
    assert not (tmp_path / "x").exists()

    class Taken:
        @hookimpl
        def zoo_register_metrics(self):
            return [MetricSpec("fresh-grad-error", "taken", False, lambda p, g, m: (p - g).abs().flatten(1).mean(1))]

    get_manager().register(Taken(), name="taken")
    out = _refused(cli, "fresh", "--kind", "method,metric", "--out", tmp_path / "x")
    assert "metric name 'fresh-grad-error' (from 'fresh') is already used (metric of plugin taken)" in out, out


def test_a_full_out_folder_is_refused_suggesting_only_options_that_exist(cli, tmp_path, monkeypatch):
    options = set(re.findall(r"--[a-z-]+", cli("new-plugin", "--help").output))
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    out = _refused(cli, "fresh-fill", "--out", tmp_path / "full")
    assert "exists and is not empty; choose a new or empty folder" in out, out
    monkeypatch.chdir(tmp_path)
    (tmp_path / "zoo-fresh-fill").mkdir()
    (tmp_path / "zoo-fresh-fill" / "keep.txt").write_text("mine")
    out2 = _refused(cli, "fresh-fill")
    assert "the default --out zoo-fresh-fill exists and is not empty; choose a new folder with --out DIR" in out2, out2
    for message in (out, out2):
        assert set(re.findall(r"--[a-z-]+", message)) <= options, (message, options)
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine" and sorted(p.name for p in (tmp_path / "full").iterdir()) == ["keep.txt"]
