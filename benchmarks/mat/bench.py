"""MAT on this machine: forward time and memory, training-step memory, global batch by accumulation.

    python benchmarks/mat/bench.py forward  --preset mat-512 --size 512            # inference, batch 1
    python benchmarks/mat/bench.py train    --preset mat-256 --size 256 --batch 2  # fp32, bf16, bf16 + ckpt
    python benchmarks/mat/bench.py saved    --preset mat-512 --size 512 --batch 2  # activations of one G phase
    python benchmarks/mat/bench.py accumulate --preset tiny --batch 32             # --micro-batch auto

Each configuration runs in its own process, so peak RSS is its own. Measured:

* forward: wall time of ``zoo sample``'s inpaint (one generator pass, z and draws from a
  seeded generator), median of ``--repeat`` after a warm-up, and the peak RSS during the
  passes minus the RSS before them (model loaded);
* train: one engine step (``_Trainer.train_step``: G phase, D phase; the lazy R1 phase runs on
  1 step in 16 and is left out) at the global batch, in fp32, bf16 autocast, and bf16 with
  the transformer blocks checkpointed (``bf16+ckpt-all``: the conv blocks too, config
  ``checkpoint_convs``): wall time, peak RSS above the RSS before the step
  (gradients, Adam state, activations, temporaries), and the bytes autograd saves for
  backward in the G phase (allocator-independent, ``zoo.train.memory.count_saved_bytes``);
* saved: the G-phase saved activations only (a forward with graph, no backward): what one
  step's activation memory is where a full step is too slow to time;
* accumulate: ``--micro-batch auto`` under a simulated memory limit that holds 2 samples'
  activations (``--simulated-memory-limit``), at the published global batch 32: the engine's
  probe picks 2 per pass and accumulates 16 passes per optimizer step.
On a GPU the script reports ``torch.cuda.max_memory_allocated`` instead of RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
CONFIGS = {"fp32": ("fp32", False, False), "bf16": ("bf16", False, False), "bf16+ckpt": ("bf16", True, False), "bf16+ckpt-all": ("bf16", True, True)}


def rss() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class Peak:
    def __init__(self) -> None:
        self.peak, self._stop = rss(), threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss())
            time.sleep(0.005)

    def stop(self) -> int:
        self._stop.set()
        self._t.join()
        return max(self.peak, rss())


def config_of(preset: str, **overrides):
    from zoo.config import resolve_config
    from zoo_plugins.mat.hooks import SPEC

    return resolve_config(SPEC, preset, overrides)[0]


def inputs(batch: int, size: int):
    from zoo.data import ShapesDataset
    from zoo.masks import make_mask

    data = ShapesDataset(resolution=size, length=batch)
    return {
        "image": torch.stack([data[i]["image"] for i in range(batch)]),
        "mask": torch.stack([make_mask("mat-train", size, size, 0, i) for i in range(batch)]),
    }


def run_forward(args) -> dict:
    from zoo_plugins.mat.model import MAT
    from zoo_plugins.mat.sample import inpaint

    torch.manual_seed(0)
    model = MAT(config_of(args.preset, discriminator=False)).eval()
    b = inputs(args.batch, args.size)
    inpaint(model, b["image"], b["mask"], torch.Generator().manual_seed(0))  # warm-up
    before, times = rss(), []
    peak = Peak()
    for i in range(args.repeat):
        t = time.perf_counter()
        inpaint(model, b["image"], b["mask"], torch.Generator().manual_seed(i))
        times.append(time.perf_counter() - t)
    top = peak.stop()
    params = sum(p.numel() for p in model.parameters())
    return {"what": "forward", "preset": args.preset, "size": args.size, "batch": args.batch, "threads": torch.get_num_threads(),
            "params_M": round(params / 1e6, 2), "forward_s_median": round(statistics.median(times), 2), "forward_s_all": [round(t, 2) for t in times],
            "peak_above_model_MiB": round((top - before) / 2**20, 1), "weights_MiB": round(params * 4 / 2**20, 1)}  # fmt: skip


def trainer_for(args, precision: str, ckpt: bool, convs: bool = False, **option_overrides):
    from zoo.masks import mask_kind
    from zoo.spec import TrainContext
    from zoo.data import ShapesDataset
    from zoo.train import TrainOptions
    from zoo.train.engine import _Trainer
    from zoo_plugins.mat.model import MAT
    from zoo_plugins.mat.train import MatTask

    torch.manual_seed(0)
    config = config_of(args.preset, pcp_weight=0.0, checkpoint_convs=convs)  # no VGG weights offline; the perceptual loss adds a frozen VGG-19
    task = MatTask(MAT(config), config, args.batch)
    ctx = TrainContext(
        method="mat", config=config, preset=args.preset, data=ShapesDataset(resolution=args.size, length=64), masks=mask_kind("mat-train"),
        steps=2, batch_size=args.batch, seed=0, out_dir=Path(os.environ.get("TMPDIR", "/tmp")) / "zoo-bench-mat",
        options=TrainOptions(device="cpu", precision=precision, grad_checkpointing=ckpt, progress=False, tensorboard=False, handle_signals=False, **option_overrides),
    )  # fmt: skip
    trainer = _Trainer(task, ctx)
    trainer.setup()
    return trainer


def g_phase_saved_bytes(trainer, chunk) -> int:
    from zoo.train.memory import count_saved_bytes

    mb = {k: v.to(trainer.device) for k, v in chunk.items()}
    with count_saved_bytes(exclude=list(trainer.task.model.parameters())) as saved:
        with trainer.autocast():
            loss, _ = trainer.phases[0].loss(mb, 1)
    del loss
    return saved[0]


def run_train(args, name: str) -> dict:
    precision, ckpt, convs = CONFIGS[name]
    trainer = trainer_for(args, precision, ckpt, convs)
    chunk = inputs(args.batch, args.size)
    trainer.micro = args.batch
    trainer.step = 1  # a step without the lazy R1 phase (R1 runs when step % 16 == 0)
    before = rss()
    peak = Peak()
    t = time.perf_counter()
    trainer.train_step(chunk)
    seconds = time.perf_counter() - t
    top = peak.stop()
    saved = g_phase_saved_bytes(trainer, chunk)
    return {"what": "train-step", "config": name, "preset": args.preset, "size": args.size, "batch": args.batch, "threads": torch.get_num_threads(),
            "step_s": round(seconds, 1), "peak_above_model_MiB": round((top - before) / 2**20, 1), "g_phase_saved_activations_MiB": round(saved / 2**20, 1)}  # fmt: skip


def run_saved(args, name: str) -> dict:
    precision, ckpt, convs = CONFIGS[name]
    trainer = trainer_for(args, precision, ckpt, convs)
    chunk = inputs(args.batch, args.size)
    t = time.perf_counter()
    saved = g_phase_saved_bytes(trainer, chunk)
    return {"what": "g-phase-saved-activations", "config": name, "threads": torch.get_num_threads(), "preset": args.preset, "size": args.size, "batch": args.batch,
            "saved_MiB": round(saved / 2**20, 1), "forward_s": round(time.perf_counter() - t, 1)}  # fmt: skip


def run_accumulate(args) -> dict:
    """Per-sample activations measured, limit set to hold two samples, then one real step."""
    probe = trainer_for(argparse.Namespace(**{**vars(args), "batch": 1}), "fp32", False)
    chunk = inputs(1, args.size)
    one = max(g_phase_saved_bytes(probe, chunk), 1)
    limit = int(2.5 * one)
    trainer = trainer_for(args, "fp32", False, micro_batch="auto", simulated_memory_limit=limit)
    chunk = inputs(args.batch, args.size)
    micro, passes = trainer.resolve_micro(chunk)
    trainer.micro = micro
    t = time.perf_counter()
    logs = trainer.train_step(chunk)
    return {"what": "micro-batch-auto", "preset": args.preset, "size": args.size, "global_batch": args.batch, "per_sample_saved_MiB": round(one / 2**20, 2),
            "simulated_limit_MiB": round(limit / 2**20, 2), "micro_batch": micro, "passes_per_step": passes, "step_s": round(time.perf_counter() - t, 1),
            "finite": bool(all(torch.isfinite(p).all() for p in trainer.task.model.parameters()))}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=["forward", "train", "saved", "accumulate"])
    ap.add_argument("--preset", default="mat-512")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--configs", default="fp32,bf16,bf16+ckpt")
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--json", type=Path, default=None, help="append the rows (JSON lines) to this file")
    args = ap.parse_args()
    args.batch = args.batch or {"forward": 1, "accumulate": 32}.get(args.what, 2)
    if args.what in ("forward", "accumulate") or args.one:
        row = run_forward(args) if args.what == "forward" else run_accumulate(args) if args.what == "accumulate" else (run_train if args.what == "train" else run_saved)(args, args.one)
        print(json.dumps(row), flush=True)
        if args.json and not args.one:
            with open(args.json, "a") as f:
                f.write(json.dumps(row) + "\n")
        return
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0"}
    for name in args.configs.split(","):
        cmd = [sys.executable, __file__, args.what, "--preset", args.preset, "--size", str(args.size), "--batch", str(args.batch), "--one", name]
        res = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if res.returncode:
            print(res.stderr[-2000:], file=sys.stderr)
            raise SystemExit(res.returncode)
        row = json.loads(res.stdout.strip().splitlines()[-1])
        print(json.dumps(row), flush=True)
        if args.json:
            with open(args.json, "a") as f:
                f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
