"""Merge ``results/seed*/ROW.json`` into ``summary.md`` / ``summary.json``: per row the hole
PSNR (mean ± standard error over images of the per-image value averaged over seeds), the
paired difference to the reference row (the DDPM from pure noise, 1,000 steps) with its
standard error over images, the per-seed differences, hole L1, network calls and seconds."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REFERENCE = sys.argv[1] if len(sys.argv) > 1 else "ddpm-1000"
COUNT = 16

LABELS = {
    "ddpm": "(a) DDPM from pure noise, known region re-imposed",
    "repaint": "(b) repaint",
    "dip": "(c) DIP alone",
    "dipddpm": "(d) DIP-DDPM",
}


def describe(row: str) -> tuple[str, str]:
    kind, _, rest = row.partition("-")
    if kind == "ddpm":
        return LABELS[kind], f"{rest} DDPM steps from t=999"
    if kind == "repaint":
        return LABELS[kind], {"published": "published: t_T=250 j=10 r=10", "fast": "sampling=fast: t_T=40 j=1 r=6 ddim"}[rest]
    if kind == "dip":
        return LABELS[kind], "<=400 Adam iterations, early stopping"
    parts = rest.split("-")
    extra = f", resampling {parts[2]}" if len(parts) > 2 else ""
    return LABELS[kind], f"t0={parts[0]}, {parts[1]} DDIM steps{extra}"


def se(x: np.ndarray) -> float:
    return float(x.std(ddof=1) / np.sqrt(len(x))) if len(x) > 1 else float("nan")


def main() -> None:
    rows: dict[str, dict[int, dict]] = {}
    parts: dict[tuple[str, int], list[tuple[int, dict]]] = {}
    for f in sorted((HERE / "results").glob("seed*/*.json")):
        rec = json.loads(f.read_text())
        start = int(f.stem.split("@")[1].split("-")[0]) if "@" in f.stem else -1
        parts.setdefault((rec["row"], int(rec["seed"])), []).append((start, rec))
    for (row, seed), recs in parts.items():  # a row split into runs over image ranges: concatenated
        recs.sort(key=lambda r: r[0])
        merged = dict(recs[0][1])
        for key in ("per_image_psnr", "per_image_l1", "indices"):
            merged[key] = [v for _, r in recs for v in r.get(key, range(len(r["per_image_psnr"])))]
        for key in ("seconds", "time_dip_s", "time_ddpm_s"):
            merged[key] = sum(r.get(key, 0) or 0 for _, r in recs)
        rows.setdefault(row, {})[seed] = merged
    if REFERENCE not in rows:
        raise SystemExit(f"no results for the reference row {REFERENCE}")
    ref = rows[REFERENCE]
    order = sorted(rows, key=lambda r: (list(LABELS).index(r.split("-")[0]), -(rows[r][min(rows[r])]["nfe"] or 0), r))
    out, lines = [], []
    ref_nfe = ref[min(ref)]["nfe"]
    lines.append(f"| method | settings | NFE per image | seeds | hole PSNR (dB) | paired ΔPSNR vs {REFERENCE} (dB) | per-seed ΔPSNR | hole L1 | paired ΔL1 | s / image (DIP + DDPM) |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|")
    def by_index(rec: dict, key: str) -> dict[int, float]:
        return dict(zip(rec["indices"], rec[key]))

    for row in order:
        seeds = sorted(rows[row])
        idx = sorted(set.intersection(*(set(rows[row][s]["indices"]) for s in seeds)))
        psnr = np.mean([[by_index(rows[row][s], "per_image_psnr")[i] for i in idx] for s in seeds], axis=0)
        l1 = np.mean([[by_index(rows[row][s], "per_image_l1")[i] for i in idx] for s in seeds], axis=0)
        common = [s for s in seeds if s in ref]
        pidx = [i for i in idx if all(i in ref[s]["indices"] for s in common)]

        def paired(key: str, s: int) -> np.ndarray:
            a, b = by_index(rows[row][s], key), by_index(ref[s], key)
            return np.array([a[i] - b[i] for i in pidx])

        dp = np.mean([paired("per_image_psnr", s) for s in common], axis=0) if common else None
        dl = np.mean([paired("per_image_l1", s) for s in common], axis=0) if common else None
        per_seed = [float(paired("per_image_psnr", s).mean()) for s in common]
        n = len(idx)
        t_dip = np.mean([(rows[row][s].get("time_dip_s", 0) or 0) / len(rows[row][s]["indices"]) for s in seeds])
        t_ddpm = np.mean([(rows[row][s].get("time_ddpm_s", 0) or 0) / len(rows[row][s]["indices"]) for s in seeds])
        nfe = rows[row][seeds[0]]["nfe"]
        label, settings = describe(row)
        if n < COUNT:
            settings += f" (images {idx[0]}-{idx[-1]} only)"
        rec = {"row": row, "method": label, "settings": settings, "nfe": nfe, "seeds": seeds, "images": n,
               "psnr": float(psnr.mean()), "psnr_se": se(psnr), "l1": float(l1.mean()),
               "dpsnr": None if dp is None else float(dp.mean()), "dpsnr_se": None if dp is None else se(dp),
               "dl1": None if dl is None else float(dl.mean()), "dl1_se": None if dl is None else se(dl),
               "per_seed_dpsnr": per_seed, "s_per_image_dip": round(float(t_dip), 2), "s_per_image_ddpm": round(float(t_ddpm), 2)}
        out.append(rec)
        is_ref = row == REFERENCE
        dps = "0 (reference)" if is_ref else ("" if dp is None else f"{rec['dpsnr']:+.2f} ± {rec['dpsnr_se']:.2f}")
        dls = "" if is_ref or dl is None else f"{rec['dl1']:+.4f} ± {rec['dl1_se']:.4f}"
        seeds_s = " / ".join(f"{v:+.2f}" for v in per_seed) if not is_ref else ""
        frac = f" ({nfe / ref_nfe:.2g}x)" if nfe and ref_nfe and not is_ref else ""
        lines.append(f"| {label} | {settings} | {nfe}{frac} | {','.join(map(str, seeds))} | {rec['psnr']:.2f} ± {rec['psnr_se']:.2f} | {dps} | {seeds_s} | {rec['l1']:.4f} | {dls} | {t_dip:.2f} + {t_ddpm:.2f} |")
    head = (f"eval: {out[0]['images']} images (shapes test split, box masks, seed 0, 32 px); hole PSNR = mean ± standard error over images "
            f"of the per-image value averaged over the seeds; paired differences per image against {REFERENCE} (same images, same seeds), "
            "mean ± standard error over images.\n\n")
    (HERE / "summary.md").write_text(head + "\n".join(lines) + "\n")
    (HERE / "summary.json").write_text(json.dumps(out, indent=1))
    print(head + "\n".join(lines))


if __name__ == "__main__":
    main()
