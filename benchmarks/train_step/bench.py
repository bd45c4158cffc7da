"""Step time and peak memory of one training step of a ViT-B/16-sized model at 256 px,
through the zoo training engine, with and without --grad-checkpointing and bf16.

The model: patch embedding of the masked image + mask (4 channels, 16x16 patches -> 256
tokens), 12 timm ViT-B blocks (width 768, 12 heads, MLP 3072; ~85 M parameters), a linear
head back to pixels, masked L1 loss -- the shape of a transformer inpainting generator.

Each configuration runs in its own process (peak RSS is per process):

    python benchmarks/train_step/bench.py                 # all four configurations
    python benchmarks/train_step/bench.py --one fp32 1    # one: precision, checkpointing
    python benchmarks/train_step/bench.py --processes 2   # DDP vs FSDP, 2 processes each

Measured per configuration:
  * step time: wall time of ``_Trainer.train_step`` (the engine's real step: autocast,
    loss scaling, backward, optimizer), median of the timed steps after one warm-up step;
  * saved activations: bytes of the distinct tensors autograd saves for backward during
    one forward, not counting the parameters themselves
    (``zoo.train.memory.count_saved_bytes``; allocator-independent);
  * peak training memory: the highest RSS during the steady-state steps (a thread samples
    /proc/self/statm every 5 ms; glibc is told to return freed memory at once) minus the
    RSS before the first step (model, data, libraries loaded): gradients + AdamW state +
    activations + temporaries.
On a GPU the same script reports ``torch.cuda.max_memory_allocated`` instead of RSS.

With ``--processes N`` it compares ``--strategy ddp`` and ``fsdp`` on N processes
(``torch.distributed.run``; gloo on a CPU, NCCL on GPUs) and also reports the training
state each process holds after the steps: its weights, gradients and AdamW moments
(local shards under FSDP).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn
from torch.utils.checkpoint import checkpoint


class ViTInpainter(nn.Module):
    def __init__(self, size: int = 256, patch: int = 16, dim: int = 768, depth: int = 12, heads: int = 12) -> None:
        super().__init__()
        from timm.models.vision_transformer import Block

        self.patch, self.grid = patch, size // patch
        self.embed = nn.Conv2d(4, dim, patch, stride=patch)  # (B, 4, H, W) -> (B, dim, H/16, W/16)
        self.pos = nn.Parameter(torch.zeros(1, self.grid * self.grid, dim))
        self.blocks = nn.ModuleList([Block(dim, heads, mlp_ratio=4.0, qkv_bias=True) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, patch * patch * 3)
        self.grad_checkpointing = False

    def set_grad_checkpointing(self, enable: bool = True) -> None:  # timm's switch name
        self.grad_checkpointing = enable

    def forward(self, images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        b = images.shape[0]
        x = self.embed(torch.cat([images * (1 - masks), masks], 1)).flatten(2).transpose(1, 2) + self.pos  # (B, N, dim)
        for blk in self.blocks:
            x = checkpoint(blk, x, use_reentrant=False) if self.grad_checkpointing and self.training else blk(x)
        x = self.head(self.norm(x))  # (B, N, p*p*3)
        x = x.view(b, self.grid, self.grid, self.patch, self.patch, 3).permute(0, 5, 1, 3, 2, 4)
        return x.reshape(b, 3, self.grid * self.patch, self.grid * self.patch)


def run_one(precision: str, grad_ckpt: bool, batch: int, steps: int, size: int, depth: int, strategy: str = "ddp") -> dict:
    from zoo.data import ShapesDataset
    from zoo.masks import mask_kind
    from zoo.spec import TrainContext
    from zoo.train import Phase, TrainOptions, TrainTask
    from zoo.train.engine import _Trainer
    from zoo.train.memory import count_saved_bytes

    torch.manual_seed(0)

    class Task(TrainTask):
        def __init__(self) -> None:
            self.model = ViTInpainter(size=size, depth=depth)

        def optimizers(self):
            return {"net": torch.optim.AdamW(self.model.parameters(), lr=1e-4)}

        def phases(self):
            return [Phase("net", self.loss)]

        def loss(self, batch, step):
            pred = self.model(batch["image"], batch["mask"])
            loss = ((pred.float() - batch["image"]).abs() * (1 + 5 * batch["mask"])).mean()
            return loss, {"loss": loss.item()}

    out = Path(os.environ.get("TMPDIR", "/tmp")) / "zoo-bench-train-step"
    ctx = TrainContext(
        method="bench", config=None, preset="", data=ShapesDataset(resolution=size, length=64), masks=mask_kind("box"),
        steps=steps, batch_size=batch, seed=0, out_dir=out,
        options=TrainOptions(device="auto", precision=precision, grad_checkpointing=grad_ckpt, strategy=strategy, progress=False, tensorboard=False, handle_signals=False),
    )  # fmt: skip
    trainer = _Trainer(Task(), ctx)
    trainer.setup()
    data = ShapesDataset(resolution=size, length=batch)
    from zoo.masks import make_mask

    share = batch // trainer.world  # this process's part of the global batch
    first = trainer.rank * share
    chunk = {
        "image": torch.stack([data[i]["image"] for i in range(first, first + share)]),
        "mask": torch.stack([make_mask("box", size, size, 0, i) for i in range(first, first + share)]),
    }
    trainer.micro = share
    cuda = trainer.device.type == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    rss0 = _rss_now()  # model, data and libraries loaded; no gradients or optimizer state yet
    times = []
    sampler = _RssSampler()
    for i in range(steps):
        if i == 1:  # after the warm-up step: measure steady-state steps only
            if cuda:
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            else:
                sampler.start()
        t = time.perf_counter()
        trainer.train_step(chunk)
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
        trainer.step += 1
    peak = (torch.cuda.max_memory_allocated() - base) if cuda else (sampler.stop() - rss0)
    # saved activations of one forward (measured after the timed steps, so that it does not
    # raise the process's peak RSS before the measurement)
    mb = {k: v.to(trainer.device) for k, v in chunk.items()}
    with count_saved_bytes(exclude=list(trainer.task.model.parameters())) as saved:
        with trainer.autocast():
            loss, _ = trainer.phases[0].loss(mb, 0)
    loss.backward()
    params = sum(p.numel() for p in trainer.task.model.parameters())
    held = _held_bytes(trainer)
    return {
        "strategy": "fsdp" if trainer.sharded else "ddp",
        "processes": trainer.world,
        "precision": precision,
        "grad_checkpointing": grad_ckpt,
        "device": str(trainer.device),
        "threads": torch.get_num_threads(),
        "batch": batch,
        "size": size,
        "depth": depth,
        "params_M": round(params / 1e6, 1),
        "step_s_median": round(statistics.median(times[1:] or times), 3),
        "step_s_all": [round(t, 3) for t in times],
        "saved_activations_MiB": round(saved[0] / 2**20, 1),
        "weights_MiB": round(params * 4 / 2**20, 1),
        "held_per_process_MiB": {k: round(v / 2**20, 1) for k, v in held.items()},
        "peak_mem_MiB": round(peak / 2**20, 1),
        "peak_method": "cuda max_memory_allocated - allocated before the first step" if cuda else "sampled RSS (5 ms) during steady-state steps - RSS before the first step",
    }


def _held_bytes(trainer) -> dict[str, int]:
    """Bytes of weights, gradients and optimizer state this process holds (its shards
    under FSDP)."""

    def local(t: torch.Tensor) -> int:
        t = t.to_local() if hasattr(t, "to_local") else t
        return t.numel() * t.element_size()

    params = list(trainer.task.model.parameters())
    optim = [v for opt in trainer.optimizers.values() for st in opt.state.values() for v in st.values() if torch.is_tensor(v)]
    held = {"weights": sum(local(p) for p in params), "grads": sum(local(p.grad) for p in params if p.grad is not None), "optimizer": sum(local(v) for v in optim)}
    held["total"] = sum(held.values())
    return held


class _RssSampler:
    """Highest RSS seen by a thread that reads /proc/self/statm every 5 ms."""

    def __init__(self) -> None:
        import threading

        self.peak, self._stop = 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss_now())
            time.sleep(0.005)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return max(self.peak, _rss_now())


def _rss_now() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--one", nargs=2, metavar=("PRECISION", "CKPT"), help="run one configuration in this process")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--steps", type=int, default=3, help="steps per configuration (the first is a warm-up)")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--depth", type=int, default=12)
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    ap.add_argument("--processes", type=int, default=1, help="compare --strategy ddp and fsdp on this many processes")
    ap.add_argument("--strategy", default="ddp", choices=["ddp", "fsdp"], help="with --one under several processes")
    args = ap.parse_args()
    common = ["--batch", str(args.batch), "--steps", str(args.steps), "--size", str(args.size), "--depth", str(args.depth)]
    if args.one:
        row = run_one(args.one[0], args.one[1] == "1", args.batch, args.steps, args.size, args.depth, args.strategy)
        if int(os.environ.get("RANK", "0")) == 0:
            print(json.dumps(row), flush=True)
        return
    # glibc: serve every allocation >= 64 KiB by mmap and give freed memory back at once,
    # so that RSS follows the live tensors instead of the allocator's retained pool
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0"}
    if args.processes > 1:
        _compare_strategies(args, common, env)
        return
    rows = []
    for precision in ("fp32", "bf16"):
        for ck in ("0", "1"):
            res = subprocess.run([sys.executable, __file__, "--one", precision, ck, *common], capture_output=True, text=True, check=True, env=env)
            row = json.loads(res.stdout.strip().splitlines()[-1])
            rows.append(row)
            print(json.dumps(row), flush=True)
    print("\n| precision | grad ckpt | step time (s) | saved activations (MiB) | peak training memory above the weights (MiB) |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['precision']} | {'yes' if r['grad_checkpointing'] else 'no'} | {r['step_s_median']} | {r['saved_activations_MiB']} | {r['peak_mem_MiB']} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


def _compare_strategies(args, common: list[str], env: dict[str, str]) -> None:
    rows = []
    for strategy in ("ddp", "fsdp"):
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(args.processes), "--master_port", "29561",
               __file__, "--one", "fp32", "0", "--strategy", strategy, *common]  # fmt: skip
        res = subprocess.run(cmd, capture_output=True, text=True, check=True, env={**env, "OMP_NUM_THREADS": env.get("OMP_NUM_THREADS", "1")})
        row = json.loads(next(line for line in reversed(res.stdout.strip().splitlines()) if line.startswith("{")))
        rows.append(row)
        print(json.dumps(row), flush=True)
    print("\n| strategy | processes | step time (s) | weights + grads + AdamW held per process (MiB) | peak training memory of process 0 (MiB) |")
    print("|---|---|---|---|---|")
    for r in rows:
        h = r["held_per_process_MiB"]
        print(f"| {r['strategy']} | {r['processes']} | {r['step_s_median']} | {h['total']} ({h['weights']} + {h['grads']} + {h['optimizer']}) | {r['peak_mem_MiB']} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
