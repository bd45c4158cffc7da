"""The compact tables of benchmarks/study/README.md, printed from a study's results.json.

    python benchmarks/study/summary.py benchmarks/study/results-2026-12-07/results.json
"""

from __future__ import annotations

import json
import sys


def _ci(m: dict | None, digits: int = 2) -> str:
    if not m or m.get("value") is None:
        return "n/a"
    if m.get("ci_low") is None:
        return f"{m['value']:.{digits}f}"
    return f"{m['value']:+.{digits}f} [{m['ci_low']:+.{digits}f}, {m['ci_high']:+.{digits}f}]"


def tables(doc: dict) -> str:
    out = []
    masks = list(dict.fromkeys(r["mask"] for r in doc["rows"]))
    for mk in masks:
        rows = [r for r in doc["rows"] if r["mask"] == mk]
        rows.sort(key=lambda r: (r["budget_s"] is not None, r["method"], r["budget_s"] or 0))
        out += [f"`{mk}` masks, {len(rows)} rows:", "",
                "| method | budget | train steps | PSNR | SSIM | swd-hole | PSNR vs telea, by photograph | CPU s / image | settings |",
                "|---|---|---|---|---|---|---|---|---|"]
        for r in rows:
            m = r["metrics"]
            diff = r.get("vs_telea_by_photo", {}).get("psnr")
            settings = ", ".join(f"{k}={v}" for k, v in sorted(r["settings"].items())) or "—"
            out.append(f"| {r['method']} | {r['budget'] or '—'} | {r['train_steps'] if r['train_steps'] is not None else '—'} | "
                       f"{m['psnr']['value']:.2f} | {m['ssim']['value']:.3f} | {m.get('swd-hole', {}).get('value', float('nan')):.1f} | "
                       f"{_ci(diff) if r['method'] != 'telea' else '—'} | {r.get('cpu_seconds_per_image') or 0:.3f} | {settings} |")
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python benchmarks/study/summary.py RESULTS_JSON")
    with open(sys.argv[1]) as fh:
        print(tables(json.load(fh)))
