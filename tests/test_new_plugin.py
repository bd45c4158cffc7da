"""`zoo new-plugin`: the scaffold installs offline, its own tests pass as generated, and its
method trains, samples and is compared next to a built-in method (with a scaffolded metric)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def _run(args, site: Path, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(site), "OMP_NUM_THREADS": "1"}
    env.pop("ZOO_LOAD_PLUGINS", None)
    proc = subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, env=env, cwd=cwd)
    if check:
        assert proc.returncode == 0, f"{args}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def scaffolds(tmp_path_factory):
    root = tmp_path_factory.mktemp("scaffold")
    site = root / "site"
    for name, kind in (("seam-fill", "method"), ("seam-error", "metric")):
        _run(["-m", "zoo_cli.main", "new-plugin", name, "--out", root / name, "--kind", kind], site)
        _run(["-m", "pip", "install", "--no-index", "--no-deps", "--no-build-isolation", "--quiet", "--target", site, root / name], site)
    return root, site


def test_scaffold_files_and_its_own_tests_pass(scaffolds):
    root, site = scaffolds
    pkg = root / "seam-fill"
    for rel in ("pyproject.toml", "README.md", "zoo_seam_fill/config.py", "zoo_seam_fill/model.py", "zoo_seam_fill/train.py",
                "zoo_seam_fill/sample.py", "zoo_seam_fill/hooks.py", "tests/test_contract.py"):
        assert (pkg / rel).is_file(), rel
    text = (pkg / "pyproject.toml").read_text()
    assert 'dependencies = ["inpaint-zoo"]' in text and 'seam_fill = "zoo_seam_fill.hooks"' in text
    for name in ("seam-fill", "seam-error"):
        out = _run(["-m", "pytest", "-q", "-p", "no:cacheprovider"], site, cwd=root / name).stdout
        assert " passed" in out and "failed" not in out, out


def test_scaffolded_method_trains_samples_and_compares(scaffolds, tmp_path, image_folder):
    root, site = scaffolds
    plugins = {p["name"]: p for p in json.loads(_run(["-m", "zoo_cli.main", "plugins", "--json"], site).stdout)}
    assert plugins["seam_fill"]["status"] == "ok" and plugins["seam_fill"]["source"] == "zoo-seam-fill"
    rows = {r["name"]: r for r in json.loads(_run(["-m", "zoo_cli.main", "list", "--json"], site).stdout)}
    assert rows["seam-fill"]["available"] and rows["seam-fill"]["plugin"] == "seam_fill"
    run = tmp_path / "run"
    _run(["-m", "zoo_cli.main", "train", "seam-fill", "--data", "shapes", "--preset", "tiny", "--steps", "5", "--out", run], site)
    images, masks = image_folder
    _run(["-m", "zoo_cli.main", "sample", "seam-fill", "--checkpoint", run / "model.safetensors", "--images", images, "--masks", masks, "--out", tmp_path / "o"], site)
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["img0.png", "img1.png", "img2.png"]
    _run(["-m", "zoo_cli.main", "compare", "--metric", "psnr,seam-error", "--data", "shapes", "--masks", "box", "--count", "4", "--size", "32",
          "--methods", "telea", "--checkpoint", run / "model.safetensors", "--out", tmp_path / "cmp", "--bootstrap", "0"], site)
    results = json.loads((tmp_path / "cmp" / "results.json").read_text())
    labels = {m["label"] for m in results["methods"]}
    assert labels == {"telea", "seam-fill"}, labels
    assert {m["name"] for m in results["metrics"]} == {"psnr", "seam-error"}


def test_new_plugin_refuses_bad_names_and_existing_ones(cli, tmp_path):
    for name, message in (("Bad_Name", "lowercase letters"), ("telea", "exists already"), ("baselines", "installed already")):
        res = cli("new-plugin", name, "--out", tmp_path / "x")
        assert res.exit_code == 2 and message in res.output, res.output
    assert not (tmp_path / "x").exists()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    res = cli("new-plugin", "fresh-fill", "--out", tmp_path / "full")
    assert res.exit_code == 2 and "not empty" in res.output
