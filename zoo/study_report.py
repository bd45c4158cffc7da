"""The files ``zoo study`` ends with (see :mod:`zoo.study`): ``report.md``, ``results.json``,
``results.csv``, ``per_image.csv``, ``quality_vs_budget.png`` (several budgets) and one compare
report per mask kind (zoo.report) of the test predictions.

Paired differences: both methods fill the identical test pairs, so per test image the
difference ``method - telea`` is taken and given a Student-t 95 % interval of its mean (a
paired t-interval). Set-level metrics get the difference of their values, no interval.

Crops of one photograph are not independent (a benchmark such as benchmarks/scenes cuts
many crops from each photograph), so the paired difference also gets a *by-photograph*
interval (:func:`clustered_difference`): the same mean, with a cluster-robust standard
error over the source photographs (sum of each photograph's residuals, squared, times
k/(k-1)) and a t quantile with k-1 degrees of freedom, k = number of photographs. A crop's
photograph is its source file name up to ``__`` (``plasma-kite__c03`` -> ``plasma-kite``,
as benchmarks/scenes names crops; :func:`zoo.data.evalset.source_group`); a source without
``__`` is its own photograph.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

from zoo.data.evalset import source_group
from zoo.fsutil import write_text

REFERENCE = "telea"  # every method's paired difference is taken against it


def budget_label(seconds: float) -> str:
    """``900.0`` -> ``15m``; ``20.0`` -> ``20s``; ``5400`` -> ``90m``."""
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{int(seconds // 3600)}h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{int(seconds // 60)}m"
    return f"{seconds:g}s"


# --------------------------------------------------------------------------------------
# the report (StudySettings: see zoo.study)
# --------------------------------------------------------------------------------------
def paired_difference(values: list[float | None], reference: list[float | None]) -> dict[str, Any]:
    """Mean and paired t 95 % interval of ``values[i] - reference[i]`` over the images where
    both are finite."""
    from zoo.metrics.scoring import mean_ci

    diffs = [a - b for a, b in zip(values, reference) if a is not None and b is not None and math.isfinite(a) and math.isfinite(b)]
    return mean_ci(diffs)


def clustered_difference(values: list[float | None], reference: list[float | None], groups: list[str]) -> dict[str, Any]:
    """Mean of ``values[i] - reference[i]`` with a cluster-robust (by ``groups``) t 95 %
    interval: SE^2 = k/(k-1) * sum_g (sum_{i in g} (d_i - mean))^2 / n^2, t with k-1
    degrees of freedom. No interval with fewer than 2 groups."""
    from scipy import stats

    pairs = [(a - b, g) for a, b, g in zip(values, reference, groups)
             if a is not None and b is not None and math.isfinite(a) and math.isfinite(b)]
    n = len(pairs)
    if n == 0:
        return {"value": None, "ci_low": None, "ci_high": None, "n": 0, "groups": 0}
    mean = sum(d for d, _ in pairs) / n
    resid: dict[str, float] = {}
    for d, g in pairs:
        resid[g] = resid.get(g, 0.0) + (d - mean)
    k = len(resid)
    if k < 2:
        return {"value": mean, "ci_low": None, "ci_high": None, "n": n, "groups": k}
    se = math.sqrt(k / (k - 1) * sum(r * r for r in resid.values())) / n
    half = float(stats.t.ppf(0.975, k - 1)) * se
    return {"value": mean, "ci_low": mean - half, "ci_high": mean + half, "n": n, "groups": k}


def summarize(records: list[dict[str, Any]], names: list[str]) -> list[dict[str, Any]]:
    """One row per (method, budget, mask kind): each metric with its interval, and the paired
    difference against the reference on the same mask kind."""
    ref = {r["mask"]: r for r in records if r["method"] == REFERENCE}
    rows = []
    key = "vs_" + REFERENCE
    for r in records:
        metrics, diffs, by_photo = r["score"]["metrics"], {}, {}
        base = ref.get(r["mask"])
        for name in names:
            if name not in metrics:
                continue
            mine = r["score"]["per_image"].get(name)
            if base is None or r["method"] == REFERENCE:
                continue
            theirs = base["score"]["per_image"].get(name)
            if mine is not None and theirs is not None and r["score"]["per_image"]["names"] == base["score"]["per_image"]["names"]:
                diffs[name] = {**paired_difference(mine, theirs), "ci": "paired t"}
                sources = r.get("sources") or []
                if len(sources) == len(mine) and sources == (base.get("sources") or []):
                    by_photo[name] = {**clustered_difference(mine, theirs, [source_group(x) for x in sources]), "ci": "by photograph"}
            else:
                a, b = metrics[name].get("value"), base["score"]["metrics"].get(name, {}).get("value")
                diffs[name] = {"value": a - b if a is not None and b is not None else None, "ci_low": None, "ci_high": None, "ci": None}
        rows.append({"method": r["method"], "budget": r["budget"], "budget_s": r["budget_s"], "mask": r["mask"], "label": r["label"],
                     "settings": r["settings"], "metrics": {n: {k: metrics[n].get(k) for k in ("value", "ci_low", "ci_high", "n", "higher_is_better")}
                                                             for n in names if n in metrics},
                     key: diffs, key + "_by_photo": by_photo, "nfe": r["nfe"], "seconds_per_image": r["seconds_per_image"],
                     "cpu_seconds_per_image": r.get("cpu_seconds_per_image"), "method_scores": r.get("method_scores") or {},
                     "train_steps": r["train"].get("step"), "train_seconds": r["train"].get("seconds"), "tuning": r["tuning"]})
    return rows


def budget_needed(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """For each learned method and mask kind whose test PSNR at its largest budget is below the
    reference's: the budget at which the straight line through its last two budgets (PSNR
    against log budget) reaches the reference's PSNR ("not improving" when it does not rise)."""
    ref = {r["mask"]: r["metrics"].get("psnr", {}).get("value") for r in rows if r["method"] == REFERENCE}
    out = []
    for method in dict.fromkeys(r["method"] for r in rows if r["budget_s"] is not None):
        for mk in dict.fromkeys(r["mask"] for r in rows):
            mine = sorted((r for r in rows if r["method"] == method and r["mask"] == mk and r["metrics"].get("psnr", {}).get("value") is not None),
                          key=lambda r: r["budget_s"])
            target = ref.get(mk)
            if len(mine) < 2 or target is None or mine[-1]["metrics"]["psnr"]["value"] >= target:
                continue
            (b1, p1), (b2, p2) = ((r["budget_s"], r["metrics"]["psnr"]["value"]) for r in mine[-2:])
            slope = (p2 - p1) / math.log(b2 / b1)  # dB per e-fold of budget
            needed = "not improving"
            if slope > 0 and (target - p2) / slope > math.log(1000):  # the line is nearly flat: no number worth printing
                needed = f"over 1000 x {budget_label(b2)} (nearly flat)"
            elif slope > 0:
                seconds = b2 * math.exp((target - p2) / slope)
                needed = f"{seconds / 3600:.3g} h" if seconds >= 3600 else f"{seconds / 60:.3g} min"
            out.append({"method": method, "mask": mk, "budgets": [budget_label(b1), budget_label(b2)], "psnr": [p1, p2], "reference": target,
                        "per_doubling": slope * math.log(2), "needed": needed})
    return out


