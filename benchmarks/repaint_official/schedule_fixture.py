"""Write ``tests/fixtures/repaint_schedule_jump.json``: the point lists of the official
``get_schedule_jump`` (andreas128/RePaint, ``guided_diffusion/scheduler.py``) for a grid of
settings, so that ``tests/test_repaint_schedule_official.py`` can check
``zoo.diffusion.jump_points`` against them without the official code.

Usage (the official checkout lives outside this repository and is never committed)::

    git clone https://github.com/andreas128/RePaint /tmp/RePaint
    python benchmarks/repaint_official/schedule_fixture.py --repaint /tmp/RePaint \
        --out tests/fixtures/repaint_schedule_jump.json

Small settings store the whole list; larger ones store its length, the counts of steps
down and up, and the sha256 of the list written as JSON (``json.dumps(points)``).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import itertools
import json
import subprocess
from pathlib import Path

FULL_LIST_MAX = 100  # lists up to this length are stored whole
FIELDS = ["t_T", "jump_length", "jump_n_sample", "jump2_length", "jump2_n_sample", "jump3_length", "jump3_n_sample", "start_resampling", "n_sample"]


def official_scheduler(repaint: Path):
    path = repaint / "guided_diffusion" / "scheduler.py"
    spec = importlib.util.spec_from_file_location("official_scheduler", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # the file imports nothing at module level
    return module


def grid() -> list[dict]:
    settings = []
    for t_T, (jl, jn), (j2l, j2n), (j3l, j3n), start, n_sample in itertools.product(
        (10, 30, 60),
        ((1, 1), (3, 2), (10, 10), (5, 3)),
        ((1, 1), (2, 3), (5, 2)),
        ((1, 1), (1, 2), (2, 2)),
        (None, 20, 7),
        (1, 2),
    ):
        settings.append({"t_T": t_T, "jump_length": jl, "jump_n_sample": jn, "jump2_length": j2l, "jump2_n_sample": j2n,
                         "jump3_length": j3l, "jump3_n_sample": j3n, "start_resampling": start, "n_sample": n_sample})
    plain = {"jump2_length": 1, "jump2_n_sample": 1, "jump3_length": 1, "jump3_n_sample": 1, "start_resampling": None, "n_sample": 1}
    for t_T, jl, jn, start in ((250, 10, 10, None), (250, 10, 10, 250), (250, 10, 10, 100), (100, 10, 5, None), (50, 5, 4, None), (25, 5, 3, None)):
        settings.append({**plain, "t_T": t_T, "jump_length": jl, "jump_n_sample": jn, "start_resampling": start})
    settings.append({**plain, "t_T": 100, "jump_length": 10, "jump_n_sample": 3, "jump2_length": 5, "jump2_n_sample": 2, "jump3_length": 2, "jump3_n_sample": 2})
    return settings


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repaint", type=Path, required=True, help="a checkout of andreas128/RePaint")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    sched = official_scheduler(args.repaint)
    cases = []
    for s in grid():
        kw = dict(s)
        if kw["start_resampling"] is None:
            kw.pop("start_resampling")  # the official default (100000000)
        points = sched.get_schedule_jump(**kw)
        down = sum(b < a for a, b in zip(points, points[1:]))
        case = [s[k] for k in FIELDS] + [len(points), down, len(points) - 1 - down, hashlib.sha256(json.dumps(points).encode()).hexdigest()]
        cases.append(case + [points] if len(points) <= FULL_LIST_MAX else case)
    commit = subprocess.run(["git", "-C", str(args.repaint), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    doc = {
        "generated_by": "python benchmarks/repaint_official/schedule_fixture.py --repaint CHECKOUT --out THIS_FILE",
        "official": "andreas128/RePaint guided_diffusion/scheduler.py get_schedule_jump; start_resampling null = its default (100000000)",
        "official_commit": commit or "unknown",
        "columns": FIELDS + ["length", "down", "up", "sha256", "points (when at most %d long)" % FULL_LIST_MAX],
        "sha256_of": "json.dumps(points) encoded as UTF-8",
        "cases": cases,
    }
    body = ",\n".join(json.dumps(c, separators=(",", ":")) for c in cases)
    head = json.dumps({k: v for k, v in doc.items() if k != "cases"}, indent=1)[:-2]
    args.out.write_text(head + ',\n "cases": [\n' + body + "\n]}\n")
    print(f"{len(cases)} settings, {sum(len(c) > len(FIELDS) + 4 for c in cases)} stored whole -> {args.out}")


if __name__ == "__main__":
    main()
