"""``zoo demo``: the whole zoo on the embedded defaults, with nothing downloaded.

Recipe (every part resumes: rerun the same command after an interruption):

1. train the ``tiny`` preset of every built-in learned method (the methods of the
   ``inpaint-zoo`` distribution that need training) on ``shapes`` for the budget's steps, into
   ``DIR/runs/<method>/model.safetensors`` (a finished run is skipped; a run with a checkpoint
   resumes from it; an unfinished run without one starts again);
2. ``zoo compare`` of those checkpoints and the classical built-in baselines on one eval set
   of ``shapes`` images with LaMa medium masks, with the metrics that need no download (psnr,
   ssim, l1-hole) plus lpips / fid when their weights are already on disk, into
   ``DIR/compare/`` (results.json, results.csv, report.md, plots/, grid.png);
3. ``DIR/README.md``: what was run, the numbers, and the command that reruns each part.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from zoo.errors import ZooError
from zoo.fsutil import write_text
from zoo.plugins import get_manager

BUILTIN_DIST = "inpaint-zoo"
BASE_METRICS = ("psnr", "ssim", "l1-hole")
OPTIONAL_METRICS = ("lpips", "fid")  # used when their weights are present


@dataclass(frozen=True)
class Budget:
    steps: int  # training steps per method
    batch_size: int
    count: int  # eval images
    size: int  # eval image side


BUDGETS = {
    "fast": Budget(steps=2, batch_size=2, count=2, size=32),  # the test's budget: seconds per method
    "full": Budget(steps=150, batch_size=8, count=24, size=32),
}


def demo_methods() -> tuple[list[str], list[str]]:
    """(built-in learned methods, built-in classical methods), sorted."""
    manager = get_manager()
    learned, classical = [], []
    for name in sorted(manager.methods()):
        if manager.plugin_of(name).source != BUILTIN_DIST:
            continue
        (learned if manager.method(name).needs_training else classical).append(name)
    return learned, classical


def available_metrics() -> tuple[list[str], list[str]]:
    """(metrics to use, optional metrics skipped because their weights are missing)."""
    import os

    from zoo.metrics import metric
    from zoo.metrics.scoring import preflight
    from zoo.metrics.weights import OFFLINE_ENV

    use, skipped = list(BASE_METRICS), []
    saved = os.environ.get(OFFLINE_ENV)
    os.environ[OFFLINE_ENV] = "1"  # only look on disk: the demo downloads nothing
    try:
        for name in OPTIONAL_METRICS:
            try:
                preflight([metric(name)])
                use.append(name)
            except ZooError:
                skipped.append(name)
    finally:
        if saved is None:
            os.environ.pop(OFFLINE_ENV, None)
        else:
            os.environ[OFFLINE_ENV] = saved
    return use, skipped


def _train_one(method: str, run: Path, budget: Budget, say: Callable[[str], None], progress: bool) -> tuple[Path, str]:
    from zoo.runner import MODEL_FILE, train
    from zoo.train import TrainOptions
    from zoo.train.state import list_checkpoints

    model = run / MODEL_FILE
    if model.is_file():
        return model, "cached"
    resume = None
    if run.exists():
        if list_checkpoints(run):
            resume = str(run)
        else:
            shutil.rmtree(run)  # interrupted before its first checkpoint: start again
    options = TrainOptions(device="cpu", progress=progress, tensorboard=False, save_every=max(1, budget.steps // 3), resume=resume)
    say(f"train {method} (tiny, {budget.steps} steps, batch {budget.batch_size})" + (" — resuming" if resume else ""))
    if resume:
        path = train(method, None, steps=budget.steps, out_dir=run, options=options,
                     command=["zoo", "train", method, "--resume", str(run)])
    else:
        path = train(method, "shapes", preset="tiny", steps=budget.steps, batch_size=budget.batch_size, seed=0, out_dir=run,
                     options=options, command=_train_command(method, budget, run))
    return path, "resumed" if resume else "trained"


def _train_command(method: str, budget: Budget, run: Path) -> list[str]:
    return ["zoo", "train", method, "--data", "shapes", "--preset", "tiny", "--steps", str(budget.steps),
            "--batch-size", str(budget.batch_size), "--seed", "0", "--device", "cpu", "--out", str(run)]


DEMO_MARK = ".zoo-demo"  # written first: a folder holding it is a demo's, which a rerun resumes


def check_demo_dir(out_dir: str | Path) -> Path:
    """``--out`` of ``zoo demo``: a new or empty folder, or one an earlier ``zoo demo`` wrote
    (it holds ``.zoo-demo``, or a README.md of the demo); any other folder is refused, so the
    demo never replaces a user's README.md or other files."""
    from zoo.fsutil import check_output_dir

    out = Path(out_dir)
    if out.is_dir() and ((out / DEMO_MARK).is_file() or _demo_readme(out / "README.md")):
        return out
    return check_output_dir(out, {}, remedy="it is not a zoo demo folder (no .zoo-demo); choose a new or empty folder")


def _demo_readme(path: Path) -> bool:
    try:
        return path.read_text().startswith("# zoo demo\n")
    except (OSError, UnicodeDecodeError):
        return False


