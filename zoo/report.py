"""The files a compare folder ends with: results.json, results.csv, report.md,
plots/<metric>.png (each metric per hole-ratio bin) and grid.png (masked input, each
method, ground truth).

Ranking: each method's rank on each metric (by its direction), averaged over the metrics;
ties go to the first metric. The best value of every column is marked in bold.
"""

from __future__ import annotations

import csv
import io
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

from zoo.fsutil import atomic_path, write_text
from zoo.metrics.scoring import ALL, bin_order
from zoo.provenance import versions

#: Folder of a report where each entry's predictions lie: ``OUT/predictions/<safe_label(label)>/``.
PRED_DIR = "predictions"


def safe_label(label: str) -> str:
    """An entry label as a file or folder name."""
    return "".join(c if c.isalnum() or c in "-_.@" else "_" for c in label)


def _fmt(x: float | None, digits: int = 4) -> str:
    if x is None or not math.isfinite(x):
        return "n/a"
    return f"{x:.{digits}g}" if abs(x) >= 1e4 or (x != 0 and abs(x) < 1e-3) else f"{x:.{digits}f}"


def _cell(m: dict[str, Any]) -> str:
    bad = f" ({m['non_finite']} NaN/inf left out)" if m.get("non_finite") else ""
    if m.get("ci_low") is None:
        return _fmt(m.get("value")) + bad
    return f"{_fmt(m['value'])} [{_fmt(m['ci_low'])}, {_fmt(m['ci_high'])}]{bad}"


def rank_entries(res) -> list[int]:
    """Entry indices, best first: mean per-metric rank, then the first metric."""
    n = len(res.entries)
    ranks = np.zeros(n)
    first = np.zeros(n)
    for k, spec in enumerate(res.metrics):
        vals = []
        for e in res.entries:
            v = e.score.metrics[spec.name]["value"]
            v = math.nan if v is None else v
            vals.append(-v if spec.higher_is_better else v)  # smaller = better
        vals = np.asarray(vals, dtype=float)
        vals = np.where(np.isfinite(vals), vals, np.inf)
        order = np.argsort(vals, kind="stable")
        r = np.empty(n)
        r[order] = np.arange(1, n + 1)
        ranks += r
        if k == 0:
            first = vals
    return sorted(range(n), key=lambda i: (ranks[i], first[i]))


def best_index(res, name: str, higher: bool, bin_label: str = ALL) -> int | None:
    best, where = None, None
    for i, e in enumerate(res.entries):
        m = e.score.metrics[name] if bin_label == ALL else e.score.metrics[name]["bins"].get(bin_label, {})
        v = m.get("value")
        if v is None or not math.isfinite(v):
            continue
        if best is None or (v > best if higher else v < best):
            best, where = v, i
    return where


def results_dict(res, order: list[int], command: list[str] | None = None) -> dict[str, Any]:
    manifest = {k: v for k, v in res.eval_set.manifest.items() if k != "items"}
    return {
        "eval_set": {"path": str(res.eval_set.root), **manifest},
        "metrics": [{"name": m.name, "higher_is_better": m.higher_is_better, "description": m.description} for m in res.metrics],
        "ranking": [res.entries[i].entry.label for i in order],
        "methods": [
            {
                "label": e.entry.label,
                "method": e.entry.method,
                "checkpoint": str(e.entry.checkpoint) if e.entry.checkpoint else None,
                "predictions": e.sampled,
                "info": e.info,
                "scores": e.score.to_dict(),
                "method_scores": {f"{e.entry.method}/{k}": v for k, v in e.method_scores.items()},
            }
            for e in res.entries
        ],
        "warnings": res.warnings,
        "command": command or sys.argv,
        "versions": versions(),
    }


def write_csv(res, path: Path) -> None:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["method", "metric", "bin", "value", "ci_low", "ci_high", "n"])
    for e in res.entries:
        for spec in res.metrics:
            m = e.score.metrics[spec.name]
            w.writerow([e.entry.label, spec.name, ALL, m["value"], m["ci_low"], m["ci_high"], m["n"]])
            for b, bm in m["bins"].items():
                w.writerow([e.entry.label, spec.name, b, bm["value"], bm["ci_low"], bm["ci_high"], bm["n"]])
        for k, v in e.method_scores.items():
            w.writerow([e.entry.label, f"{e.entry.method}/{k}", ALL, v, "", "", len(e.score.names)])
    write_text(path, buf.getvalue())


