"""Merge ``results_n{N}_seed*.json`` into one table with paired differences.

For each schedule and each (image, seed) pair, d = PSNR(schedule) - PSNR(published 250/10/10)
on the same image with the same generator seed. The table gives the mean of d and its
standard error, taking images as the independent units (d averaged over seeds per image,
then std / sqrt(N)), and the same for hole L1. Only schedules measured with every seed the
published schedule was measured with are listed in the main table.

    python benchmarks/repaint_nfe/report.py --count 32 [--tag _prior4000]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
REF = "250/10/10"


def hole_patches(images: torch.Tensor, holes: torch.Tensor, size: int = 5) -> torch.Tensor:
    """(B, 3, H, W), (B, 1, H, W) -> (P, 3 * size * size): every patch centred on a hole pixel."""
    cols = torch.nn.functional.unfold(images, size, padding=size // 2)  # (B, 3*s*s, H*W)
    keep = holes.flatten(1) > 0.5  # (B, H*W)
    return cols.transpose(1, 2)[keep]


def sliced_wasserstein(a: torch.Tensor, b: torch.Tensor, projections: int = 256, seed: int = 0) -> float:
    """Sliced Wasserstein-1 distance between two equal-size point sets (P, D)."""
    g = torch.Generator().manual_seed(seed)
    dirs = torch.randn(a.shape[1], projections, generator=g, dtype=torch.float64)
    dirs /= dirs.norm(dim=0, keepdim=True)
    pa, pb = (a.double() @ dirs).sort(0).values, (b.double() @ dirs).sort(0).values
    return float((pa - pb).abs().mean())


def label(r: dict) -> str:
    s = "ddpm" if r["sampler"] == "ddpm" else f"ddim eta={r['eta']:g}"
    return s + (", fresh known noise" if r.get("known_noise") == "fresh" else "")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=32)
    ap.add_argument("--tag", default="")
    ap.add_argument("--seeds", default="", help="comma-separated seeds to use (default: all with a reference)")
    ap.add_argument("--name", default="", help="suffix of the summary files")
    args = ap.parse_args()
    files = sorted(HERE.glob(f"results_n{args.count}_seed*{args.tag}.json"))
    files = [f for f in files if f.stem.split("_seed")[1].lstrip("0123456789") == args.tag]
    runs = {int(f.stem.split("_seed")[1][: len(f.stem.split("_seed")[1]) - len(args.tag)]): json.loads(f.read_text()) for f in files}
    seeds = sorted(s for s, rows in runs.items() if REF in rows and (not args.seeds or str(s) in args.seeds.split(",")))
    if not seeds:
        raise SystemExit("no published reference measured yet")
    nfe = {k: r["nfe"] for s in seeds for k, r in runs[s].items()}
    specs = sorted(nfe, key=lambda k: (-nfe[k], k))
    ref_p = torch.tensor([runs[s][REF]["per_image_psnr"] for s in seeds])  # (S, N)
    out = {"count": args.count, "seeds": seeds, "reference": REF, "rows": []}
    lines = [
        f"eval: {args.count} images (shapes test split, box masks, seed 0) x seeds {seeds}; paired differences vs {REF}, "
        "mean ± standard error over images (per-image differences averaged over seeds)",
        "",
        "| schedule t_T/jump/resamplings | steps | NFE per image | hole PSNR (dB) | paired ΔPSNR vs published (dB) | per seed ΔPSNR | hole L1 | paired ΔL1 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for spec in specs:
        if not all(spec in runs[s] for s in seeds):
            continue
        rs = [runs[s][spec] for s in seeds]
        p = torch.tensor([r["per_image_psnr"] for r in rs])
        d = (p - ref_p).mean(0)  # (N,) per-image, seed-averaged
        n = d.numel()
        row = {"spec": spec, "sampler": label(rs[0]), "nfe": rs[0]["nfe"], "hole_psnr": float(p.mean()),
               "hole_psnr_sem": float(p.mean(0).std() / n**0.5), "d_psnr": float(d.mean()), "d_psnr_se": float(d.std() / n**0.5),
               "d_psnr_per_seed": [float((p[i] - ref_p[i]).mean()) for i in range(len(seeds))]}
        # hole L1: per-image values exist only for runs made with this script (not for the
        # seed-0 rows copied from the first measurement), so L1 uses the seeds that have them
        sl = [i for i, s in enumerate(seeds) if "per_image_l1" in rs[i] and "per_image_l1" in runs[s][REF]]
        cell_l1 = cell_dl1 = ""
        if sl:
            l1 = torch.tensor([rs[i]["per_image_l1"] for i in sl])
            dl = (l1 - torch.tensor([runs[seeds[i]][REF]["per_image_l1"] for i in sl])).mean(0)
            row.update(hole_l1=float(l1.mean()), l1_seeds=[seeds[i] for i in sl], d_l1=float(dl.mean()), d_l1_se=float(dl.std() / n**0.5))
            cell_l1, cell_dl1 = f"{row['hole_l1']:.4f}", f"{row['d_l1']:+.4f} ± {row['d_l1_se']:.4f}"
        out["rows"].append(row)
        diff = "0 (reference)" if spec == REF else f"{row['d_psnr']:+.2f} ± {row['d_psnr_se']:.2f}"
        per_seed = " / ".join(f"{v:+.2f}" for v in row["d_psnr_per_seed"]) if spec != REF else ""
        lines.append(f"| {spec} | {row['sampler']} | {row['nfe']} | {row['hole_psnr']:.2f} ± {row['hole_psnr_sem']:.2f} | {diff} | {per_seed} | {cell_l1} | {cell_dl1 if spec != REF else ''} |")
    # sampling noise: the published schedule against itself with another seed (unpaired in noise)
    if len(seeds) >= 2:
        d = ref_p[1] - ref_p[0]
        out["published_seed1_minus_seed0"] = {"mean": float(d.mean()), "se": float(d.std() / d.numel() ** 0.5)}
        lines += ["", f"Published schedule, seed {seeds[1]} minus seed {seeds[0]} (same images): {float(d.mean()):+.2f} ± {float(d.std() / d.numel() ** 0.5):.2f} dB "
                  f"(per-image std of that difference {float(d.std()):.2f} dB)."]
    # distribution-level: sliced Wasserstein distance between the 5x5 patches around hole
    # pixels of the fills and of the ground truth (all seeds pooled; lower = closer in
    # distribution; a blurry average fill scores badly here even where its PSNR is fine)
    import numpy as np

    from zoo.data.evalset import load_eval_set

    cache = Path(__import__("os").environ.get("ZOO_BENCH_CACHE", Path.home() / ".cache" / "inpaint-zoo" / "repaint_nfe"))
    ev = load_eval_set(cache / f"evalset_{args.count}")
    gt = torch.stack([ev.load(i)[0] for i in range(len(ev))])
    holes = torch.stack([ev.load(i)[1] for i in range(len(ev))])
    swd_lines = []

    def outputs(spec: str, seed: int) -> Path:
        return cache / "outputs" / f"n{args.count}_seed{seed}{args.tag}" / (spec.replace("/", "_") + ".npy")

    # the seeds whose reference outputs were saved (the seed-0 reference of the first
    # measurement was not); every schedule is scored on exactly these, so values compare
    swd_seeds = [s for s in seeds if outputs(REF, s).is_file()]
    boot = torch.Generator().manual_seed(0)
    picks = [torch.randint(0, len(ev), (len(ev),), generator=boot) for _ in range(50)]  # image bootstrap
    for row in out["rows"]:
        if not swd_seeds or not all(outputs(row["spec"], s).is_file() for s in swd_seeds):
            continue
        fills = torch.cat([torch.from_numpy(np.load(outputs(row["spec"], s))) for s in swd_seeds])
        k = len(swd_seeds)
        gts, hs = torch.cat([gt] * k), torch.cat([holes] * k)
        row["swd_seeds"] = swd_seeds
        row["swd_patch5"] = sliced_wasserstein(hole_patches(fills, hs), hole_patches(gts, hs))
        reps = []
        for idx in picks:  # same images resampled for fill and ground truth
            idx = torch.cat([idx + j * len(ev) for j in range(k)])
            reps.append(sliced_wasserstein(hole_patches(fills[idx], hs[idx]), hole_patches(gts[idx], hs[idx]), projections=64))
        row["swd_patch5_boot_se"] = float(torch.tensor(reps).std())
        swd_lines.append(f"| {row['spec']} | {row['sampler']} | {row['nfe']} | {1000 * row['swd_patch5']:.1f} ± {1000 * row['swd_patch5_boot_se']:.1f} |")
    if swd_lines:
        lines += ["", "Distribution of hole patches (5x5 around every hole pixel) against the ground truth's: sliced Wasserstein distance x 1000 (lower is better).", "",
                  f"| schedule | steps | NFE | SWD x1000 ± bootstrap SE (seeds {swd_seeds}) |", "|---|---|---|---|", *swd_lines]
    (HERE / f"summary_n{args.count}{args.tag}{args.name}.json").write_text(json.dumps(out, indent=1))
    (HERE / f"summary_n{args.count}{args.tag}{args.name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
