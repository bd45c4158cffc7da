"""Parameters and seconds per training step of each learned method's ``small`` preset.

    OMP_NUM_THREADS=1 python benchmarks/small_presets/time_steps.py conv-l1,lama,mat,repaint,dip-ddpm,maskgit,dit-mca \
        --steps 8 --out benchmarks/small_presets/results.json

Each method trains ``--steps`` steps (maskgit: 3x, split over its two stages; dit-mca: that
many VAE steps, then denoiser steps) on ``shapes`` at the preset's 64 px and batch, on one
thread, through ``zoo train``'s runner; a step listener records each step's wall time. The
figure is the median over the steps after the first, per stage.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import torch

from zoo import runner
from zoo.config import resolve_config
from zoo.plugins import get_manager
from zoo.train import TrainOptions, events


def measure(method: str, steps: int, out_dir: Path) -> dict:
    manager = get_manager()
    config, _ = resolve_config(manager.method(method), "small", None)
    model = manager.call("zoo_build_model", method, config=config)
    times: dict[str, list[float]] = {}
    overrides = {"vae_steps": str(steps)} if method == "dit-mca" else None
    started = time.perf_counter()
    with events.step_listener(lambda ev: times.setdefault(ev.out_dir.name, []).append(ev.seconds)):
        runner.train(method, "shapes", preset="small", overrides=overrides, steps=steps * (3 if method == "maskgit" else 1),
                     out_dir=out_dir / method, options=TrainOptions(device="cpu", progress=False, tensorboard=False))
    return {
        "params": sum(p.numel() for p in model.parameters()),
        "batch_size": config.batch_size,
        "sec_per_step": {("train" if k == method else k): round(statistics.median(v[1:] or v), 3) for k, v in times.items()},
        "steps": {("train" if k == method else k): len(v) for k, v in times.items()},
        "wall_s": round(time.perf_counter() - started, 1),
        "load_average_1min": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("methods")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    results = json.loads(args.out.read_text()) if args.out and args.out.is_file() else {}
    with tempfile.TemporaryDirectory() as tmp:
        for method in args.methods.split(","):
            results[method] = measure(method, args.steps, Path(tmp))
            print(method, results[method], flush=True)
    if args.out:
        args.out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
