"""PSNR over the hole pixels only (``psnr-hole``) for every row of a study, from its test
predictions, as a per_image.csv that benchmarks/study/paired.py reads (the study's own
per_image.csv has PSNR over the whole image).

    python benchmarks/study/hole_psnr.py benchmarks/study/run benchmarks/study/ditmca-ablation-2026-12-07/results.json OUT.csv
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from paired import write_rows  # benchmarks/study/paired.py (this script's folder is on sys.path)


def main(study: Path, results: Path, out: Path) -> None:
    from zoo.data.evalset import load_eval_set
    from zoo.imageio import load_image
    from zoo.metrics.pixel import psnr_hole
    from zoo.report import safe_label

    doc = json.loads(results.read_text())
    rows = []
    for r in doc["rows"]:
        ev = load_eval_set(study / "evalsets" / f"test-{r['mask']}")
        pred = study / "eval" / f"test-{r['mask']}" / "predictions" / safe_label(r["label"])
        missing = [it["name"] for it in ev.items if not (pred / f"{it['name']}.png").is_file()]
        if missing:
            sys.exit(f"{r['label']} ({r['mask']}): {len(missing)} test predictions missing in {pred} (e.g. {missing[0]}.png); "
                     f"rerun the study to finish them")
        for i, item in enumerate(ev.items):
            gt, mask = ev.load(i)
            value = float(psnr_hole(load_image(pred / f"{item['name']}.png")[None], gt[None], mask[None])[0])
            rows.append({"method": r["method"], "budget": r["budget"] or "", "mask": r["mask"], "image": item["name"],
                         "source": item.get("source", ""), "psnr-hole": value})
    write_rows(out, rows)
    print(f"wrote {out} ({len(rows)} rows)")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit("usage: python benchmarks/study/hole_psnr.py STUDY_FOLDER RESULTS_JSON OUT_CSV")
    main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