def markdown(res, order: list[int], plots: dict[str, str], grid: str | None) -> str:
    ev = res.eval_set.manifest
    lines = ["# inpaint-zoo comparison", ""]
    lines.append(f"Eval set: {ev.get('count', len(res.eval_set))} images of `{ev.get('data')}` at {ev.get('resolution')} px, "
                 f"masks `{ev.get('masks')}`, seed {ev.get('seed')} (manifest hash `{str(ev.get('hash'))[:12]}`). "
                 "Every method inpainted the same images with the same masks.")
    lines += ["", "Values are means with a 95 % confidence interval in brackets (per-image metrics: Student t; "
              "distribution metrics: paired bootstrap). Methods are ranked by their mean rank over the metrics; "
              "**bold** marks the best value of each column.", ""]
    head = ["rank", "method"] + [f"{m.name} {'↑' if m.higher_is_better else '↓'}" for m in res.metrics]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "---|" * len(head))
    bests = {m.name: best_index(res, m.name, m.higher_is_better) for m in res.metrics}
    for r, i in enumerate(order, 1):
        e = res.entries[i]
        name = f"**{e.entry.label}** (best)" if r == 1 and len(order) > 1 else e.entry.label
        cells = []
        for m in res.metrics:
            c = _cell(e.score.metrics[m.name])
            cells.append(f"**{c}**" if bests[m.name] == i and len(order) > 1 else c)
        lines.append(f"| {r} | {name} | " + " | ".join(cells) + " |")
    extra = [(e.entry.label, f"{e.entry.method}/{k}", v) for e in res.entries for k, v in e.method_scores.items()]
    if extra:
        lines += ["", "## Method-specific numbers (plugin `zoo_score` hook)", "", "| method | number | value |", "|---|---|---|"]
        lines += [f"| {a} | {b} | {_fmt(v)} |" for a, b, v in extra]
    lines += _detail_lines(res, order)
    bins = bin_order([b for e in res.entries for b in e.score.bins])
    if bins:
        lines += ["", "## Per hole-ratio bin", ""]
        for m in res.metrics:
            lines += [f"### {m.name} {'↑' if m.higher_is_better else '↓'}", ""]
            lines.append("| method | " + " | ".join(f"{b} (n={_bin_n(res, m.name, b)})" for b in bins) + " |")
            lines.append("|---|" + "---|" * len(bins))
            for i in order:
                e = res.entries[i]
                row = []
                for b in bins:
                    bm = e.score.metrics[m.name]["bins"].get(b, {})
                    c = _cell(bm) if bm else "n/a"
                    row.append(f"**{c}**" if len(order) > 1 and best_index(res, m.name, m.higher_is_better, b) == i else c)
                lines.append(f"| {e.entry.label} | " + " | ".join(row) + " |")
            if m.name in plots:
                lines += ["", f"![{m.name} per hole-ratio bin]({plots[m.name]})"]
            lines.append("")
    if grid:
        lines += ["## Examples", "", "Masked input, each method, ground truth:", "", f"![examples]({grid})", ""]
    if res.warnings:
        lines += ["## Warnings", ""] + [f"- {w}" for w in res.warnings] + [""]
    return "\n".join(lines) + "\n"


def _detail_lines(res, order: list[int]) -> list[str]:
    """A table per metric that reports a detail (``swd``: its value per pyramid level)."""
    lines: list[str] = []
    for m in res.metrics:
        details = [res.entries[i].score.metrics[m.name].get("detail") or {} for i in order]
        labels = list(dict.fromkeys(k for d in details for k in d))
        if not labels:
            continue
        lines += ["", f"## {m.name} per level {'↑' if m.higher_is_better else '↓'} (the table gives their mean)", ""]
        lines.append("| method | " + " | ".join(labels) + " |")
        lines.append("|---|" + "---|" * len(labels))
        lines += [f"| {res.entries[i].entry.label} | " + " | ".join(_fmt(d.get(k)) for k in labels) + " |" for i, d in zip(order, details)]
    return lines


