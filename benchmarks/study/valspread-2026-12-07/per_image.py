"""The four compare runs of run.sh as one per-image CSV in benchmarks/study/paired.py's format.

    python benchmarks/study/valspread-2026-12-07/per_image.py   # then:
    python benchmarks/study/paired.py benchmarks/study/valspread-2026-12-07/per_image.csv --reference dip-alone-300 --metric psnr,psnr-hole
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from paired import write_rows  # noqa: E402  benchmarks/study/paired.py

RUNS = ("dip-alone-100", "dip-alone-300", "t0-25", "t0-50")


def main() -> None:
    manifest = json.loads((HERE / "work" / "val-lama-medium" / "manifest.json").read_text())
    source = {it["name"]: it["source"] for it in manifest["items"]}
    rows = []
    for run in RUNS:
        (score_file,) = sorted((HERE / "work" / run / "scores").glob("*.json"))
        per = json.loads(score_file.read_text())["score"]["per_image"]
        for i, name in enumerate(per["names"]):
            rows.append({"method": run, "budget": "15m", "mask": "lama-medium", "image": name, "source": source[name],
                         **{m: per[m][i] for m in ("psnr", "psnr-hole")}})
    write_rows(HERE / "per_image.csv", rows)
    print(f"wrote {HERE / 'per_image.csv'} ({len(rows)} rows)")


if __name__ == "__main__":
    main()
