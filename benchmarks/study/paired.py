"""Paired differences between rows of a study against a row other than telea (an ablation's
arms against its default), from the study's raw per-image results.

    python benchmarks/study/paired.py benchmarks/study/ditmca-ablation-2026-12-07/per_image.csv \\
        --reference dit-mca --metric psnr,ssim,l1-hole

Prints one Markdown table per mask kind and budget: each row's mean, its paired difference
from the reference row of the same budget (per-image paired t interval) and the same
difference with a by-photograph (cluster-robust) interval, as in the study's report
(zoo.study_report.paired_difference / clustered_difference). Rows without a budget (telea)
are compared with the reference at every budget.
"""

from __future__ import annotations

import argparse
import csv
import math
from collections import defaultdict

from zoo.data.evalset import source_group
from zoo.study_report import clustered_difference, paired_difference


def _value(text: str) -> float | None:
    try:
        v = float(text)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _fmt(m: dict, digits: int) -> str:
    if m.get("value") is None:
        return "n/a"
    if m.get("ci_low") is None:
        return f"{m['value']:+.{digits}f}"
    return f"{m['value']:+.{digits}f} [{m['ci_low']:+.{digits}f}, {m['ci_high']:+.{digits}f}]"


def write_rows(path, rows: list[dict]) -> None:
    """Per-image rows as a CSV, written atomically (columns: the first row's keys)."""
    from zoo.fsutil import atomic_path

    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def study_eval_sets(study, split: str, masks: list[str]) -> list:
    """The folders STUDY/evalsets/SPLIT-MASK of a study; a missing one ends the script with one
    line naming the eval sets the folder does have."""
    import sys
    from pathlib import Path

    roots = [Path(study) / "evalsets" / f"{split}-{mask}" for mask in masks]
    absent = [r for r in roots if not r.is_dir()]
    if absent:
        folder = Path(study) / "evalsets"
        have = sorted(p.name for p in folder.glob("*")) if folder.is_dir() else []
        sys.exit(f"no eval set {absent[0]}; valid: {', '.join(have) or 'none (not a study folder)'}")
    return roots


def paired_cell(values: list[float], reference: list[float], sources: list[str], digits: int = 2) -> str:
    """One table cell: the paired mean difference with its per-image and by-photograph 95 %
    intervals (eval pairs are crops of a few photographs: the per-image interval is too narrow,
    the by-photograph one has as many degrees of freedom as photographs less one)."""
    i = paired_difference(values, reference)
    d = clustered_difference(values, reference, [source_group(s) for s in sources])
    by_photo = _fmt(d, digits) if d["ci_low"] is not None else "no interval (one photograph)"
    return f"{_fmt(i, digits)} per image; {by_photo} by photograph ({d['groups']})"


def tables(rows: list[dict[str, str]], reference: str, metrics: list[str], methods: list[str] | None = None) -> str:
    data: dict[tuple[str, str, str], dict[str, dict[str, str]]] = defaultdict(dict)  # (method, budget, mask) -> image -> row
    for r in rows:
        data[(r["method"], r["budget"], r["mask"])][r["image"]] = r
    masks = list(dict.fromkeys(r["mask"] for r in rows))
    budgets = [b for b in dict.fromkeys(r["budget"] for r in rows) if b and (reference, b, masks[0]) in data]
    out = []
    for mk in masks:
        for b in budgets:
            ref = data.get((reference, b, mk))
            if not ref:
                continue
            images = sorted(ref)
            labels = [(m, bb) for (m, bb, k) in data if k == mk and (bb in (b, "")) and m != reference
                      and (methods is None or m in methods)]
            out += [f"`{mk}` masks, {b}: against `{reference}@{b}` ({len(images)} images)", "",
                    "| row | " + " | ".join(f"{n} | {n} diff (per image) | {n} diff (by photograph)" for n in metrics) + " |",
                    "|---|" + "---|---|---|" * len(metrics)]
            for m, bb in [(reference, b), *sorted(labels, key=lambda x: (x[1] != "", x[0]))]:
                mine = data[(m, bb, mk)]
                cells = []
                for n in metrics:
                    digits = 3 if n in ("ssim", "l1-hole") else 2
                    a = [_value(mine.get(i, {}).get(n)) for i in images]
                    ok = [x for x in a if x is not None]
                    mean = sum(ok) / len(ok) if ok else float("nan")
                    if m == reference:
                        cells += [f"{mean:.{digits}f}", "—", "—"]
                        continue
                    r0 = [_value(ref[i][n]) for i in images]
                    groups = [source_group(ref[i]["source"]) for i in images]
                    cells += [f"{mean:.{digits}f}", _fmt(paired_difference(a, r0), digits),
                              _fmt(clustered_difference(a, r0, groups), digits)]
                out.append(f"| {m}{'@' + bb if bb else ''} | " + " | ".join(cells) + " |")
            out.append("")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("per_image", help="a study's per_image.csv")
    ap.add_argument("--reference", required=True, help="the method (or variant) label to compare against")
    ap.add_argument("--metric", default="psnr,ssim", help="comma-separated per-image metrics")
    ap.add_argument("--methods", default=None, help="comma-separated labels to show (default: every row)")
    args = ap.parse_args()
    with open(args.per_image, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not any(r["method"] == args.reference for r in rows):
        raise SystemExit(f"--reference {args.reference!r}: no such method in {args.per_image}; "
                         f"valid choices: {', '.join(sorted({r['method'] for r in rows}))}")
    metrics = [m.strip() for m in args.metric.split(",") if m.strip()]
    columns = [c for c in (rows[0] if rows else {}) if c not in ("method", "budget", "mask", "image", "source", "hole_bin")]
    unknown = [m for m in metrics if m not in columns]
    if unknown or not metrics:
        raise SystemExit(f"--metric {args.metric!r}: {', '.join(unknown) or 'no metric'} is not a column of {args.per_image}; "
                         f"valid choices: {', '.join(columns)}")
    methods = [m.strip() for m in args.methods.split(",")] if args.methods else None
    print(tables(rows, args.reference, metrics, methods))


if __name__ == "__main__":
    main()