def _fmt(x: Any, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    if isinstance(x, float):
        return f"{x:.{digits}g}" if abs(x) >= 1e4 or (x != 0 and abs(x) < 1e-3) else f"{x:.{digits}f}"
    return str(x)


def _cell(m: dict[str, Any] | None) -> str:
    if not m or m.get("value") is None:
        return "n/a"
    if m.get("ci_low") is None:
        return _fmt(m["value"])
    return f"{_fmt(m['value'])} [{_fmt(m['ci_low'])}, {_fmt(m['ci_high'])}]"


def write_results(s: Any, out: Path, records: list[dict[str, Any]], status: list[dict[str, Any]], names: list[str], command: list[str] | None,
                  seconds: float) -> dict[str, Any]:
    """Every report file of a study folder, from its finished cells (``records``)."""
    from zoo.provenance import versions

    rows = summarize(records, names)
    doc = {"settings": {**asdict(s), "budgets": [budget_label(b) for b in s.budgets]}, "reference": REFERENCE, "metrics": names,
           "statistics": "per-image metrics: mean and Student-t 95 % interval; vs_telea: paired differences (method - telea) per test "
                         "image, mean and paired t 95 % interval; vs_telea_by_photo: the same mean with a cluster-robust interval over the source "
                         "photographs (t, photographs - 1 degrees of freedom); set-level metrics (swd): the value and the difference of the values, no interval",
           "rows": rows, "status": status, "command": command, "seconds_this_run": seconds, "versions": versions()}
    write_text(out / "results.json", json.dumps(doc, indent=1, default=float))
    _write_csv(out / "results.csv", rows, names)
    _write_per_image(out / "per_image.csv", records, names)
    plot = _plot_budgets(out / "quality_vs_budget.png", rows, s) if len(s.budgets) > 1 else None
    _plot_losses(out / "loss_curves.png", out, rows)
    _compare_reports(s, out, records, names)
    write_text(out / "report.md", _markdown(s, rows, names, status, command, plot))
    return doc


def _write_csv(path: Path, rows: list[dict[str, Any]], names: list[str]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf)
    head = ["method", "budget", "mask", "settings", "nfe", "seconds_per_image", "cpu_seconds_per_image", "train_steps"]
    for n in names:
        head += [n, f"{n}_ci_low", f"{n}_ci_high", f"{n}_vs_{REFERENCE}", f"{n}_vs_{REFERENCE}_ci_low", f"{n}_vs_{REFERENCE}_ci_high",
                 f"{n}_vs_{REFERENCE}_by_photo_ci_low", f"{n}_vs_{REFERENCE}_by_photo_ci_high"]
    w.writerow(head)
    for r in rows:
        line = [r["method"], r["budget"] or "", r["mask"], json.dumps(r["settings"], sort_keys=True) if r["settings"] else "", r["nfe"],
                r["seconds_per_image"], r.get("cpu_seconds_per_image"), r["train_steps"]]
        for n in names:
            m, d = r["metrics"].get(n, {}), r["vs_" + REFERENCE].get(n, {})
            c = r.get(f"vs_{REFERENCE}_by_photo", {}).get(n, {})
            line += [m.get("value"), m.get("ci_low"), m.get("ci_high"), d.get("value"), d.get("ci_low"), d.get("ci_high"), c.get("ci_low"), c.get("ci_high")]
        w.writerow(["" if x is None else x for x in line])
    write_text(path, buf.getvalue())


def _write_per_image(path: Path, records: list[dict[str, Any]], names: list[str]) -> None:
    """The raw per-image test results: one row per (method, budget, mask kind, image)."""
    buf = io.StringIO()
    w = csv.writer(buf)
    per = [n for n in names if records and n in records[0]["score"]["per_image"]]
    w.writerow(["method", "budget", "mask", "image", "source", "hole_bin", *per])
    for r in records:
        p = r["score"]["per_image"]
        for i, name in enumerate(p["names"]):
            src = r["sources"][i] if i < len(r.get("sources", [])) else ""
            w.writerow([r["method"], r["budget"] or "", r["mask"], name, src, p["bins"][i] or "", *("" if p[n][i] is None else p[n][i] for n in per)])
    write_text(path, buf.getvalue())


def _plot_budgets(path: Path, rows: list[dict[str, Any]], s: Any) -> str | None:
    """Test PSNR (and its interval) against the training budget, one line per method and
    mask kind; classical methods as horizontal lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from zoo.fsutil import atomic_path

    fig, axes = plt.subplots(1, len(s.masks), figsize=(5.2 * len(s.masks), 3.8), dpi=110, squeeze=False)
    xs = [b / 60 for b in s.budgets]
    for ax, mk in zip(axes[0], s.masks):
        for method in dict.fromkeys(r["method"] for r in rows):
            mine = [r for r in rows if r["method"] == method and r["mask"] == mk]
            if not mine:
                continue
            if mine[0]["budget_s"] is None:
                v = mine[0]["metrics"].get("psnr", {}).get("value")
                if v is not None:
                    ax.axhline(v, ls="--", lw=1, color="grey")
                    ax.annotate(method, (xs[-1], v), fontsize=7, color="grey", va="bottom", ha="right")
                continue
            mine.sort(key=lambda r: r["budget_s"])
            x = [r["budget_s"] / 60 for r in mine]
            y = [r["metrics"]["psnr"]["value"] for r in mine]
            lo = [r["metrics"]["psnr"]["value"] - (r["metrics"]["psnr"]["ci_low"] or r["metrics"]["psnr"]["value"]) for r in mine]
            hi = [(r["metrics"]["psnr"]["ci_high"] or r["metrics"]["psnr"]["value"]) - r["metrics"]["psnr"]["value"] for r in mine]
            ax.errorbar(x, y, yerr=[lo, hi], marker="o", capsize=3, label=method)
        ax.set_xscale("log")
        ax.set_xlabel("training budget (minutes, log scale)")
        ax.set_ylabel("test PSNR (dB), 95 % CI")
        ax.set_title(f"{mk} masks, {s.resolution} px")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path.name


def _last_log(run: Path) -> Path | None:
    """RUN/log.jsonl, or the log of the last stage that has one, for a run whose stages log
    in their own folders (maskgit's tokenizer and transformer; the engine marks each stage
    folder: :func:`zoo.train.state.stage_dirs`)."""
    from zoo.train.state import stage_dirs

    if (run / "log.jsonl").is_file():
        return run / "log.jsonl"
    return next((st / "log.jsonl" for st in reversed(stage_dirs(run)) if (st / "log.jsonl").is_file()), None)


def _plot_losses(path: Path, out: Path, rows: list[dict[str, Any]]) -> str | None:
    """The training loss (``loss`` of RUN/log.jsonl, or ``l1_hole`` for a GAN that logs its
    terms apart; a moving average over 5 % of the steps) against the step, one panel per
    learned method, one line per budget. For a two-stage method the log is its last stage's
    (the denoiser or transformer)."""
    from zoo.report import safe_label

    runs: dict[str, list[tuple[str, Path]]] = {}
    for r in rows:
        log = _last_log(out / "runs" / safe_label(r["method"].split("/", 1)[0]) / str(r["budget"]))
        if r["budget_s"] is not None and log is not None:
            runs.setdefault(r["method"], [])
            item = (r["budget"], log)
            if item not in runs[r["method"]]:
                runs[r["method"]].append(item)
    if not runs:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from zoo.fsutil import atomic_path
    from zoo.train.watch import read_log

    cols = min(4, len(runs))
    rows_n = math.ceil(len(runs) / cols)
    fig, axes = plt.subplots(rows_n, cols, figsize=(4.0 * cols, 3.0 * rows_n), dpi=100, squeeze=False)
    for ax, (method, items) in zip(axes.flat, runs.items()):
        key = "loss"
        for label, log in items:
            recs = read_log(log.parent)
            # a GAN logs its generator and discriminator terms apart: its masked L1 on the hole instead
            key = "loss" if any("loss" in r for r in recs) else "l1_hole"
            points = [(r["step"], r[key]) for r in recs if isinstance(r.get(key), (int, float)) and math.isfinite(r[key]) and "step" in r]
            if len(points) < 2:
                continue
            steps, loss = np.array(points).T
            k = max(1, len(loss) // 20)
            smooth = np.convolve(loss, np.ones(k) / k, mode="valid")
            ax.plot(steps[k - 1 :], smooth, label=f"{label} ({int(steps[-1])} steps)")
        ax.set_title(method, fontsize=9)
        ax.set_xlabel("step")
        ax.set_ylabel(f"training {key} (moving average)")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(runs):]:
        ax.axis("off")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path.name


def _compare_reports(s: Any, out: Path, records: list[dict[str, Any]], names: list[str]) -> None:
    """zoo.report's compare report (tables per hole-ratio bin, plots, grid.png) of every
    test entry of each mask kind, in ``eval/test-<mask>/``."""
    from zoo.compare import CompareResult, Entry, EntryResult
    from zoo.data.evalset import load_eval_set
    from zoo.metrics import parse_metric_list
    from zoo.metrics.scoring import ScoreResult
    from zoo.report import write_report

    specs = parse_metric_list(names)
    for mk in s.masks:
        mine = [r for r in records if r["mask"] == mk]
        if not mine:
            continue
        ev = load_eval_set(out / "evalsets" / f"test-{mk}")
        entries = [EntryResult(Entry(r["label"], r["method"]), ScoreResult.from_dict(r["score"])) for r in mine]
        write_report(CompareResult(out / "eval" / f"test-{mk}", ev, specs, entries))


def _clock_words(s: Any) -> str:
    if getattr(s, "budget_clock", "wall") == "cpu":
        return "CPU-time (CPU seconds of the training process, zoo.train.budget)"
    return "wall-clock"


def _markdown(s: Any, rows: list[dict[str, Any]], names: list[str], status: list[dict[str, Any]], command: list[str] | None,
              plot: str | None) -> str:
    lines = [
        "# zoo study", "",
        f"Data `{s.data}` ({s.split_kind} split by source image: train {s.split_sizes.get('train')}, val {s.split_sizes.get('val')}, "
        f"test {s.split_sizes.get('test')} images), {s.resolution} px, masks {', '.join(f'`{m}`' for m in s.masks)}, "
        f"{s.eval_count} test pairs and {s.val_count} validation pairs per mask kind, seed {s.seed}, device {s.device}. "
        f"Learned methods: preset `{s.preset}`, trained for the same {_clock_words(s)} budget each "
        f"({', '.join(budget_label(b) for b in s.budgets)}). Sampling settings a method declares tunable were chosen on the "
        f"validation split by mean {s.select_metric}; the test split was used for nothing else.", "",
        f"Statistics: mean [95 % CI] (Student t over the test images). `vs {REFERENCE}`: the paired difference "
        f"(method - {REFERENCE}) per test image, mean [paired t 95 % CI]; an interval that excludes 0 is a difference "
        "these images support. Set-level metrics get the difference of the values, without an interval. "
        f"`psnr vs {REFERENCE} (by photo)`: the same mean with a by-photograph interval (cluster-robust over the test "
        "split's source photographs, t with photographs - 1 degrees of freedom; crops of one photograph are not independent, "
        "so this is the interval to read when a test split has few photographs). `s/image`: wall-clock seconds, `CPU s/image`: "
        "CPU seconds of the study process, per test image (sampling only).", "",
    ]
    if command:
        lines += ["Command:", "", "```", " ".join(command), "```", ""]
    for mk in s.masks:
        for b in s.budgets:  # classical methods (no budget) in every budget's table
            sel = [r for r in rows if r["mask"] == mk and r["budget_s"] in (None, b)]
            lines += [f"## `{mk}` masks, budget {budget_label(b)}", ""]
            head = ["method", *names, *(f"{n} vs {REFERENCE}" for n in names[:3]), f"psnr vs {REFERENCE} (by photo)", "settings", "nfe",
                    "s/image", "CPU s/image", "train steps"]
            lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
            for r in sel:
                cells = [r["label"].split("[")[0], *(_cell(r["metrics"].get(n)) for n in names),
                         *(_cell(r["vs_" + REFERENCE].get(n)) if r["method"] != REFERENCE else "—" for n in names[:3]),
                         _cell(r.get(f"vs_{REFERENCE}_by_photo", {}).get("psnr")) if r["method"] != REFERENCE else "—",
                         ", ".join(f"{k}={v}" for k, v in sorted(r["settings"].items())) or "—", _fmt(r["nfe"], 3),
                         _fmt(r["seconds_per_image"], 3), _fmt(r.get("cpu_seconds_per_image"), 3), _fmt(r["train_steps"])]
                lines.append("| " + " | ".join(cells) + " |")
            lines.append("")
    tuned = [r for r in rows if r["tuning"].get("tried")]
    if tuned:
        lines += ["## Sampling settings chosen on validation", "", f"| method | mask | candidate | val {s.select_metric} | nfe | |", "|---|---|---|---|---|---|"]
        for r in tuned:
            for t in r["tuning"]["tried"]:
                mark = "chosen" if t["settings"] == r["settings"] else (t.get("skipped") or "")
                lines.append(f"| {r['label'].split('[')[0]} | {r['mask']} | {', '.join(f'{k}={v}' for k, v in sorted(t['settings'].items()))} | "
                             f"{_cell(t) if t.get('value') is not None else 'n/a'} | {_fmt(t.get('nfe'), 3)} | {mark} |")
        lines.append("")
    scored = [r for r in rows if r.get("method_scores")]
    if scored:
        lines += ["## The methods' own scores", "", "What each plugin's `zoo_score` hook reports on the test images (mean over images), "
                  "e.g. MaskGIT's `tokenizer_ceiling_psnr` (the ground truth's own tokens decoded into the hole: the most its "
                  "transformer could reach, to read beside its psnr) and DiT-MCA's valid fraction of tokens after each block.", "",
                  "| method | mask | scores |", "|---|---|---|"]
        for r in scored:
            vals = ", ".join(f"`{k.split('/', 1)[-1]}` {_fmt(float(v), 4)}" for k, v in sorted(r["method_scores"].items()))
            lines.append(f"| {r['label'].split('[')[0]} | {r['mask']} | {vals} |")
        lines.append("")
    if plot:
        lines += ["## Quality against budget", "", f"![test PSNR against training budget]({plot})", ""]
        lines += ["Training loss curves (last stage of two-stage methods): [loss_curves.png](loss_curves.png).", ""]
        needs = budget_needed(rows)
        if needs:
            lines += [f"Budget a method that loses to {REFERENCE} would need to reach its test PSNR, extrapolated from its last two "
                      "budgets on a log scale (PSNR linear in log budget): a rough guess from two points, not a measurement; "
                      "learning curves usually flatten, so it is more likely too low than too high.", "",
                      f"| method | mask | PSNR at the last two budgets | {REFERENCE} | gain per doubling | budget needed |", "|---|---|---|---|---|---|"]
            for n in needs:
                lines.append(f"| {n['method']} | {n['mask']} | {n['psnr'][0]:.2f} ({n['budgets'][0]}), {n['psnr'][1]:.2f} ({n['budgets'][1]}) | "
                             f"{n['reference']:.2f} | {n['per_doubling']:+.2f} dB | {n['needed']} |")
            lines.append("")
    lines += ["## Files", "", "`results.json`, `results.csv` (these tables), `per_image.csv` (every test image's values), "
              "`eval/test-<mask>/report.md` and `grid.png` (per hole-ratio bin, example fills), `runs/<method>/<budget>/` "
              "(checkpoint, run.json, log.jsonl with the loss curve), `results/<method>@<budget>/<mask>.json` (one finished cell; "
              "a rerun skips it).", "",
              "| part | training | evaluation |", "|---|---|---|", *(f"| {x['label']} | {x['train'] or '—'} | {x['eval']} |" for x in status), ""]
    return "\n".join(lines)
