"""Forward time and peak memory of LaMa's big-lama generator (one sampling pass).

    python benchmarks/lama_forward.py [--sizes 256 512] [--repeats 3] [--device cpu] [--threads N] [--json]

Each size runs in a fresh subprocess so that its peak resident memory is its own. Reported:
median wall time of ``repeats`` timed passes (after one warm-up) of ``sample.inpaint`` on a
batch of one image with a centre hole (padding, generator, compositing), the model's weight
memory, and the peak memory: process peak RSS on the CPU (``ru_maxrss``, includes the Python
runtime and the weights) or ``torch.cuda.max_memory_allocated`` on a GPU. Random weights:
time and memory do not depend on their values.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def run_one(size: int, repeats: int, device: str, threads: int, preset: str) -> dict:
    import torch

    from zoo.config import resolve_config
    from zoo_plugins.lama.hooks import SPEC
    from zoo_plugins.lama.model import LaMa
    from zoo_plugins.lama.sample import inpaint

    if threads:
        torch.set_num_threads(threads)
    config, _ = resolve_config(SPEC, preset, {"discriminator": False})
    model = LaMa(config).eval().to(device)
    weights_mib = sum(t.numel() * t.element_size() for t in model.state_dict().values()) / 2**20
    images = torch.rand(1, 3, size, size, device=device) * 2 - 1
    masks = torch.zeros(1, 1, size, size, device=device)
    masks[..., size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] = 1
    base_rss = rss_mib()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    inpaint(model, images, masks)  # warm-up
    times = []
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        inpaint(model, images, masks)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    row = {
        "preset": preset,
        "size": size,
        "device": device,
        "threads": torch.get_num_threads(),
        "params_m": round(sum(p.numel() for p in model.generator.parameters()) / 1e6, 2),
        "forward_s": round(statistics.median(times), 3),
        "weights_mib": round(weights_mib, 1),
    }
    if device.startswith("cuda"):
        row["peak_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    else:
        row["peak_rss_mib"] = round(rss_mib(), 1)
        row["rss_before_forward_mib"] = round(base_rss, 1)
        row["forward_extra_mib"] = round(rss_mib() - base_rss, 1)  # rise of the peak during the passes
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    ap.add_argument("--preset", default="big-lama")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)  # child process
    args = ap.parse_args()
    if args.one is not None:
        print(json.dumps(run_one(args.one, args.repeats, args.device, args.threads, args.preset)))
        return
    rows = []
    for size in args.sizes:
        cmd = [sys.executable, __file__, "--one", str(size), "--repeats", str(args.repeats), "--device", args.device,
               "--threads", str(args.threads), "--preset", args.preset]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    mem = "peak_mib" if args.device.startswith("cuda") else "peak_rss_mib"
    print(f"{'preset':<10} {'size':>5} {'device':<6} {'threads':>7} {'params':>8} {'forward s':>10} {'weights MiB':>12} {'peak MiB':>9} {'+forward MiB':>13}")
    for r in rows:
        extra = r.get("forward_extra_mib", "-")
        print(f"{r['preset']:<10} {r['size']:>5} {r['device']:<6} {r['threads']:>7} {r['params_m']:>7}M {r['forward_s']:>10} {r['weights_mib']:>12} {r[mem]:>9} {extra:>13}")


if __name__ == "__main__":
    main()