def _bin_n(res, name: str, b: str) -> int:
    return res.entries[0].score.metrics[name]["bins"].get(b, {}).get("n", 0)


def plot_metric(res, spec, path: Path) -> bool:
    """Line plot of one metric per hole-ratio bin, one line (with CI bars) per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bins = bin_order([b for e in res.entries for b in e.score.bins])
    if not bins:
        return False
    fig, ax = plt.subplots(figsize=(max(4.5, 0.9 * len(bins) + 2), 3.6), dpi=110)
    x = np.arange(len(bins))
    for k, e in enumerate(res.entries):
        ms = [e.score.metrics[spec.name]["bins"].get(b, {}) for b in bins]
        y = np.array([m.get("value") if m.get("value") is not None else np.nan for m in ms], dtype=float)
        lo = np.array([m.get("ci_low") if m.get("ci_low") is not None else np.nan for m in ms], dtype=float)
        hi = np.array([m.get("ci_high") if m.get("ci_high") is not None else np.nan for m in ms], dtype=float)
        off = (k - (len(res.entries) - 1) / 2) * 0.06
        err = np.vstack([np.nan_to_num(y - lo), np.nan_to_num(hi - y)])
        ax.errorbar(x + off, y, yerr=err, marker="o", capsize=3, label=e.entry.label)
    ax.set_xticks(x, bins)
    ax.set_xlabel("hole ratio")
    ax.set_ylabel(f"{spec.name} ({'higher' if spec.higher_is_better else 'lower'} is better)")
    ax.set_title(f"{spec.name} per hole-ratio bin")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return True


def image_grid(res, path: Path, rows: int = 4) -> bool:
    """Rows of examples spread over the hole ratios: masked input | methods | ground truth."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from zoo.imageio import load_image, tensor_to_uint8

    ev = res.eval_set
    n = len(ev)
    if n == 0:
        return False
    by_ratio = sorted(range(n), key=lambda i: ev.items[i].get("hole_ratio", 0.0))
    picks = sorted({by_ratio[int(round(j * (n - 1) / max(rows - 1, 1)))] for j in range(min(rows, n))}, key=lambda i: ev.items[i].get("hole_ratio", 0.0))
    cols = ["masked input"] + [e.entry.label for e in res.entries] + ["ground truth"]
    fig, axes = plt.subplots(len(picks), len(cols), figsize=(1.9 * len(cols), 1.9 * len(picks) + 0.3), dpi=110, squeeze=False)
    for r, i in enumerate(picks):
        item = ev.items[i]
        gt, mask = ev.load(i)
        masked = gt * (1 - mask) + mask * 1.0  # hole shown white
        tiles = [masked] + [load_image(res.out_dir / PRED_DIR / safe_label(e.entry.label) / f"{item['name']}.png") for e in res.entries] + [gt]
        for c, tile in enumerate(tiles):
            ax = axes[r][c]
            ax.imshow(tensor_to_uint8(tile))
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(cols[c], fontsize=8)
            if c == 0:
                ax.set_ylabel(f"{item['name']}\n{100 * item.get('hole_ratio', 0):.0f}% hole", fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return True


def write_report(res, command: list[str] | None = None) -> dict[str, Path]:
    """Write every report file into ``res.out_dir``; returns their paths by kind."""
    out = res.out_dir
    order = rank_entries(res)
    files: dict[str, Path] = {}
    write_text(out / "results.json", json.dumps(results_dict(res, order, command), indent=1, default=float))
    files["json"] = out / "results.json"
    write_csv(res, out / "results.csv")
    files["csv"] = out / "results.csv"
    plots: dict[str, str] = {}
    for spec in res.metrics:
        p = out / "plots" / f"{spec.name}.png"
        if plot_metric(res, spec, p):
            plots[spec.name] = f"plots/{spec.name}.png"
            files[f"plot:{spec.name}"] = p
    grid = None
    if image_grid(res, out / "grid.png"):
        grid = "grid.png"
        files["grid"] = out / "grid.png"
    write_text(out / "report.md", markdown(res, order, plots, grid))
    files["md"] = out / "report.md"
    return files
