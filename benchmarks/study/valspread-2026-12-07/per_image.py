"""The four compare runs of run.sh as one per-image CSV in benchmarks/study/paired.py's format.

    python benchmarks/study/valspread-2026-12-07/per_image.py [FOLDER]   # FOLDER: where run.sh wrote work/ (default: here); then:
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


def main(folder: Path = HERE) -> None:
    """``folder``: where run.sh wrote ``work/`` (this script's folder)."""
    manifest_path = folder / "work" / "val-lama-medium" / "manifest.json"
    if not manifest_path.is_file():
        sys.exit(f"no eval set {manifest_path.parent}; run benchmarks/study/valspread-2026-12-07/run.sh first")
    manifest = json.loads(manifest_path.read_text())
    source = {it["name"]: it["source"] for it in manifest["items"]}
    rows = []
    for run in RUNS:
        found = sorted((folder / "work" / run / "scores").glob("*.json"))
        if len(found) != 1:
            sys.exit(f"{folder / 'work' / run / 'scores'}: expected one score file, found {len(found)}; rerun run.sh")
        per = json.loads(found[0].read_text())["score"]["per_image"]
        missing = [m for m in ("psnr", "psnr-hole") if m not in per]
        if missing:
            sys.exit(f"{found[0]}: no per-image {missing[0]}; rerun run.sh (it scores psnr,psnr-hole from the cached predictions)")
        for i, name in enumerate(per["names"]):
            rows.append({"method": run, "budget": "15m", "mask": "lama-medium", "image": name, "source": source[name],
                         **{m: per[m][i] for m in ("psnr", "psnr-hole")}})
    write_rows(folder / "per_image.csv", rows)
    print(f"wrote {folder / 'per_image.csv'} ({len(rows)} rows)")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE)
