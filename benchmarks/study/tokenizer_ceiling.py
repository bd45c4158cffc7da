"""MaskGIT's tokenizer ceiling against telea, on a study folder's eval pairs.

The ceiling is the ground truth's own tokens decoded into the hole and composited: what a
perfect transformer would score (the maskgit score hook's ``tokenizer_ceiling_psnr``). A
schedule study only ranks schedules if this ceiling is above a classical fill; this script
measures it for each tokenizer checkpoint given (e.g. every ``step_*`` of a tokenizer-only
run, for its curve), beside telea on the same pairs, with paired differences in hole PSNR (95 % CIs per image and by photograph).

    OMP_NUM_THREADS=1 python benchmarks/study/tokenizer_ceiling.py benchmarks/study/run --split val \\
        --masks lama-medium,lama-thick --out OUT.csv RUN/tokenizer/checkpoints/step_*/model.safetensors
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import torch
from paired import paired_cell, study_eval_sets, write_rows  # benchmarks/study/paired.py (this script's folder is on sys.path)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("study", type=Path)
    ap.add_argument("checkpoints", nargs="+", type=Path, help="maskgit model.safetensors files (trained or step checkpoints)")
    ap.add_argument("--split", default="val", choices=["val", "test"])
    ap.add_argument("--masks", default="lama-medium,lama-thick")
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args(argv)

    from zoo.data.evalset import load_eval_set
    from zoo.errors import ZooError
    from zoo.inpaint import inpaint
    from zoo.metrics.pixel import psnr, psnr_hole
    from zoo.sampling import build_model
    from zoo_plugins.maskgit.sample import own_tokens  # the score hook's ceiling, per image

    missing = [str(c) for c in a.checkpoints if not c.is_file()]
    if missing:
        sys.exit(f"checkpoint not found: {missing[0]}")
    telea, telea_cfg = build_model("telea", None, None)
    sets = {}
    masks = a.masks.split(",")
    for mask, root in zip(masks, study_eval_sets(a.study, a.split, masks)):
        ev = load_eval_set(root)
        pairs = [ev.load(i) for i in range(len(ev.items))]
        gt, hole = torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])
        filled, _ = inpaint("telea", telea, telea_cfg, gt, hole, torch.Generator().manual_seed(0))
        sets[mask] = (ev, gt, hole, psnr_hole(filled, gt, hole), psnr(filled, gt))
    rows = []
    for mask, (ev, gt, hole, t_hole, t_whole) in sets.items():
        for i, it in enumerate(ev.items):
            rows.append({"mask": mask, "image": it["name"], "source": it.get("source", ""), "fill": "telea", "step": "",
                         "psnr-hole": float(t_hole[i]), "psnr": float(t_whole[i])})
    print(f"{a.split} split; hole PSNR of the composited reconstruction vs telea's fill (paired; 95 % CIs per image and by photograph)\n")
    print("| checkpoint | step | mask | ceiling hole PSNR | telea hole PSNR | ceiling - telea | ceiling PSNR (whole) | telea PSNR |\n"
          "|---|---|---|---|---|---|---|---|")
    for ckpt in a.checkpoints:
        try:
            model, _ = build_model("maskgit", str(ckpt), None)
        except ZooError as exc:
            sys.exit(f"{ckpt}: {exc}")
        model.eval()
        found = re.search(r"step_0*(\d+)", str(ckpt))
        step = found.group(1) if found else "final"
        for mask, (ev, gt, hole, t_hole, t_whole) in sets.items():
            with torch.no_grad():
                rec = torch.cat([own_tokens(model, gt[b:b + 16])[1] for b in range(0, len(gt), 16)])
            comp = gt * (1 - hole) + rec * hole
            c_hole, c_whole = psnr_hole(comp, gt, hole), psnr(comp, gt)
            for i, it in enumerate(ev.items):
                rows.append({"mask": mask, "image": it["name"], "source": it.get("source", ""), "fill": str(ckpt), "step": step,
                             "psnr-hole": float(c_hole[i]), "psnr": float(c_whole[i])})
            diff = paired_cell(c_hole.tolist(), t_hole.tolist(), [it.get("source", "") for it in ev.items])
            print(f"| {ckpt} | {step} | {mask} | {float(c_hole.mean()):.2f} | {float(t_hole.mean()):.2f} | {diff} | "
                  f"{float(c_whole.mean()):.2f} | {float(t_whole.mean()):.2f} |", flush=True)
    write_rows(a.out, rows)
    print(f"\nper-image rows: {a.out}")


if __name__ == "__main__":
    main()
