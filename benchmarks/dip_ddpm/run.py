"""DIP-DDPM against a DDPM from pure noise, RePaint and DIP alone, on one prior (issue 16, item 4).

Everything is cached under $ZOO_BENCH_CACHE (default ~/.cache/inpaint-zoo/dip_ddpm), never in git:

1. the prior: ``zoo train repaint`` on ``shapes`` at 32 px (the command is printed by
   ``run.py prior``; trained once), then taken into dip-ddpm unchanged with
   ``zoo train dip-ddpm --set prior=PRIOR`` (same weights in both methods);
2. the eval set: ``shapes`` test split, ``box`` masks, seed 0, 16 images, 32 px;
3. rows, one result file per (row, seed) in ``results/seed{S}/{row}.json``:

   ``ddpm-<steps>``        dip-ddpm ``stages=ddpm``: pure noise at t = 999, ``<steps>`` respaced
                           DDPM steps (learned variance), known region re-imposed after every
                           step; through ``zoo.runner.sample_folder`` (what ``zoo sample`` runs)
   ``repaint-<mode>``      ``zoo sample repaint --set sampling=<mode>`` (published / fast), same prior
   ``dip``                 stage 1 only (:func:`fit_dip`), once per seed; its output is cached
   ``dipddpm-<t0>-<steps>[-j<J>r<R>]``
                           stage 2 (:func:`refine`, DDIM eta = 1 as the config default) from the
                           cached DIP output of the same seed: exactly what ``zoo sample dip-ddpm``
                           computes, without re-fitting DIP for every row

Hole PSNR / L1 are measured on 8-bit outputs (PNG round trip or the same quantisation).
LPIPS needs torchvision's AlexNet weights, which this offline machine does not have.

    python benchmarks/dip_ddpm/run.py prior
    python benchmarks/dip_ddpm/run.py rows --seed 0 ddpm-1000 dip dipddpm-100-10
    python benchmarks/dip_ddpm/report.py
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
CACHE = Path(os.environ.get("ZOO_BENCH_CACHE", Path.home() / ".cache" / "inpaint-zoo" / "dip_ddpm"))
PRIOR_STEPS = 1000
PRIOR_DIR = CACHE / f"prior_{PRIOR_STEPS}"
PRIOR_CMD = (f"zoo train repaint --data shapes --preset tiny --steps {PRIOR_STEPS} --batch-size 8 --set 'attention_resolutions=[]' "
             f"--set learn_sigma=true --set lr=0.0005 --set ema_decay=0.999 --out {PRIOR_DIR}")
COUNT = 16

#: Stage 1 at 32 px: 4 scales (a 32 px image cannot take DIP's 5), 32 channels, 4 skip channels,
#: DIP's optimiser settings, early stopping on 5 % held-out known pixels.
DIP = {"dip_input_channels": 32, "dip_channels_down": [32] * 4, "dip_channels_up": [32] * 4, "dip_channels_skip": [4] * 4,
       "dip_iters": 400, "dip_lr": 0.01, "dip_reg_noise": 0.03, "dip_holdout": 0.05, "dip_eval_every": 25, "dip_patience": 4}


def eval_set():
    from zoo.data.evalset import build_eval_set, load_eval_set

    d = CACHE / f"evalset_{COUNT}"
    ev = load_eval_set(d) if (d / "manifest.json").is_file() else build_eval_set("shapes", "box", COUNT, 0, d, resolution=32, progress=False)
    images = torch.stack([ev.load(i)[0] for i in range(len(ev))])
    holes = torch.stack([ev.load(i)[1] for i in range(len(ev))])
    return ev, images, holes


def dip_checkpoint() -> Path:
    """The repaint prior taken into dip-ddpm (``zoo train dip-ddpm --set prior=...``)."""
    from zoo import runner
    from zoo.train import TrainOptions

    ckpt = CACHE / "dipddpm_prior" / "model.safetensors"
    if not ckpt.is_file():
        runner.train("dip-ddpm", "shapes", preset="tiny", overrides={"prior": str(PRIOR_DIR / "model.safetensors")},
                     out_dir=ckpt.parent, options=TrainOptions(progress=False))
    return ckpt


def quantise(x: torch.Tensor) -> torch.Tensor:
    return torch.round((x.clamp(-1, 1) + 1) * 127.5) / 127.5 - 1


def hole_metrics(pred, gt, hole):
    m = hole.expand_as(pred)
    mse = (((pred - gt) / 2) ** 2 * m).flatten(1).sum(1) / m.flatten(1).sum(1)
    l1 = ((pred - gt).abs() / 2 * m).flatten(1).sum(1) / m.flatten(1).sum(1)
    return 10 * torch.log10(1 / mse.clamp_min(1e-12)), l1


def subset_folders(ev, part: slice) -> tuple[Path, Path]:
    """Image / mask folders of eval-set items ``part`` (symlinks), to split a long row into runs."""
    if part == slice(None):
        return ev.image_dir, ev.mask_dir
    root = CACHE / f"evalset_{COUNT}_{part.start}-{part.stop}"
    for sub in ("images", "masks"):
        (root / sub).mkdir(parents=True, exist_ok=True)
        for it in ev.items[part]:
            link = root / sub / Path(it[sub[:-1]]).name
            if not link.exists():
                link.symlink_to(ev.root / it[sub[:-1]])
    return root / "images", root / "masks"


def via_sample_folder(method, ckpt, ev, seed, overrides, out, part: slice):
    from zoo import runner
    from zoo.imageio import load_image

    images_dir, masks_dir = subset_folders(ev, part)
    t = time.time()
    rep = runner.sample_folder(method, ckpt, images_dir, masks_dir, out, seed=seed, overrides=overrides, batch_size=COUNT, progress=False)
    secs = time.time() - t
    preds = torch.stack([load_image(out / (Path(it["image"]).stem + ".png")) for it in ev.items[part]])
    return preds, {"nfe": rep.info.get("nfe"), "seconds": round(secs, 1), "time_ddpm_s": round(secs, 1), "info": rep.info}


def run_dip(model, cfg, images, holes, seed):
    from zoo_plugins.dip_ddpm.sample import fit_dip

    path = CACHE / "dip" / f"seed{seed}.pt"
    if path.is_file():
        return torch.load(path, weights_only=True)
    t = time.time()
    res = fit_dip(images, holes, cfg, torch.Generator().manual_seed(seed), progress=False)
    secs = time.time() - t
    out = {"images": res.images, "time_dip_s": secs, "best_iter": res.best_iter, "iters": res.iters, "heldout": res.heldout_mse}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(out, path)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["prior", "rows"])
    ap.add_argument("rows", nargs="*")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--images", default="", help="A:B: only eval-set items A..B-1 (sample-folder rows; to split a long row into runs)")
    args = ap.parse_intermixed_args()
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "1")))
    if args.what == "prior":
        print(PRIOR_CMD)
        if not (PRIOR_DIR / "model.safetensors").is_file():
            os.system(PRIOR_CMD)
        return

    from zoo.checkpoint import load_model
    from zoo.config import apply_overrides
    from zoo_plugins.dip_ddpm.sample import refine

    ev, images, holes = eval_set()
    part = slice(*map(int, args.images.split(":"))) if args.images else slice(None)
    tag = f"@{part.start}-{part.stop}" if args.images else ""
    prior_ckpt = PRIOR_DIR / "model.safetensors"
    ckpt = dip_checkpoint()
    model, base, _ = load_model(ckpt, "dip-ddpm")
    base = apply_overrides(base, DIP)
    for row in args.rows:
        out_dir = CACHE / "outputs" / f"seed{args.seed}" / f"{row}{tag}"
        if m := re.fullmatch(r"ddpm-(\d+)", row):
            preds, rec = via_sample_folder("dip-ddpm", ckpt, ev, args.seed, {"stages": "ddpm", "t0": "999", "refine_steps": m.group(1), "sampler": "ddpm"}, out_dir, part)
        elif m := re.fullmatch(r"repaint-(published|fast)", row):
            preds, rec = via_sample_folder("repaint", prior_ckpt, ev, args.seed, {"sampling": m.group(1)}, out_dir, part)
        elif tag:
            raise SystemExit("--images only applies to the ddpm-* and repaint-* rows")
        elif row == "dip":
            d = run_dip(model, base, images, holes, args.seed)
            preds = quantise(d["images"])
            rec = {"nfe": 0, "time_dip_s": round(d["time_dip_s"], 1), "seconds": round(d["time_dip_s"], 1), "dip_best_iter": float(d["best_iter"].float().mean()), "dip_iters": d["iters"]}
        elif m := re.fullmatch(r"dipddpm-(\d+)-(\d+)(?:-j(\d+)r(\d+))?", row):
            d = run_dip(model, base, images, holes, args.seed)
            cfg = apply_overrides(base, {"t0": int(m.group(1)), "refine_steps": int(m.group(2)), "jump_length": int(m.group(3) or 1), "jump_n_sample": int(m.group(4) or 1)})
            cfg.validate()
            t = time.time()
            with torch.no_grad():
                out, nfe = refine(model, cfg, images * (1 - holes), holes, d["images"], torch.Generator().manual_seed(1000 + args.seed), progress=False)
            secs = time.time() - t
            preds = quantise(images * (1 - holes) + out * holes)
            rec = {"nfe": nfe, "time_dip_s": round(d["time_dip_s"], 1), "time_ddpm_s": round(secs, 1), "seconds": round(d["time_dip_s"] + secs, 1)}
        else:
            raise SystemExit(f"unknown row {row!r}")
        p, l1 = hole_metrics(preds, images[part], holes[part])
        rec.update(row=row, seed=args.seed, indices=list(range(COUNT))[part], per_image_psnr=[round(float(v), 4) for v in p], per_image_l1=[round(float(v), 5) for v in l1])
        rec.pop("info", None)
        print(row, f"seed {args.seed} nfe {rec['nfe']} psnr {float(p.mean()):.3f} l1 {float(l1.mean()):.4f} {rec['seconds']}s", flush=True)
        dest = HERE / "results" / f"seed{args.seed}" / f"{row}{tag}.json"
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(json.dumps(rec, indent=1))
        (CACHE / "outputs").mkdir(parents=True, exist_ok=True)
        np.save(CACHE / "outputs" / f"seed{args.seed}_{row}{tag}.npy", preds.numpy().astype(np.float32))


if __name__ == "__main__":
    main()
