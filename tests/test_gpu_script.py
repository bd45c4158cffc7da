"""benchmarks/gpu/run.sh (issue 24 item 9): its --dry-run runs every step on the CPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu" / "run.sh"


def _run(args, tmp_path, timeout=600):
    env = {**os.environ, "ZOO": f"{sys.executable} -m zoo_cli.main", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout)


def test_dry_run_benches_every_method_and_runs_the_study(tmp_path):
    from zoo.plugins import get_manager

    out = tmp_path / "gpu"
    res = _run(["--dry-run", "--out", str(out)], tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    manager = get_manager()
    for name in manager.methods():
        doc = json.loads((out / f"bench-{name}.json").read_text())
        (r,) = doc["results"]
        assert r["method"] == name and r["ok"], r
        assert doc["settings"]["device"] == "cpu" and doc["settings"]["train"] is True
        if manager.method(name).needs_training:
            assert r["train"]["step_s"]["median"] > 0, r["train"]
    study = json.loads((out / "study-2s.json").read_text())
    assert {r["method"] for r in study["rows"]} == {"telea", "conv-l1"}
    assert study["settings"]["budgets"] == ["2s"] and study["settings"]["data"] == "shapes"
    run = json.loads((out / "run.json").read_text())
    assert run["dry_run"] is True and run["gpu"] is None
    assert [s["step"] for s in run["steps"]] == ["bench all", "study"] and all(s["exit"] == 0 for s in run["steps"])
    assert not list(SCRIPT.parent.glob("bench-*.json"))  # a dry run writes nothing beside the script


def test_bad_arguments_and_a_missing_benchmark_are_one_line(tmp_path):
    res = _run(["--nosuch"], tmp_path, timeout=60)
    assert res.returncode == 2 and res.stderr.strip() == "Error: unknown argument '--nosuch'; valid: --dry-run, --out DIR, --scenes DIR"
    res = _run(["--scenes", str(tmp_path / "absent"), "--out", str(tmp_path / "o")], tmp_path, timeout=60)
    assert res.returncode == 2 and "natural-photo benchmark is not at" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()
