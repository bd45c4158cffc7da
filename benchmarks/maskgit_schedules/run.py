"""MaskGIT mask schedule x iterations on one tiny model (issue 14, item 6).

1. train one tiny model on the built-in ``shapes`` data at 32 px with one ``zoo train``
   (both stages; cached under $ZOO_BENCH_CACHE, default ~/.cache/inpaint-zoo/maskgit_schedules,
   never in git): the ``tiny`` preset with the overrides in MODEL below;
2. a fixed eval set: ``shapes`` test split, ``box`` masks, seed 0, ``--count`` images
   (hole pixels erased before sampling, as the core does);
3. inpaint it with every schedule x total_iter, for each sampling seed, and record hole
   PSNR per image, transformer calls per image (nfe) and seconds into ``results_n{count}.json``;
   ``--report`` writes the table ``results_n{count}.md``.

    python benchmarks/maskgit_schedules/run.py --count 16 --seeds 0,1,2

LPIPS is reported when its AlexNet backbone is in the torch hub cache (never downloaded here).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
CACHE = Path(os.environ.get("ZOO_BENCH_CACHE", Path.home() / ".cache" / "inpaint-zoo")) / "maskgit_schedules"
#: the study's model: the tiny preset, 4 transformer blocks instead of 2, the GAN loss off
#: (in a few hundred CPU steps it lowered the tokenizer's PSNR), 600 + 1500 steps
MODEL = {"tokenizer_steps": 600, "transformer_steps": 1500, "adv_weight": 0.0, "depth": 4}
BATCH = 16
SCHEDULES = ["cosine", "linear", "square", "cubic", "sqrt", "log", "exp"]
ITERS = [4, 8, 12, 16]


def hole_psnr(pred: torch.Tensor, gt: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
    m = hole.expand_as(pred)
    mse = (((pred - gt) / 2) ** 2 * m).flatten(1).sum(1) / m.flatten(1).sum(1)
    return 10 * torch.log10(1 / mse.clamp_min(1e-12))


def lpips_or_none():
    from zoo.errors import ZooError

    try:
        from zoo.metrics.perceptual import lpips_model

        os.environ.setdefault("ZOO_OFFLINE", "1")
        lpips_model("alex", "cpu")
    except ZooError as exc:
        print(f"LPIPS skipped: {exc}", flush=True)
        return None
    from zoo.metrics.perceptual import lpips_alex

    return lpips_alex


def train_model() -> Path:
    from zoo import runner
    from zoo.train import TrainOptions

    tag = "_".join(f"{k}{v}" for k, v in sorted(MODEL.items()))
    ckpt = CACHE / f"model_{tag}" / "model.safetensors"
    if not ckpt.is_file():
        t0 = time.time()
        runner.train("maskgit", "shapes", preset="tiny", overrides=dict(MODEL), batch_size=BATCH, out_dir=ckpt.parent,
                     options=TrainOptions(progress=False, log_every=50))
        (ckpt.parent / "train_seconds.txt").write_text(f"{time.time() - t0:.0f}\n")
    return ckpt


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=16)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--report", action="store_true", help="only write the table from the results file")
    args = ap.parse_args()
    out_json = HERE / f"results_n{args.count}.json"
    if args.report:
        return report(out_json)
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "1")))

    from zoo.checkpoint import load_model
    from zoo.data.evalset import build_eval_set, load_eval_set
    from zoo_plugins.maskgit.sample import sample, score

    ckpt = train_model()
    eval_dir = CACHE / f"evalset_{args.count}"
    ev = load_eval_set(eval_dir) if (eval_dir / "manifest.json").is_file() else build_eval_set("shapes", "box", args.count, 0, eval_dir, resolution=32, progress=False)
    images = torch.stack([ev.load(i)[0] for i in range(len(ev))])
    holes = torch.stack([ev.load(i)[1] for i in range(len(ev))])
    erased = images * (1 - holes)
    model, config, _ = load_model(ckpt, "maskgit")
    lp = lpips_or_none()
    with torch.no_grad():
        s = score(model, config, images, holes)
        ceiling = hole_psnr(images * (1 - holes) + model.reconstruct(images).clamp(-1, 1) * holes, images, holes)
        known_mean = (erased.sum((2, 3), keepdim=True) / (1 - holes).sum((2, 3), keepdim=True)).expand_as(images)
        mean_fill = hole_psnr(images * (1 - holes) + known_mean * holes, images, holes)  # a trivial reference
    results = {"model": str(ckpt.parent.name), "model_overrides": MODEL, "batch_size": BATCH, "count": len(ev),
               "train_seconds": (ckpt.parent / "train_seconds.txt").read_text().strip() if (ckpt.parent / "train_seconds.txt").is_file() else None,
               "score_hook": s, "tokenizer_hole_psnr_ceiling": round(float(ceiling.mean()), 4),
               "mean_fill_hole_psnr": round(float(mean_fill.mean()), 4), "lpips": lp is not None, "rows": []}
    print("score hook", s, "ceiling", float(ceiling.mean()), flush=True)
    runs = [(sch, T) for sch in SCHEDULES for T in ITERS] + [("cosine", 1)]
    for sch, T in runs:
        import dataclasses

        cfg = dataclasses.replace(config, schedule=sch, total_iter=T, sweet_spot=0)
        for seed in [int(x) for x in args.seeds.split(",")]:
            t0 = time.time()
            out = sample(model, cfg, erased, holes, torch.Generator().manual_seed(seed))
            secs = time.time() - t0
            p = hole_psnr(out.images, images, holes)
            row = {"schedule": sch, "total_iter": T, "seed": seed, "nfe": out.info["nfe"], "seconds": round(secs, 2),
                   "per_image_psnr": [round(float(v), 4) for v in p]}
            if lp is not None:
                row["per_image_lpips"] = [round(float(v), 5) for v in lp(out.images, images)]
            results["rows"].append(row)
            print(sch, T, seed, row["nfe"], f"psnr {float(p.mean()):.3f} {secs:.1f}s", flush=True)
    out_json.write_text(json.dumps(results, indent=1))
    report(out_json)


def report(out_json: Path) -> None:
    res = json.loads(out_json.read_text())
    by: dict[tuple[str, int], list[dict]] = {}
    for r in res["rows"]:
        by.setdefault((r["schedule"], r["total_iter"]), []).append(r)
    ref = by.get(("cosine", 8))
    lines = [f"| schedule | T | transformer calls | hole PSNR (dB) | vs cosine T=8 (dB, +- s.e.) |" + (" LPIPS |" if res["lpips"] else ""),
             "|---|---|---|---|---|" + ("---|" if res["lpips"] else "")]
    for (sch, T), rows in by.items():
        n = len(rows[0]["per_image_psnr"])
        per_image = [sum(r["per_image_psnr"][i] for r in rows) / len(rows) for i in range(n)]  # averaged over seeds
        mean = sum(per_image) / n
        diff = ""
        if ref is not None:
            ref_img = [sum(r["per_image_psnr"][i] for r in ref) / len(ref) for i in range(n)]
            d = [a - b for a, b in zip(per_image, ref_img)]
            md = sum(d) / n
            se = math.sqrt(sum((x - md) ** 2 for x in d) / max(n - 1, 1) / n)
            diff = f"{md:+.2f} +- {se:.2f}"
        lp = ""
        if res["lpips"]:
            lp = f" {sum(sum(r['per_image_lpips']) / n for r in rows) / len(rows):.4f} |"
        lines.append(f"| {sch} | {T} | {rows[0]['nfe']} | {mean:.2f} | {diff} |{lp}")
    head = (f"{res['count']} eval images (shapes test split, box masks, seed 0, 32 px), mean over sampling seeds "
            f"{sorted({r['seed'] for r in res['rows']})}; tokenizer ceiling (hole filled with the tokenizer's reconstruction of the ground truth): "
            f"{res['tokenizer_hole_psnr_ceiling']:.2f} dB; filling the hole with the mean colour of the known pixels: {res.get('mean_fill_hole_psnr', float('nan')):.2f} dB; score hook: " + ", ".join(f"{k} {v:.3f}" for k, v in res["score_hook"].items()))
    text = head + "\n\n" + "\n".join(lines) + "\n"
    out_json.with_suffix(".md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
