"""Peak memory of one training step of the published 256-channel guided-diffusion UNet
(RePaint's CelebA-HQ / Places2 prior, 552.8 M parameters) at 256 px, batch 1, through the
zoo engine exactly as ``zoo train repaint --init repaint-celebahq.safetensors`` runs it
(AdamW, EMA 0.9999, the hybrid loss with learned sigma):

    fp32 | bf16 | bf16 + --grad-checkpointing, each on 1 process and under
    --strategy fsdp on 2 gloo processes (per process)

Every configuration runs in its own process(es) under an address-space cap
(``prlimit --as``) so that a configuration that does not fit fails alone instead of taking
the machine down; such a configuration is recorded as "does not fit under the cap".

    python benchmarks/finetune_memory/measure.py                    # all six, one at a time
    python benchmarks/finetune_memory/measure.py --only bf16-gc     # one precision setting
    python benchmarks/finetune_memory/measure.py --cap-gb 14 --fsdp-cap-gb 7

Method (CPU): RSS sampled every 5 ms (glibc told to return freed memory at once, so RSS
follows the live tensors). ``libs``: RSS after importing torch and the zoo, before the
model exists; ``peak``: the highest RSS during the first optimizer step (forward, backward,
AdamW step, which allocates the moments, and the EMA update). Reported: ``peak - libs``
(everything the training holds at its peak) and that minus the weights' share of this
process (the fp32 weights, halved under FSDP on 2 processes). Also the bytes each process
holds after the step: weights, gradients, AdamW moments, EMA (local shards under FSDP). On
a GPU the same numbers come from ``torch.cuda.max_memory_allocated``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CONFIGS = {"fp32": ("fp32", False), "bf16": ("bf16", False), "bf16-gc": ("bf16", True)}


def _rss() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class Sampler:
    def __init__(self) -> None:
        self.peak, self._stop = 0, threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss())
            time.sleep(0.005)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, _rss())


def worker(precision: str, grad_ckpt: bool, strategy: str) -> None:
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    from zoo.data import ShapesDataset
    from zoo.masks import make_mask, mask_kind
    from zoo.spec import TrainContext
    from zoo.train import TrainOptions
    from zoo.train.engine import _Trainer
    from zoo_plugins.repaint.convert import preset_config
    from zoo_plugins.repaint.model import RepaintPrior, num_params
    from zoo_plugins.repaint.train import PriorTask

    libs = _rss()
    cfg = preset_config(os.environ.get("ZOO_BENCH_PRESET", "celebahq-256"))  # tiny: a smoke test of this script
    torch.manual_seed(0)
    model = RepaintPrior(cfg)
    if grad_ckpt:
        model.set_grad_checkpointing(True)
    n = num_params(model)
    ctx = TrainContext(
        method="repaint", config=cfg, preset="celebahq-256", data=ShapesDataset(resolution=cfg.resolution, length=8), masks=mask_kind("box"),
        steps=1, batch_size=int(os.environ.get("WORLD_SIZE", "1")), seed=0, out_dir=Path(os.environ.get("TMPDIR", "/tmp")) / "zoo-bench-finetune",
        options=TrainOptions(device="cpu", precision=precision, grad_checkpointing=grad_ckpt, strategy=strategy, progress=False, tensorboard=False, handle_signals=False),
    )  # fmt: skip
    print("PHASE setup (optimizers, EMA copy, sharding)", flush=True)
    trainer = _Trainer(PriorTask(model, cfg), ctx)
    trainer.setup()
    print("PHASE step (forward, backward, AdamW step allocating its moments, EMA update)", flush=True)
    trainer.log.enabled = False
    size = cfg.resolution  # 256 for the published prior
    data = ShapesDataset(resolution=size, length=8)
    chunk = {"image": data[trainer.rank]["image"][None], "mask": make_mask("box", size, size, 0, trainer.rank)[None]}
    trainer.micro = 1
    ready = _rss()
    t = time.perf_counter()
    with Sampler() as s:
        logs, _ = trainer.train_step(chunk)
        trainer.ema.update(trainer.task.model)
    step_s = time.perf_counter() - t

    def local(x) -> int:
        x = x.to_local() if hasattr(x, "to_local") else x
        return x.numel() * x.element_size()

    params = list(trainer.task.model.parameters())
    held = {
        "weights": sum(local(p) for p in params),
        "grads": sum(local(p.grad) for p in params if p.grad is not None),
        "adamw": sum(local(v) for o in trainer.optimizers.values() for st in o.state.values() for v in st.values() if torch.is_tensor(v) and v.dim() > 0),
        "ema": sum(local(v) for v in trainer.ema.shadow.values()),
    }
    share = n * 4 // trainer.world
    gib = 2**30
    row = {
        "precision": precision, "grad_checkpointing": grad_ckpt, "strategy": "fsdp" if trainer.sharded else "single",
        "processes": trainer.world, "rank": trainer.rank, "params": n, "loss": round(logs.get("loss", float("nan")), 4),
        "step_s": round(step_s, 1), "libs_GiB": round(libs / gib, 2), "ready_GiB": round((ready - libs) / gib, 2),
        "peak_minus_libs_GiB": round((s.peak - libs) / gib, 2), "peak_minus_libs_minus_weights_GiB": round((s.peak - libs - share) / gib, 2),
        "weights_share_GiB": round(share / gib, 2), "held_GiB": {k: round(v / gib, 2) for k, v in held.items()},
    }  # fmt: skip
    print("ROW " + json.dumps(row), flush=True)


def worker_fwdbwd(precision: str, grad_ckpt: bool) -> None:
    """Forward + backward only (no optimizer, no EMA): what the activations need on top of
    the weights and their gradients."""
    import contextlib

    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    from zoo.data import ShapesDataset
    from zoo.diffusion.losses import diffusion_loss
    from zoo_plugins.repaint.convert import preset_config
    from zoo_plugins.repaint.model import RepaintPrior, make_chain, num_params

    libs = _rss()
    cfg = preset_config(os.environ.get("ZOO_BENCH_PRESET", "celebahq-256"))
    torch.manual_seed(0)
    model = RepaintPrior(cfg).train()
    model.set_grad_checkpointing(grad_ckpt)
    n = num_params(model)
    chain = make_chain(cfg)
    x = ShapesDataset(resolution=cfg.resolution, length=1)[0]["image"][None]
    ready = _rss()
    amp = torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()
    t = time.perf_counter()
    print("PHASE forward + backward", flush=True)
    with Sampler() as s:
        with amp:
            loss, _ = diffusion_loss(model, chain, x, learn_sigma=cfg.learn_sigma)
        loss.backward()
    gib = 2**30
    grads = sum(p.grad.numel() * p.grad.element_size() for p in model.parameters() if p.grad is not None)
    row = {
        "part": "forward+backward", "precision": precision, "grad_checkpointing": grad_ckpt, "params": n, "step_s": round(time.perf_counter() - t, 1),
        "weights_GiB": round((ready - libs) / gib, 2), "peak_minus_weights_GiB": round((s.peak - ready) / gib, 2),
        "grads_GiB": round(grads / gib, 2), "activations_peak_GiB": round((s.peak - ready - grads) / gib, 2),
    }  # fmt: skip
    print("ROW " + json.dumps(row), flush=True)


def run(name: str, fsdp: bool, cap: int, timeout: int, part: str = "step") -> list[dict] | str:
    precision, gc = CONFIGS[name]
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0", "OMP_NUM_THREADS": "1"}
    inner = [sys.executable, __file__, "--worker", precision, "1" if gc else "0", "fsdp" if fsdp else "ddp"]
    if part == "fwdbwd":
        inner = [sys.executable, __file__, "--fwdbwd", precision, "1" if gc else "0"]
    if fsdp:
        inner = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29577", *inner[1:]]
    cmd = ["prlimit", f"--as={cap}", *inner]  # every process (torchrun's children too) inherits the cap
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return f"timed out after {timeout} s"
    rows = [json.loads(line[4:]) for line in res.stdout.splitlines() if line.startswith("ROW ")]
    if res.returncode == 0 and rows:
        return rows
    text = res.stderr + res.stdout
    tail = (res.stderr or res.stdout).strip().splitlines()[-3:]
    oom = any(s in text for s in ("MemoryError", "DefaultCPUAllocator", "not enough memory", "Cannot allocate memory", "std::bad_alloc"))
    phases = [line[6:] for line in res.stdout.splitlines() if line.startswith("PHASE ")]
    import re

    asked = re.findall(r"allocate (\d+) bytes", text)
    where = f" in {phases[-1]}" if phases else ""
    what = f", asking for {int(asked[-1]) / 2**20:.0f} MiB more" if asked else ""
    return f"does not fit under the {cap / 1e9:g} GB address-space cap here (allocation failed{where}{what})" if oom else f"failed (exit {res.returncode}: {' | '.join(tail)[:300]})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worker", nargs=3, metavar=("PRECISION", "GC", "STRATEGY"))
    ap.add_argument("--fwdbwd", nargs=2, metavar=("PRECISION", "GC"))
    ap.add_argument("--part", choices=["step", "fwdbwd"], default="step", help="fwdbwd: forward + backward only (single process)")
    ap.add_argument("--only", choices=list(CONFIGS), action="append")
    ap.add_argument("--single-only", action="store_true")
    ap.add_argument("--fsdp-only", action="store_true")
    ap.add_argument("--cap-gb", type=float, default=14.0, help="address-space cap of a single-process run")
    ap.add_argument("--fsdp-cap-gb", type=float, default=7.0, help="cap of EACH of the 2 FSDP processes (both run at once)")
    ap.add_argument("--timeout", type=int, default=600)
    ap.add_argument("--out", type=Path, default=HERE / "results.json")
    args = ap.parse_args()
    if args.worker:
        worker(args.worker[0], args.worker[1] == "1", args.worker[2])
        return
    if args.fwdbwd:
        worker_fwdbwd(args.fwdbwd[0], args.fwdbwd[1] == "1")
        return
    results = json.loads(args.out.read_text()) if args.out.is_file() else {}
    for name in args.only or list(CONFIGS):
        for fsdp in ([False] if args.single_only or args.part == "fwdbwd" else [True] if args.fsdp_only else [False, True]):
            key = f"{name}{'-fsdp2' if fsdp else ''}{'-fwdbwd' if args.part == 'fwdbwd' else ''}"
            cap = int((args.fsdp_cap_gb if fsdp else args.cap_gb) * 1e9)
            t = time.time()
            out = run(name, fsdp, cap, args.timeout, args.part)
            results[key] = {"result": out, "cap_bytes": cap, "wall_s": round(time.time() - t), "date": datetime.date.today().isoformat(),
                            "machine": "2-core AMD EPYC CPU (avx512_bf16), no GPU, shared with other jobs"}  # fmt: skip
            print(key, json.dumps(results[key]), flush=True)
            args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
