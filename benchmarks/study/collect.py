"""Copy what a finished (or partial) `zoo study` folder says into a folder that is committed:
the report files, and each training run's loss log and run.json (the run folder itself, with
checkpoints and predictions, is git-ignored).

    python benchmarks/study/collect.py benchmarks/study/run benchmarks/study/results-2026-12-07
    python benchmarks/study/collect.py benchmarks/study/run benchmarks/study/ditmca-ablation-2026-12-07 'dit-mca*'

The optional third argument keeps the run logs of the methods whose folder name matches it
(a glob; default: every run), for a report written with a subset of the folder's methods.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

REPORT_FILES = ("report.md", "results.json", "results.csv", "per_image.csv", "quality_vs_budget.png", "loss_curves.png", "study.json")


def collect(run: Path, dest: Path, runs: str = "*") -> list[Path]:
    dest.mkdir(parents=True, exist_ok=True)
    copied = []
    for name in REPORT_FILES:
        if (run / name).is_file():
            shutil.copy2(run / name, dest / name)
            copied.append(dest / name)
    for mk in sorted((run / "eval").glob("test-*")):
        for name in ("grid.png", "report.md"):
            if (mk / name).is_file():
                target = dest / f"{mk.name}-{name}"
                shutil.copy2(mk / name, target)
                copied.append(target)
    for folder in sorted(p for p in (run / "runs").glob(f"{runs}/*") if p.is_dir()):
        method, budget = folder.parent.name, folder.name
        for path in [folder / "run.json", folder / "stages.json", *sorted(folder.glob("log.jsonl")), *sorted(folder.glob("*/log.jsonl"))]:
            if path.is_file():  # a two-stage method logs each stage in its own folder
                stage = "" if path.parent == folder else f"{path.parent.name}-"
                target = dest / "runs" / f"{method}-{budget}-{stage}{path.name}"
                target.parent.mkdir(exist_ok=True)
                shutil.copy2(path, target)
                copied.append(target)
    return copied


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4):
        sys.exit("usage: python benchmarks/study/collect.py STUDY_FOLDER DEST [RUN_GLOB]")
    for path in collect(Path(sys.argv[1]), Path(sys.argv[2]), *sys.argv[3:]):
        print(path)