def run_demo(out_dir: str | Path = "zoo-demo", budget: str = "full", progress: bool = True, say: Callable[[str], None] = print) -> dict[str, Any]:
    """The recipe of the module docstring; returns a summary (also written as README.md)."""
    from zoo.compare import Entry, run_compare
    from zoo.metrics import parse_metric_list

    if budget not in BUDGETS:
        raise ZooError(f"unknown budget {budget!r}; valid choices: {', '.join(BUDGETS)}")
    b = BUDGETS[budget]
    out = check_demo_dir(out_dir)
    learned, classical = demo_methods()
    if not learned and not classical:
        raise ZooError("no built-in methods are installed; see `zoo plugins`")
    metric_names, skipped = available_metrics()
    t0 = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / DEMO_MARK, "a folder of `zoo demo`: rerunning it resumes and replaces README.md, runs/ and compare/\n")
    runs, timings = {}, {}
    for method in learned:
        t = time.perf_counter()
        runs[method], how = _train_one(method, out / "runs" / method, b, say, progress)
        timings[method] = (round(time.perf_counter() - t, 1), how)
    train_s = time.perf_counter() - t0
    entries = [Entry(label=m, method=m) for m in classical] + [Entry(label=m, method=m, checkpoint=p) for m, p in runs.items()]
    say(f"compare {len(entries)} methods on {b.count} shapes images ({b.size} px, lama-medium masks): {', '.join(metric_names)}")
    t = time.perf_counter()
    cmp_dir = out / "compare"
    compare_cmd = ["zoo", "compare", "--metric", ",".join(metric_names), "--data", "shapes", "--masks", "lama-medium",
                   "--count", str(b.count), "--size", str(b.size), "--seed", "0", "--device", "cpu", "--out", str(cmp_dir)]
    compare_cmd[compare_cmd.index("--metric"):compare_cmd.index("--metric")] = (["--methods", ",".join(classical)] if classical else []) + \
        [x for p in runs.values() for x in ("--checkpoint", str(p))]
    res = run_compare(entries, parse_metric_list(metric_names), cmp_dir, "shapes", "lama-medium", count=b.count, size=b.size, seed=0,
                      batch_size=8, device="cpu", bootstrap=10, progress=progress, command=compare_cmd)
    compare_s = time.perf_counter() - t
    summary = {"budget": budget, "settings": b.__dict__, "learned": learned, "classical": classical, "metrics": metric_names,
               "skipped_metrics": skipped, "train": timings, "train_s": round(train_s, 1), "compare_s": round(compare_s, 1),
               "total_s": round(time.perf_counter() - t0, 1), "warnings": res.warnings}
    write_text(out / "README.md", _readme(out, summary, res, compare_cmd))
    say(f"wrote {out}/README.md and {cmp_dir}/ (report.md, results.json, results.csv, plots/, grid.png) in {summary['total_s']:.0f} s")
    return summary


def _readme(out: Path, s: dict[str, Any], res: Any, compare_cmd: list[str]) -> str:
    b = s["settings"]
    report = (res.out_dir / "report.md").read_text().split("\n## ")[0].rstrip()
    lines = [
        "# zoo demo", "",
        f"Budget `{s['budget']}`: every built-in learned method ({', '.join(s['learned'])}) trained at its `tiny` preset on the "
        f"built-in `shapes` dataset for {b['steps']} steps (batch {b['batch_size']}, seed 0, CPU), then compared with the classical "
        f"baselines ({', '.join(s['classical']) or 'none'}) on one eval set of {b['count']} `shapes` images at {b['size']} px with "
        f"LaMa medium masks (`lama-medium`), metrics {', '.join(s['metrics'])}"
        + (f" ({', '.join(s['skipped_metrics'])} skipped: their weights are not on disk, and the demo downloads nothing)" if s["skipped_metrics"] else "")
        + ". Tiny models trained briefly: the numbers show the zoo working end to end, not what the methods can do.", "",
        f"Wall time of this run: {s['total_s']:.0f} s (training {s['train_s']:.0f} s, compare {s['compare_s']:.0f} s; "
        "parts already done when it started are skipped and not counted again).", "",
        "## Results", "", report, "",
        "Files: `compare/report.md` (full report, per-bin tables), `compare/results.json`, `compare/results.csv`, "
        "`compare/plots/<metric>.png` (per mask-coverage bin), `compare/grid.png` (inputs, results, ground truth), "
        "`runs/<method>/` (checkpoint, run.json, log.jsonl).", "",
        "## Rerun one part", "",
        "Everything resumes: rerun `zoo demo --out " + str(out) + " --budget " + s["budget"] + "` and finished parts are skipped. "
        "To redo one method, delete its `runs/<method>/` folder and `compare/predictions/<method>/`, or run the parts by hand:", "",
        "```", *(" ".join(_train_command(m, BUDGETS[s["budget"]], out / "runs" / m)) for m in s["learned"]), " ".join(compare_cmd), "```", "",
        "| method | training s | how |", "|---|---|---|", *(f"| {m} | {t} | {how} |" for m, (t, how) in s["train"].items()), "",
    ]
    return "\n".join(lines)
