"""``zoo demo``: the whole zoo as a small study (:mod:`zoo.study`), nothing downloaded.

Every built-in learned method (the methods of the ``inpaint-zoo`` distribution that need
training) is trained for the **same wall-clock budget** at its ``tiny`` preset on ``shapes``,
its tunable sampling settings are chosen on validation images, and all of them and the
classical baselines are scored on the same test images with LaMa medium masks, with the
paired difference against ``telea``. Everything resumes: rerun the same command after an
interruption and finished parts are skipped.

Files: ``DIR/README.md`` (what was run, the table, what the budget can and cannot show), and
the study's own files (``report.md``, ``results.json``, ``results.csv``, ``per_image.csv``,
``eval/test-lama-medium/`` with ``report.md``, ``plots/`` and ``grid.png``, ``runs/``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from zoo.errors import ZooError
from zoo.fsutil import write_text
from zoo.plugins import get_manager

BUILTIN_DIST = "inpaint-zoo"
MASKS = "lama-medium"


@dataclass(frozen=True)
class Budget:
    seconds: float  # training wall clock per learned method, the same for every one
    preset: str
    resolution: int
    eval_count: int  # test images
    val_count: int  # validation images that choose the sampling settings
    tune: bool  # False: each method's cheapest listed sampling settings, no validation sampling


BUDGETS = {
    # the test's budget: a smoke test of the whole path in a minute or two; the fills are noise
    # and 8 test images are too few for the study's intervals (a study refuses fewer than 20)
    "fast": Budget(seconds=2, preset="tiny", resolution=32, eval_count=8, val_count=5, tune=False),
    # 7 learned methods x 50 s = 5.8 min of training; choosing the sampling settings on 8 val
    # images and sampling 24 test images take about as long again (repaint's 235-call schedule
    # most of it): about 12 min on an idle 2-core CPU, estimated from CPU times (benchmarks/README.md)
    "full": Budget(seconds=50, preset="tiny", resolution=32, eval_count=24, val_count=8, tune=True),
}

#: What one equal CPU budget of this size can and cannot show, written into the README.
CAN_SHOW = ("At {budget} of CPU training per method on 32 px synthetic shapes, this demo shows which methods learn to fill "
            "flat-coloured holes fastest at equal compute and what each costs per image; it cannot show how they rank on "
            "natural photos or at their published sizes, where the diffusion and transformer methods need orders of magnitude "
            "more training (see benchmarks/study/README.md).")


def demo_methods() -> tuple[list[str], list[str]]:
    """(built-in learned methods, built-in classical methods), sorted."""
    manager = get_manager()
    learned, classical = [], []
    for name in sorted(manager.methods()):
        if manager.plugin_of(name).source != BUILTIN_DIST:
            continue
        (learned if manager.method(name).needs_training else classical).append(name)
    return learned, classical


def demo_command(out: Path, budget: str) -> list[str]:
    return ["zoo", "demo", "--out", str(out), "--budget", budget]


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
    """The study of the module docstring; returns a summary (also written as README.md)."""
    from zoo.study import StudySettings, run_study
    from zoo.study_report import budget_label

    if budget not in BUDGETS:
        raise ZooError(f"unknown budget {budget!r}; valid choices: {', '.join(BUDGETS)}")
    b = BUDGETS[budget]
    out = check_demo_dir(out_dir)
    learned, classical = demo_methods()
    if "telea" not in classical:
        raise ZooError("the built-in baselines plugin (telea) is not loaded; see `zoo plugins`")
    settings = StudySettings(data="shapes", methods=["telea", *[m for m in classical if m != "telea"], *learned], budgets=[float(b.seconds)],
                             masks=[MASKS], resolution=b.resolution, eval_count=b.eval_count, val_count=b.val_count, preset=b.preset,
                             seed=0, device="cpu", tune=b.tune, min_test=min(b.eval_count, 20))
    t0 = time.perf_counter()
    study_cmd = ["zoo", "study", "--data", "shapes", "--methods", ",".join(settings.methods), "--budget", budget_label(b.seconds),
                 "--masks", MASKS, "--preset", b.preset, "--resolution", str(b.resolution), "--eval-count", str(b.eval_count),
                 "--val-count", str(b.val_count), "--device", "cpu", "--out", str(out)] + ([] if b.tune else ["--no-tune"])
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / DEMO_MARK, "a folder of `zoo demo`: rerunning it resumes and replaces README.md and the study's files\n")
    doc = run_study(settings, out, progress=progress, say=say, command=study_cmd)
    summary = {"budget": budget, "settings": b.__dict__, "learned": learned, "classical": classical, "status": doc["status"],
               "total_s": round(time.perf_counter() - t0, 1)}
    write_text(out / "README.md", _readme(out, summary, study_cmd))
    say(f"wrote {out}/README.md and the study's report.md, results.json, eval/test-{MASKS}/grid.png in {summary['total_s']:.0f} s")
    return summary


def _readme(out: Path, s: dict[str, Any], study_cmd: list[str]) -> str:
    from zoo.study_report import budget_label

    b = s["settings"]
    report = (out / "report.md").read_text()
    table = report[report.index("## `"):report.index("## Files")].rstrip()
    per = budget_label(b["seconds"])
    lines = [
        "# zoo demo", "",
        f"Budget `{s['budget']}`: a small `zoo study`. Every built-in learned method ({', '.join(s['learned'])}) was trained at its "
        f"`{b['preset']}` preset on the built-in `shapes` dataset for the same wall-clock budget, **{per} each** (seed 0, CPU), "
        + (f"its tunable sampling settings were chosen on {b['val_count']} validation images" if b["tune"] else
           "each sampled with the cheapest of its tunable sampling settings (not tuned)")
        + ", and all of them and the classical "
        f"baselines ({', '.join(s['classical'])}) filled the same {b['eval_count']} test images at {b['resolution']} px with LaMa "
        "medium masks (`lama-medium`).", "",
        CAN_SHOW.format(budget=per), "",
        f"Wall time of this run: {s['total_s']:.0f} s (parts already done when it started are skipped and not counted again).", "",
        table, "",
        "Example fills: `eval/test-lama-medium/grid.png`; full report: `report.md` (and `eval/test-lama-medium/report.md` per "
        "hole-ratio bin); raw numbers: `results.json`, `results.csv`, `per_image.csv`; training runs with their loss curves: "
        "`runs/<method>/<budget>/log.jsonl`.", "",
        "## Rerun", "",
        "Everything resumes: rerun `" + " ".join(demo_command(out, s["budget"])) + "` and finished parts are skipped "
        "(delete `results/<method>@<budget>/` to redo one method's evaluation, `runs/<method>/` to retrain it).", "",
        *((f"The same study by hand: `{' '.join(study_cmd)}`", "") if b["eval_count"] >= 20 else
          ("(`zoo study` itself refuses fewer than 20 test images; this smoke-test budget uses fewer.)", "")),
        "| part | training | evaluation |", "|---|---|---|", *(f"| {x['label']} | {x['train'] or '—'} | {x['eval']} |" for x in s["status"]), "",
    ]
    return "\n".join(lines)
