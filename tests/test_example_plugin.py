"""examples/zoo-harmonic, installed the way a user would (pip, offline): its own tests pass,
and its method and metric are compared next to a built-in method."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "zoo-harmonic"


def _run(args, site, cwd=None):
    env = {**os.environ, "PYTHONPATH": str(site), "OMP_NUM_THREADS": "1"}
    env.pop("ZOO_LOAD_PLUGINS", None)
    proc = subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, env=env, cwd=cwd)
    assert proc.returncode == 0, f"{args}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc


def test_example_plugin_installs_passes_its_tests_and_compares(tmp_path):
    src, site = tmp_path / "src", tmp_path / "site"
    shutil.copytree(EXAMPLE, src, ignore=shutil.ignore_patterns("*.egg-info", "__pycache__", "build"))
    _run(["-m", "pip", "install", "--no-index", "--no-deps", "--no-build-isolation", "--quiet", "--target", site, src], site)
    plugins = {p["name"]: p for p in json.loads(_run(["-m", "zoo_cli.main", "plugins", "--json"], site).stdout)}
    assert plugins["harmonic"]["version"] == "0.2.0" and plugins["harmonic"]["status"] == "ok"
    out = _run(["-m", "pytest", "-q", "-p", "no:cacheprovider"], site, cwd=src).stdout
    assert " passed" in out and "failed" not in out, out
    _run(["-m", "zoo_cli.main", "compare", "--metric", "psnr-hole,grad-error-hole", "--data", "shapes", "--masks", "box", "--count", "4",
          "--size", "32", "--methods", "telea,harmonic", "--out", tmp_path / "cmp", "--bootstrap", "0"], site)
    results = json.loads((tmp_path / "cmp" / "results.json").read_text())
    assert {m["label"] for m in results["methods"]} == {"telea", "harmonic"}
    values = {m["label"]: m["scores"]["metrics"]["grad-error-hole"]["value"] for m in results["methods"]}
    assert all(0 <= v <= 1 for v in values.values()), values
