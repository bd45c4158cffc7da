"""Quality of RePaint's hole fill against network calls per image (issue 7, item 3).

Stages (each cached under $ZOO_BENCH_CACHE, default ~/.cache/inpaint-zoo/repaint_nfe, never
in git):

1. train a small prior on the built-in ``shapes`` data at 32x32 (the ``tiny`` architecture,
   learned variance, hybrid loss) with ``zoo.runner.train``;
2. build a fixed eval set: ``shapes`` test split, ``box`` masks, seed 0, ``--count`` images;
3. inpaint it with every schedule given (generator seeded with ``--seed``) and record network
   calls per image, per-image PSNR and L1 on the hole, seconds, into
   ``results_n{count}_seed{seed}.json`` here (one file per seed, merged by ``report.py`` into ``summary_n{count}.md`` / ``.json``).

A schedule spec is ``t_T/jump/resamplings`` plus optional ``/ddim<eta>`` (DDIM-style steps,
default DDPM steps), ``/noclip`` (x0 estimate not clipped) and ``/fresh`` (the known region re-noised with fresh noise before every
network call, as the official code; default: diffusers' shared draw). Example:

    python benchmarks/repaint_nfe/run.py --count 32 --seed 1 250/10/10 40/3/6 40/3/6/ddim0.5/fresh

LPIPS needs torchvision backbone weights that are not available offline on the machine
this ran on, so the results are PSNR and L1 on the hole pixels.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
CACHE = Path(os.environ.get("ZOO_BENCH_CACHE", Path.home() / ".cache" / "inpaint-zoo" / "repaint_nfe"))

PRIOR = {
    "resolution": 32, "channels": 32, "channel_mult": (1, 2), "num_res_blocks": 1,
    "attention_resolutions": (), "num_head_channels": 16, "learn_sigma": True,
    "lr": 5e-4, "ema_decay": 0.999,
}


def parse_spec(spec: str) -> dict:
    """``t_T/j/r[/ddim<eta>][/fresh]`` -> config overrides."""
    parts = spec.split("/")
    out = {"t_T": int(parts[0]), "jump_length": int(parts[1]), "jump_n_sample": int(parts[2]), "sampler": "ddpm", "eta": 1.0}
    for p in parts[3:]:
        if p.startswith("ddim"):
            out["sampler"], out["eta"] = "ddim", float(p[4:] or 0.0)
        elif p == "fresh":
            out["known_noise"] = "fresh"
        elif p == "noclip":
            out["clip_denoised"] = False
        else:
            raise SystemExit(f"bad schedule spec {spec!r}")
    return out


def hole_psnr(pred, gt, hole):
    m = hole.expand_as(pred)
    mse = (((pred - gt) / 2) ** 2 * m).flatten(1).sum(1) / m.flatten(1).sum(1)
    return 10 * torch.log10(1 / mse.clamp_min(1e-12))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("schedules", nargs="+", help="t_T/jump/resamplings[/ddim<eta>][/fresh]")
    ap.add_argument("--steps", type=int, default=1500, help="training steps of the prior (cached per value)")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--count", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--prior", default="", help="checkpoint to use instead of the cached prior_{steps}")
    ap.add_argument("--tag", default="", help="suffix of the results file (e.g. another prior)")
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "1")))

    from zoo import runner
    from zoo.checkpoint import load_model
    from zoo.data.evalset import build_eval_set, load_eval_set
    from zoo.train import TrainOptions
    from zoo_plugins.repaint.sample import sample

    ckpt = Path(args.prior) if args.prior else CACHE / f"prior_{args.steps}" / "model.safetensors"
    if not ckpt.is_file():
        t0 = time.time()
        overrides = {k: (json.dumps(list(v)) if isinstance(v, tuple) else v) for k, v in PRIOR.items()}
        runner.train("repaint", "shapes", preset="tiny", overrides=overrides, steps=args.steps, batch_size=args.batch_size,
                     out_dir=ckpt.parent, options=TrainOptions(progress=False, log_every=50))
        print(f"trained {args.steps} steps in {time.time() - t0:.0f}s", flush=True)
    eval_dir = CACHE / f"evalset_{args.count}"
    ev = load_eval_set(eval_dir) if (eval_dir / "manifest.json").is_file() else build_eval_set("shapes", "box", args.count, 0, eval_dir, resolution=32, progress=False)
    images = torch.stack([ev.load(i)[0] for i in range(len(ev))])
    holes = torch.stack([ev.load(i)[1] for i in range(len(ev))])
    model, config, _ = load_model(ckpt, "repaint")

    out_json = HERE / f"results_n{len(ev)}_seed{args.seed}{args.tag}.json"
    for spec in args.schedules:
        cfg = dataclasses.replace(config, sampling="custom", **parse_spec(spec))
        t0 = time.time()
        out = sample(model, cfg, images, holes, torch.Generator().manual_seed(args.seed), progress=False)
        secs = time.time() - t0
        p = hole_psnr(out.images, images, holes)
        l1 = ((out.images - images).abs() / 2 * holes).flatten(1).sum(1) / (3 * holes.flatten(1).sum(1))
        row = {"spec": spec, **parse_spec(spec), "nfe": out.info["nfe"], "seconds": round(secs, 1), "prior": str(ckpt.parent.name),
               "per_image_psnr": [round(float(v), 4) for v in p], "per_image_l1": [round(float(v), 5) for v in l1]}
        print(spec, row["nfe"], f"psnr {float(p.mean()):.3f} l1 {float(l1.mean()):.4f} {secs:.0f}s", flush=True)
        # outputs kept (cache, not git) for distribution-level metrics in report.py
        save = CACHE / "outputs" / f"n{len(ev)}_seed{args.seed}{args.tag}" / (spec.replace("/", "_") + ".npy")
        save.parent.mkdir(parents=True, exist_ok=True)
        np.save(save, out.images.numpy().astype(np.float32))
        rows = json.loads(out_json.read_text()) if out_json.is_file() else {}  # re-read: several runs may share the file
        rows[spec] = row
        tmp = out_json.with_suffix(".tmp")
        tmp.write_text(json.dumps(rows, indent=1))
        tmp.replace(out_json)


if __name__ == "__main__":
    main()
