"""Data-loading throughput of the training path: images/s from a folder of JPEGs.

    python benchmarks/data_loading/bench.py [--folder DIR] [--count 1000] [--size 256]
        [--workers 2] [--batch-size 32] [--masks lama-train] [--images 2000]

Without --folder it first writes COUNT SIZE x SIZE JPEGs (quality 95, from `shapes`) to a
temporary folder. Then it reads them the way `zoo train` does: ``open_data(folder)`` ->
``zoo.train.samples.TrainSamples`` (seeded permutation + a mask per sample) ->
``torch.utils.data.DataLoader`` with WORKERS processes, and times IMAGES images after one
warm-up batch (worker start-up excluded).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image


def make_folder(folder: Path, count: int, size: int) -> None:
    from zoo.data import render

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        Image.fromarray(render(i, 0, size)).save(folder / f"{i:05d}.jpg", quality=95)


def run(folder: Path, size: int, workers: int, batch_size: int, masks: str, images: int) -> dict:
    from zoo.data import open_data
    from zoo.masks import mask_kind
    from zoo.train.samples import TrainSamples, _Positions

    samples = TrainSamples(open_data(str(folder), resolution=size), mask_kind(masks), seed=0)
    loader = torch.utils.data.DataLoader(samples, batch_size=batch_size, sampler=_Positions(0), num_workers=workers, persistent_workers=workers > 0)
    it = iter(loader)
    next(it)  # warm-up: worker start-up, first decode
    seen, start = 0, time.perf_counter()
    while seen < images:
        batch = next(it)
        seen += batch["image"].shape[0]
    elapsed = time.perf_counter() - start
    return {"images": seen, "seconds": round(elapsed, 3), "images_per_s": round(seen / elapsed, 1), "workers": workers, "batch_size": batch_size, "masks": masks, "size": size}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--folder", type=Path, default=None)
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--masks", default="lama-train")
    ap.add_argument("--images", type=int, default=2000)
    args = ap.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.folder
        if folder is None:
            folder = Path(tmp) / "jpegs"
            make_folder(folder, args.count, args.size)
        result = run(folder, args.size, args.workers, args.batch_size, args.masks, args.images)
    result["cpus"] = os.cpu_count()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
