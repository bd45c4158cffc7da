"""The ablation of dit-mca (issue 15, item 7): contextual vs self attention, with and without
RePaint-style resampling, against ``repaint`` in pixel space at equal network calls.

Everything at 32 px on the built-in ``shapes`` data, small models, equal training budgets:

1. ``vae``: one AutoencoderKL (the tiny preset's, 2x down, 4 channels) for ``--vae-steps``,
   trained with ``zoo train dit-mca --set stage=vae``; both denoisers share it;
2. ``dit``: the denoiser twice (``attention=contextual``, read as ``contextual-global`` since
   windows exist (issue 25): image-wide MCA; and ``attention=self``), the same
   steps, batch, seed and VAE (``--set stage=denoiser --set vae=...``);
3. ``repaint``: the pixel prior of ``benchmarks/repaint_nfe`` trained for about the
   wall-clock time of VAE + one denoiser (``--repaint-steps``), a checkpoint every 10 steps;
   it is evaluated at two budgets, the training time of one denoiser (the VAE counted as a
   given, pretrained latent space) and the time of VAE + denoiser;
4. ``eval``: a fixed eval set (``shapes`` test split, ``box`` masks, seed 0, ``--count``
   images), every sampler setting in ``SETTINGS`` with one seeded generator; hole PSNR and
   hole L1 (LPIPS needs backbone weights this machine does not have offline), network calls
   per image and seconds; ``results.json`` and ``results.md`` here.

Runs are cached under $ZOO_BENCH_CACHE (default ~/.cache/inpaint-zoo/dit_mca), never in git.

    python benchmarks/dit_mca/ablation.py all          # or: vae, dit, repaint, eval
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
CACHE = Path(os.environ.get("ZOO_BENCH_CACHE", Path.home() / ".cache" / "inpaint-zoo" / "dit_mca"))

#: the denoiser of both dit-mca variants (tiny preset, wider and deeper: 1.3 M parameters)
DIT = {"depth": 4, "hidden_size": 128, "num_heads": 4, "lr": 1e-3, "ema_decay": 0.99, "train_masks": "box"}
#: the pixel prior (benchmarks/repaint_nfe's 0.78 M-parameter UNet), EMA for a short run
PRIOR = {"resolution": 32, "channels": 32, "channel_mult": [1, 2], "num_res_blocks": 1, "attention_resolutions": [],
         "num_head_channels": 16, "learn_sigma": True, "lr": 5e-4, "ema_decay": 0.99}

#: name -> (method, model, sampler overrides). R: 25 levels, jump 5, 2 passes = 45 calls;
#: P: 45 plain levels = 45 calls; P+w2: 23 levels with guidance 2 = 46 calls.
SETTINGS = {
    "dit-mca contextual, resampling R": ("dit-mca", "contextual", {"num_steps": 25, "jump_length": 5, "jump_n_sample": 2}),
    "dit-mca contextual, no resampling P": ("dit-mca", "contextual", {"num_steps": 45, "jump_n_sample": 1}),
    "dit-mca contextual, no resampling, guidance w=2": ("dit-mca", "contextual", {"num_steps": 23, "jump_n_sample": 1, "guidance": 2.0}),
    "dit-mca self-attention, resampling R": ("dit-mca", "self", {"num_steps": 25, "jump_length": 5, "jump_n_sample": 2}),
    "dit-mca self-attention, no resampling P": ("dit-mca", "self", {"num_steps": 45, "jump_n_sample": 1}),
    "telea (classical, nothing trained)": ("telea", None, {}),
    "repaint pixel prior (denoiser's time), resampling R": ("repaint", "prior@dit", {"sampling": "custom", "t_T": 25, "jump_length": 5, "jump_n_sample": 2}),
    "repaint pixel prior (denoiser's time), no resampling P": ("repaint", "prior@dit", {"sampling": "custom", "t_T": 45, "jump_n_sample": 1}),
    "repaint pixel prior (VAE + denoiser's time), resampling R": ("repaint", "prior@all", {"sampling": "custom", "t_T": 25, "jump_length": 5, "jump_n_sample": 2}),
    "repaint pixel prior (VAE + denoiser's time), no resampling P": ("repaint", "prior@all", {"sampling": "custom", "t_T": 45, "jump_n_sample": 1}),
}


PAIRS = [
    ("dit-mca contextual, resampling R", "dit-mca self-attention, resampling R"),
    ("dit-mca contextual, no resampling P", "dit-mca self-attention, no resampling P"),
    ("dit-mca contextual, resampling R", "dit-mca contextual, no resampling P"),
    ("dit-mca contextual, resampling R", "repaint pixel prior (denoiser's time), resampling R"),
    ("dit-mca contextual, resampling R", "repaint pixel prior (VAE + denoiser's time), resampling R"),
]


def _set(overrides: dict) -> dict:
    return {k: (json.dumps(v) if isinstance(v, (list, tuple)) else v) for k, v in overrides.items()}


def _train(method: str, run: Path, steps: int, batch: int, overrides: dict, save_every: int = 0) -> float:
    from zoo import runner
    from zoo.train import TrainOptions

    done = json.loads((run / "bench.json").read_text()) if (run / "bench.json").is_file() else None
    if done and done["steps"] >= steps:
        return done["seconds"]
    t0 = time.time()
    if done:  # a cached run with fewer steps: continue it (exactly, from its last checkpoint)
        runner.train(method, "shapes", steps=steps, options=TrainOptions(progress=False, log_every=10, tensorboard=False, resume=str(run), save_every=save_every))
    else:
        runner.train(method, "shapes", preset="tiny", overrides=_set(overrides), steps=steps, batch_size=batch, seed=0,
                     out_dir=run, options=TrainOptions(progress=False, log_every=10, tensorboard=False, save_every=save_every, keep_last=0))
    secs = time.time() - t0 + (done["seconds"] if done else 0.0)
    (run / "bench.json").write_text(json.dumps({"seconds": secs, "steps": steps, "batch_size": batch}))
    print(f"{method} {run.name}: {steps} steps in {secs:.0f}s", flush=True)
    return secs


def repaint_checkpoint(seconds: float) -> tuple[Path, int]:
    """The repaint run's checkpoint (saved every 10 steps) at the first logged step whose
    training time reaches ``seconds`` (or its last one)."""
    from zoo.train.watch import read_log

    run = CACHE / "repaint"
    steps = [r["step"] for r in read_log(run) if "time" in r and r["time"] >= seconds and r["step"] % 10 == 0]
    step = steps[0] if steps else json.loads((run / "bench.json").read_text())["steps"]
    path = run / "checkpoints" / f"step_{step:07d}" / "model.safetensors"
    return (path if path.is_file() else run / "model.safetensors"), step


def hole_psnr(pred: torch.Tensor, gt: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
    m = hole.expand_as(pred)
    mse = (((pred - gt) / 2) ** 2 * m).flatten(1).sum(1) / m.flatten(1).sum(1)
    return 10 * torch.log10(1 / mse.clamp_min(1e-12))


def hole_l1(pred: torch.Tensor, gt: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
    return ((pred - gt).abs() / 2 * hole).flatten(1).sum(1) / (3 * hole.flatten(1).sum(1))


def evaluate(args) -> None:
    from zoo.checkpoint import load_model
    from zoo.data.evalset import build_eval_set, load_eval_set
    from zoo.plugins import get_manager

    eval_dir = CACHE / f"evalset_{args.count}"
    ev = load_eval_set(eval_dir) if (eval_dir / "manifest.json").is_file() else build_eval_set("shapes", "box", args.count, 0, eval_dir, resolution=32, progress=False)
    images = torch.stack([ev.load(i)[0] for i in range(len(ev))])
    holes = torch.stack([ev.load(i)[1] for i in range(len(ev))])
    erased = images * (1 - holes)  # as the core hands them to a method
    budgets = {name: json.loads((CACHE / name / "bench.json").read_text()) for name in ("vae", "dit_contextual", "dit_self", "repaint")}
    # the repaint prior at two budgets: the training time of one denoiser, and of VAE + denoiser
    t_dit, t_vae = budgets["dit_contextual"]["seconds"], budgets["vae"]["seconds"]
    prior_dit, prior_all = repaint_checkpoint(t_dit), repaint_checkpoint(t_vae + t_dit)
    ckpts = {"contextual": CACHE / "dit_contextual" / "model.safetensors", "self": CACHE / "dit_self" / "model.safetensors",
             "prior@dit": prior_dit[0], "prior@all": prior_all[0]}
    budgets["repaint"].update({"step_at_denoiser_time": prior_dit[1], "step_at_vae_plus_denoiser_time": prior_all[1]})
    rows = []
    model, _, _ = load_model(ckpts["contextual"], "dit-mca")
    with torch.no_grad():  # the VAE alone: its reconstruction of the ground truth, composited (a ceiling)
        rec = images * (1 - holes) + model.decode(model.encode(images)).clamp(-1, 1) * holes
    rows.append({"setting": "VAE reconstruction of the ground truth (ceiling of dit-mca)", "nfe": 0,
                 "psnr_hole": float(hole_psnr(rec, images, holes).mean()), "l1_hole": float(hole_l1(rec, images, holes).mean()), "seconds": 0.0})
    manager = get_manager()
    for name, (method, which, overrides) in SETTINGS.items():
        if which is None:
            from zoo.runner import build_model

            model, config = build_model(method, None)
        else:
            model, config, _ = load_model(ckpts[which], method)
        cfg = dataclasses.replace(config, **overrides)
        t0 = time.time()
        with torch.no_grad():
            out = manager.call("zoo_sample", method, model=model, config=cfg, images=erased, masks=holes, generator=torch.Generator().manual_seed(args.seed))
        secs = time.time() - t0
        assert torch.equal(out.images * (1 - holes), images * (1 - holes))
        p, l1 = hole_psnr(out.images, images, holes), hole_l1(out.images, images, holes)
        rows.append({"setting": name, "nfe": out.info.get("nfe", 0), "psnr_hole": float(p.mean()), "psnr_hole_sem": float(p.std() / len(p) ** 0.5),
                     "l1_hole": float(l1.mean()), "seconds": round(secs, 1), "per_image_psnr": [round(float(v), 3) for v in p]})
        print(f"{name}: nfe {out.info.get('nfe', 0)} hole PSNR {float(p.mean()):.2f} L1 {float(l1.mean()):.4f} ({secs:.0f}s)", flush=True)
    meta = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores shared, no GPU, 1 thread",
            "count": len(ev), "seed": args.seed, "budgets": budgets, "dit": DIT, "prior": PRIOR}
    (HERE / "results.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    lines = ["| setting | network calls / image | hole PSNR (dB) | hole L1 | sampling s (16 img) |", "|---|---|---|---|---|"]
    for r in rows:
        sem = f" ± {r['psnr_hole_sem']:.2f}" if "psnr_hole_sem" in r else ""
        lines.append(f"| {r['setting']} | {r['nfe']} | {r['psnr_hole']:.2f}{sem} | {r['l1_hole']:.4f} | {r['seconds']} |")
    by = {r["setting"]: r for r in rows}
    lines += ["", "Paired differences in hole PSNR over the same images (mean ± standard error, dB):", ""]
    for a, b in PAIRS:
        d = torch.tensor(by[a]["per_image_psnr"]) - torch.tensor(by[b]["per_image_psnr"])
        lines.append(f"- {a} minus {b}: {float(d.mean()):+.3f} ± {float(d.std() / len(d) ** 0.5):.3f}")
    (HERE / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("stage", choices=["all", "vae", "dit", "repaint", "eval"])
    ap.add_argument("--vae-steps", type=int, default=700)
    ap.add_argument("--dit-steps", type=int, default=750)
    ap.add_argument("--repaint-steps", type=int, default=560, help="about the time of VAE + one denoiser; checkpoints every 10 steps")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--count", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    os.environ.setdefault("TQDM_DISABLE", "1")  # no sampler progress bars in the log
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "1")))
    if args.stage in ("all", "vae"):
        _train("dit-mca", CACHE / "vae", args.vae_steps, args.batch_size, {"stage": "vae", "vae_lr": 2e-3})
    if args.stage in ("all", "dit"):
        for attention in ("contextual", "self"):
            _train("dit-mca", CACHE / f"dit_{attention}", args.dit_steps, args.batch_size,
                   {**DIT, "stage": "denoiser", "vae": str(CACHE / "vae" / "model.safetensors"), "attention": attention})
    if args.stage in ("all", "repaint"):
        _train("repaint", CACHE / "repaint", args.repaint_steps, args.batch_size, PRIOR, save_every=10)
    if args.stage in ("all", "eval"):
        evaluate(args)


if __name__ == "__main__":
    main()
