"""Why dip-ddpm's DDPM stage helps or hurts: stage 2 alone, on fixed inputs, in a study folder.

Stage 1 (DIP) does not depend on t0 or the refinement's steps, so the study's DIP-alone
predictions (the sampling variant ``dip-ddpm/stages=dip/t0=100``) are stage 1's outputs; this
script runs stage 2 (:func:`zoo_plugins.dip_ddpm.sample.refine`: noise to t0, denoise with the
known region re-imposed) on top of them for several t0, and on top of the ground truth itself
(the oracle start: what the refinement does to a perfect estimate). The oracle row separates the
two explanations of a refinement that lowers PSNR: if it lowers PSNR even from the truth, the
prior destroys more than it restores at that t0 (too weak for the budget); if it keeps the truth
but lowers DIP's estimate, the start is the problem. A third row per t0 is the truth noised
to t0 and scaled back without any network call: a denoiser that ends below it does harm.

Per image: hole PSNR (``psnr_hole``); per condition: swd-hole over the whole set (texture
statistics, lower is better). Writes a per-image CSV and prints a markdown table.

    OMP_NUM_THREADS=1 python benchmarks/study/dip_stage2.py benchmarks/study/run \\
        --checkpoint benchmarks/study/run/runs/dip-ddpm/15m/model.safetensors \\
        --dip-label "dip-ddpm/stages=dip/t0=100@15m[dip_iters=100]" --split test \\
        --masks lama-medium,lama-thick --t0 25,50,100,250,500 --out OUT.csv
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time
from pathlib import Path

import torch
from paired import paired_cell, study_eval_sets, write_rows  # benchmarks/study/paired.py (this script's folder is on sys.path)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("study", type=Path)
    ap.add_argument("--checkpoint", type=Path, required=True)
    ap.add_argument("--dip-label", required=True, help="the study label of the DIP-alone row (its predictions are stage 1's outputs)")
    ap.add_argument("--split", default="test", choices=["val", "test"])
    ap.add_argument("--masks", default="lama-medium,lama-thick")
    ap.add_argument("--t0", default="25,50,100,250,500")
    ap.add_argument("--steps", type=int, default=20, help="refinement steps (capped at t0 + 1)")
    ap.add_argument("--starts", default="dip,truth", help="dip: stage 1's output; truth: the ground truth (oracle)")
    ap.add_argument("--batch", type=int, default=25)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args(argv)

    from zoo.data.evalset import load_eval_set
    from zoo.errors import ZooError
    from zoo.imageio import load_image
    from zoo.metrics.pixel import psnr_hole
    from zoo.metrics.swd import swd_images
    from zoo.report import safe_label
    from zoo.sampling import build_model
    from zoo_plugins.dip_ddpm.model import make_chain
    from zoo_plugins.dip_ddpm.sample import refine

    try:
        t0s = [int(t) for t in a.t0.split(",")]
    except ValueError:
        sys.exit(f"--t0 {a.t0!r}: give comma-separated integers, e.g. 25,50,100")
    starts = a.starts.split(",")
    bad = [s for s in starts if s not in ("dip", "truth")]
    if bad:
        sys.exit(f"--starts: unknown {bad[0]!r}; valid: dip, truth")
    masks = a.masks.split(",")
    roots = study_eval_sets(a.study, a.split, masks)  # each one there, or one line
    try:
        model, cfg = build_model("dip-ddpm", str(a.checkpoint), None)
    except ZooError as exc:
        sys.exit(f"--checkpoint: {exc}")
    model.eval()
    if max(t0s) >= cfg.diffusion_steps:
        sys.exit(f"--t0: {max(t0s)} is not below the prior's {cfg.diffusion_steps} diffusion steps")
    rows, table = [], []
    for mask, root in zip(masks, roots):
        ev = load_eval_set(root)
        pred = a.study / "eval" / f"{a.split}-{mask}" / "predictions" / safe_label(a.dip_label)
        missing = [it["name"] for it in ev.items if not (pred / f"{it['name']}.png").is_file()]
        if missing:
            sys.exit(f"{a.dip_label} ({a.split}-{mask}): {len(missing)} predictions missing in {pred}; rerun the study to finish them")
        gts, holes, dips = [], [], []
        for i, it in enumerate(ev.items):
            gt, m = ev.load(i)
            gts.append(gt), holes.append(m), dips.append(load_image(pred / f"{it['name']}.png"))
        gt, hole, dip = torch.stack(gts), torch.stack(holes), torch.stack(dips)
        dip = gt * (1 - hole) + dip * hole
        base = psnr_hole(dip, gt, hole)
        names = [it["name"] for it in ev.items]
        sources = [it.get("source", "") for it in ev.items]
        for i in range(len(names)):
            rows.append({"mask": mask, "image": names[i], "source": sources[i], "start": "dip", "t0": 0, "steps": 0, "psnr-hole": float(base[i])})
        table.append((mask, "dip (stage 1 only)", "-", float(base.mean()), None, swd_images(dip, gt, hole)["avg"], 0.0))
        for t0 in t0s:  # the "do nothing" reference: the truth noised to t0 and scaled back, no network call
            chain = make_chain(cfg)  # the training chain: level t0 is timestep t0
            g = torch.Generator().manual_seed(a.seed)
            x_t0 = chain.q_sample(gt, t0, torch.randn(gt.shape, generator=g))
            noisy = (x_t0 / math.sqrt(float(chain.alphas_cumprod[t0]))).clamp(-1, 1)
            v = psnr_hole(gt * (1 - hole) + noisy * hole, gt, hole)
            table.append((mask, "truth noised to t0, not denoised", t0, float(v.mean()), None, float("nan"), 0.0))
        for start in starts:
            for t0 in t0s:
                c = dataclasses.replace(cfg, t0=t0, refine_steps=min(a.steps, t0 + 1), jump_length=1, jump_n_sample=1)
                t = time.process_time()
                outs = []
                for b in range(0, len(names), a.batch):
                    sl = slice(b, b + a.batch)
                    g = torch.Generator().manual_seed(a.seed * 1_000_003 + b)
                    est = gt[sl] if start == "truth" else dip[sl]
                    with torch.no_grad():
                        out, _ = refine(model, c, gt[sl] * (1 - hole[sl]), hole[sl], est, g)
                    outs.append(gt[sl] * (1 - hole[sl]) + out.clamp(-1, 1) * hole[sl])
                out = torch.stack([o for batch in outs for o in batch])
                cpu = (time.process_time() - t) / len(names)
                v = psnr_hole(out, gt, hole)
                for i in range(len(names)):
                    rows.append({"mask": mask, "image": names[i], "source": sources[i], "start": start, "t0": t0,
                                 "steps": c.refine_steps, "psnr-hole": float(v[i])})
                diff = paired_cell(v.tolist(), base.tolist(), sources)
                table.append((mask, f"{start} + stage 2", t0, float(v.mean()), diff, swd_images(out, gt, hole)["avg"], cpu))
                print(f"{mask} {start} t0={t0}: hole PSNR {float(v.mean()):.2f} ({cpu:.2f} CPU-s/image)", file=sys.stderr, flush=True)
    write_rows(a.out, rows)
    print(f"checkpoint {a.checkpoint}, {a.split} split, {a.steps} steps (capped at t0 + 1), per-image rows in {a.out}\n")
    print("| mask | start | t0 | hole PSNR | vs stage 1 only (95 % CIs) | swd-hole | stage-2 CPU-s / image |\n|---|---|---|---|---|---|---|")
    for mask, start, t0, mean, diff, swd, cpu in table:
        d = "-" if diff is None else diff
        print(f"| {mask} | {start} | {t0} | {mean:.2f} | {d} | {swd:.1f} | {cpu:.2f} |")


if __name__ == "__main__":
    main()
