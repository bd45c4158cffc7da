"""Equivalence of the zoo's MAT generator with the official one (same weights, z, noise, inputs).

The official code is NOT part of this repository. Export it somewhere outside the tree and
point ``--official`` at it, e.g.::

    git clone https://github.com/fenglinglwb/MAT /tmp/mat-official   # or `git archive` a mirror
    python benchmarks/mat/check_official.py --official /tmp/mat-official --resolution 512 --size 512

On the CPU its ``torch_utils`` ops fall back to their reference implementations. Needs ``timm``
(the official file imports it). What it does:

1. builds the official ``networks.mat.Generator`` (z_dim = w_dim = 512) at ``--resolution``
   from ``--seed``, puts random values in the biases, noise strengths and ``w_avg`` (their
   init is 0, which would hide mistakes), scales the to-RGB layers down so outputs are of
   the order of 1 (as trained weights give; at random init they reach hundreds), and saves ``G.state_dict()`` as a ``.pth``;
2. imports that file with ``zoo import``'s code path (strict key check) into a zoo model;
3. runs both on the same images, a large free-form hole, and the same z, in three modes:
   ``const`` noise (the stored maps) with psi 1; ``random`` noise with psi 0.7, where the
   zoo takes its draws from a ``torch.Generator`` seeded like the official run's global RNG
   (``torch.manual_seed``); and the official run's dropout masks and noise recorded and
   replayed into the zoo model (``ReplayDraws``);
4. prints the max abs difference of the final and the first-stage outputs (float32, CPU).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--official", required=True, help="folder of the official MAT code (outside this repo)")
    ap.add_argument("--resolution", type=int, default=512, choices=(256, 512), help="generator layout (mat-256 / mat-512)")
    ap.add_argument("--size", type=int, default=None, help="input size (default: the resolution)")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    size = args.size or args.resolution
    torch.set_num_threads(max(1, torch.get_num_threads()))

    sys.path.insert(0, str(Path(args.official).resolve()))
    from networks.mat import Generator as OfficialGenerator  # noqa: E402  (the official code)

    from zoo.checkpoint import load_state_strict
    from zoo_plugins.mat.hooks import SPEC
    from zoo_plugins.mat.convert import import_mat
    from zoo_plugins.mat.layers import Draws, ReplayDraws
    from zoo_plugins.mat.model import MAT

    torch.manual_seed(args.seed)
    G = OfficialGenerator(z_dim=512, c_dim=0, w_dim=512, img_resolution=args.resolution, img_channels=3).eval()
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith("bias") or name.endswith("noise_strength"):
                p.add_(torch.randn_like(p) * 0.2)
        G.mapping.w_avg.normal_()
        for name, p in G.named_parameters():  # keep the RGB outputs near [-1, 1], as trained weights give
            if ".toRGB." in name:
                p.mul_(0.2)

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "G.pth"
        torch.save(G.state_dict(), path)
        imported = import_mat(SPEC, path, None)
    model = MAT(imported.config).eval()
    load_state_strict(model, imported.state_dict, what="imported")

    g = torch.Generator().manual_seed(args.seed + 1)
    images = torch.rand(args.batch, 3, size, size, generator=g) * 2 - 1
    known = torch.ones(args.batch, 1, size, size)
    known[..., size // 8 : size * 5 // 8, size // 4 : size * 7 // 8] = 0  # a large box
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    known[..., ((yy - xx).abs() < size // 32) | ((yy + xx - size).abs() < size // 48)] = 0  # two strokes
    z = torch.randn(args.batch, 512, generator=g)
    hole = 1 - known

    report: dict = {"resolution": args.resolution, "size": size, "batch": args.batch, "preset": imported.preset, "modes": {}}

    def compare(mode: str, official, zoo, seconds) -> None:
        d = float((official[0] - zoo[0]).abs().max())
        d1 = float((official[1] - zoo[1]).abs().max())
        report["modes"][mode] = {"max_abs_diff": d, "max_abs_diff_stage1": d1, "official_s": seconds[0], "zoo_s": seconds[1],
                                 "hole_abs_max": float((official[0] * hole).abs().max()),
                                 "hole_abs_mean": float((official[0] * hole).abs().sum() / hole.sum() / 3)}

    with torch.no_grad():
        # 1. const noise, psi 1: only the dropout draws are random -> same seed, same draws
        torch.manual_seed(123)
        t = time.perf_counter()
        off = G(images, known, z, None, truncation_psi=1, noise_mode="const", return_stg1=True)
        t_off = time.perf_counter() - t
        t = time.perf_counter()
        ours = model(images, hole, z, truncation_psi=1, noise_mode="const", draws=Draws(torch.Generator().manual_seed(123)))
        compare("const", off, ours, (t_off, time.perf_counter() - t))

        # 2. random noise, psi 0.7: the zoo generator seeded like the official global RNG
        torch.manual_seed(456)
        t = time.perf_counter()
        off = G(images, known, z, None, truncation_psi=0.7, noise_mode="random", return_stg1=True)
        t_off = time.perf_counter() - t
        t = time.perf_counter()
        ours = model(images, hole, z, truncation_psi=0.7, noise_mode="random", draws=Draws(torch.Generator().manual_seed(456)))
        compare("random-seeded", off, ours, (t_off, time.perf_counter() - t))

        # 3. record the official draws (dropout masks, noise) and replay them
        recorded: list[torch.Tensor] = []
        real_dropout, real_randn = F.dropout, torch.randn

        def dropout(x, p=0.5, training=True, inplace=False):
            out = real_dropout(x, p, training, inplace)
            recorded.append((out != 0).float())  # MAT drops 0.5 * ones: kept entries become 1
            return out

        def randn(*a, **k):
            out = real_randn(*a, **k)
            recorded.append(out.clone())
            return out

        F.dropout, torch.randn = dropout, randn
        try:
            t = time.perf_counter()
            off = G(images, known, z, None, truncation_psi=1, noise_mode="random", return_stg1=True)
            t_off = time.perf_counter() - t
        finally:
            F.dropout, torch.randn = real_dropout, real_randn
        t = time.perf_counter()
        ours = model(images, hole, z, truncation_psi=1, noise_mode="random", draws=ReplayDraws(recorded))
        compare("replayed", off, ours, (t_off, time.perf_counter() - t))
        report["modes"]["replayed"]["draws"] = len(recorded)

    worst = max(m["max_abs_diff"] for m in report["modes"].values())
    worst1 = max(m["max_abs_diff_stage1"] for m in report["modes"].values())
    report["pass"] = worst <= 1e-4 and worst1 <= 1e-4
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        for mode, r in report["modes"].items():
            print(f"{mode:14s} max|official - zoo| = {r['max_abs_diff']:.2e} (stage 1: {r['max_abs_diff_stage1']:.2e}); "
                  f"hole |output| mean {r['hole_abs_mean']:.2f}, max {r['hole_abs_max']:.2f}; official {r['official_s']:.1f} s, zoo {r['zoo_s']:.1f} s")
        print(f"mat-{args.resolution} at {size}x{size}, batch {args.batch}: {'PASS' if report['pass'] else 'FAIL'} (tolerance 1e-4)")
    sys.exit(0 if report["pass"] else 1)


if __name__ == "__main__":
    main()
