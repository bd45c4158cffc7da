"""Quality of RePaint's hole fill against network calls per image (issue 7, item 3).

Stages (each cached under $ZOO_BENCH_CACHE, default ~/.cache/inpaint-zoo/repaint_nfe, never
in git):

1. train a small prior on the built-in ``shapes`` data at 32x32 (the ``tiny`` architecture,
   learned variance, hybrid loss) with ``zoo.runner.train``;
2. build a fixed eval set: ``shapes`` test split, ``box`` masks, seed 0;
3. inpaint it with every schedule below (same seed) and record network calls per image,
   PSNR on the hole, L1 on the hole, seconds; write ``results.json`` and ``results.md`` here.

LPIPS needs torchvision backbone weights that are not available offline on the machine
this ran on, so the table reports PSNR (hole pixels only) and hole L1.

    python benchmarks/repaint_nfe/run.py [--steps 2000] [--count 8]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
CACHE = Path(os.environ.get("ZOO_BENCH_CACHE", Path.home() / ".cache" / "inpaint-zoo" / "repaint_nfe"))

PRIOR = {
    "resolution": 32, "channels": 32, "channel_mult": (1, 2), "num_res_blocks": 1,
    "attention_resolutions": (), "num_head_channels": 16, "learn_sigma": True,
    "lr": 5e-4, "ema_decay": 0.999,
}

# (name, t_T, jump_length, jump_n_sample, sampler, eta)
SCHEDULES = [
    ("published 250/10/10", 250, 10, 10, "ddpm", 1.0),
    ("250 steps, no resampling", 250, 10, 1, "ddpm", 1.0),
    ("100/10/5", 100, 10, 5, "ddpm", 1.0),
    ("50/5/5", 50, 5, 5, "ddpm", 1.0),
    ("50/5/4", 50, 5, 4, "ddpm", 1.0),
    ("25/5/5", 25, 5, 5, "ddpm", 1.0),
    ("25/5/3", 25, 5, 3, "ddpm", 1.0),
    ("50 steps, no resampling", 50, 5, 1, "ddpm", 1.0),
    ("25/5/5 ddim eta=0.5", 25, 5, 5, "ddim", 0.5),
    # more resamplings on fewer levels (added after a first pass on 8 images)
    ("25/5/10", 25, 5, 10, "ddpm", 1.0),
    ("25/10/10", 25, 10, 10, "ddpm", 1.0),
    ("50/10/5", 50, 10, 5, "ddpm", 1.0),
    ("20/4/10", 20, 4, 10, "ddpm", 1.0),
    ("30/3/8", 30, 3, 8, "ddpm", 1.0),
    # short jumps on more levels (third pass)
    ("120/1/2", 120, 1, 2, "ddpm", 1.0),
    ("70/2/3", 70, 2, 3, "ddpm", 1.0),
    ("40/3/6", 40, 3, 6, "ddpm", 1.0),
    ("50/3/4", 50, 3, 4, "ddpm", 1.0),
    ("100/1/2", 100, 1, 2, "ddpm", 1.0),
]


def hole_psnr(pred, gt, hole):
    m = hole.expand_as(pred)
    mse = (((pred - gt) / 2) ** 2 * m).flatten(1).sum(1) / m.flatten(1).sum(1)
    return 10 * torch.log10(1 / mse.clamp_min(1e-12))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--count", type=int, default=8)
    ap.add_argument("--only", default="", help="comma-separated schedule indices")
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "1")))

    from zoo import runner
    from zoo.checkpoint import load_model
    from zoo.data.evalset import build_eval_set, load_eval_set
    from zoo.train import TrainOptions
    from zoo_plugins.repaint.sample import sample

    run_dir = CACHE / f"prior_{args.steps}"
    ckpt = run_dir / "model.safetensors"
    if not ckpt.is_file():
        t0 = time.time()
        overrides = {k: (list(v) if isinstance(v, tuple) else v) for k, v in PRIOR.items()}
        runner.train("repaint", "shapes", preset="tiny", overrides={k: json.dumps(v) if isinstance(v, list) else v for k, v in overrides.items()},
                     steps=args.steps, batch_size=args.batch_size, out_dir=run_dir, options=TrainOptions(progress=False, log_every=50))
        print(f"trained {args.steps} steps in {time.time() - t0:.0f}s", flush=True)
    eval_dir = CACHE / f"evalset_{args.count}"
    ev = load_eval_set(eval_dir) if (eval_dir / "manifest.json").is_file() else build_eval_set("shapes", "box", args.count, 0, eval_dir, resolution=32, progress=False)
    images = torch.stack([ev.load(i)[0] for i in range(len(ev))])
    holes = torch.stack([ev.load(i)[1] for i in range(len(ev))])
    model, config, _ = load_model(ckpt, "repaint")

    out_json = HERE / f"results_n{len(ev)}.json"
    rows = json.loads(out_json.read_text()) if out_json.is_file() else {}
    picks = [int(i) for i in args.only.split(",")] if args.only else range(len(SCHEDULES))
    for i in picks:
        name, t_T, j, r, sampler, eta = SCHEDULES[i]
        cfg = dataclasses.replace(config, sampling="custom", t_T=t_T, jump_length=j, jump_n_sample=r, sampler=sampler, eta=eta)
        t0 = time.time()
        out = sample(model, cfg, images, holes, torch.Generator().manual_seed(0), progress=False)
        secs = time.time() - t0
        p = hole_psnr(out.images, images, holes)
        l1 = ((out.images - images).abs() / 2 * holes).flatten(1).sum(1) / (3 * holes.flatten(1).sum(1))
        rows[name] = {"t_T": t_T, "jump_length": j, "jump_n_sample": r, "sampler": sampler, "eta": eta, "nfe": out.info["nfe"],
                      "hole_psnr": round(float(p.mean()), 3), "hole_psnr_sem": round(float(p.std() / len(p) ** 0.5), 3),
                      "hole_l1": round(float(l1.mean()), 4), "seconds": round(secs, 1),
                      "per_image_psnr": [round(float(v), 3) for v in p]}
        print(name, rows[name], flush=True)
        out_json.write_text(json.dumps(rows, indent=1))
    ref = torch.tensor(rows[SCHEDULES[0][0]]["per_image_psnr"]) if SCHEDULES[0][0] in rows and "per_image_psnr" in rows[SCHEDULES[0][0]] else None
    lines = ["| schedule (t_T / jump / resamplings) | sampler | NFE per image | hole PSNR (dB) ± SEM | paired diff. vs published (dB) | hole L1 |", "|---|---|---|---|---|---|"]
    for name, r in sorted(rows.items(), key=lambda kv: -kv[1]["nfe"]):
        diff = ""
        if ref is not None and "per_image_psnr" in r:
            d = torch.tensor(r["per_image_psnr"]) - ref
            diff = f"{float(d.mean()):+.2f} ± {float(d.std() / len(d) ** 0.5):.2f}" if name != SCHEDULES[0][0] else "0"
        label = f"{name} (fast)" if (r["t_T"], r["jump_length"], r["jump_n_sample"]) == (40, 3, 6) else name
        lines.append(f"| {label} | {r['sampler']}{'' if r['sampler'] == 'ddpm' else ' eta=' + str(r['eta'])} | {r['nfe']} | {r['hole_psnr']:.2f} ± {r['hole_psnr_sem']:.2f} | {diff} | {r['hole_l1']:.4f} |")
    meta = f"prior: {args.steps} steps, batch {args.batch_size}, 32x32 shapes; eval: {len(ev)} images, box masks, seed 0"
    (HERE / f"results_n{len(ev)}.md").write_text(meta + "\n\n" + "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
