"""Data-parallel helpers: the engine averages gradients per phase itself.

Why not wrap the model in ``DistributedDataParallel``? DDP synchronises the gradients of
the parameters its *wrapped forward* used, once per backward. GAN phases call sub-modules
(``model.generator``, ``model.discriminator``), an R1 term needs a second backward through
the discriminator, and accumulation must not sync every micro-batch. Each of these breaks
or needs ``find_unused_parameters`` and ``no_sync`` bookkeeping with DDP. Averaging the
gradients of exactly the parameters of the phase's optimizer, once after its last
micro-batch, is what DDP computes, is correct for any loss that calls any sub-module, and
lets losses keep calling ``task.model`` directly. (It gives up DDP's overlap of
communication with the backward pass; gradients go in ~25 MB buckets.)

Process groups come from accelerate (``accelerate launch`` / ``zoo train --devices N``):
NCCL on GPUs, gloo on CPUs.
"""

from __future__ import annotations

import hashlib
from typing import Iterable

import torch
import torch.distributed as dist

BUCKET_BYTES = 25 * 2**20


def world() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def _buckets(tensors: list[torch.Tensor]) -> Iterable[list[torch.Tensor]]:
    bucket: list[torch.Tensor] = []
    size = 0
    for t in tensors:
        if bucket and (size + t.numel() * t.element_size() > BUCKET_BYTES or t.dtype != bucket[0].dtype or t.device != bucket[0].device):
            yield bucket
            bucket, size = [], 0
        bucket.append(t)
        size += t.numel() * t.element_size()
    if bucket:
        yield bucket


@torch.no_grad()
def average_gradients(params: list[torch.nn.Parameter]) -> None:
    """All-reduce the mean of ``params``' gradients over all processes.

    A parameter whose gradient is ``None`` on some processes but not others gets zeros
    there, so every process steps the same set of parameters."""
    n = world()
    if n == 1 or not params:
        return
    device = params[0].device
    has = torch.tensor([p.grad is not None for p in params], dtype=torch.float32, device=device)
    dist.all_reduce(has, op=dist.ReduceOp.MAX)
    grads = []
    for p, h in zip(params, has.tolist()):
        if h and p.grad is None:
            p.grad = torch.zeros_like(p)
        if h:
            grads.append(p.grad)
    for bucket in _buckets(grads):
        flat = torch.cat([g.reshape(-1) for g in bucket])
        dist.all_reduce(flat)
        flat /= n
        offset = 0
        for g in bucket:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()


@torch.no_grad()
def broadcast_module(module: torch.nn.Module, buffers_only: bool = False) -> None:
    """Copy rank 0's parameters (unless ``buffers_only``) and buffers to every process."""
    if world() == 1:
        return
    tensors = list(module.buffers()) if buffers_only else [*module.parameters(), *module.buffers()]
    for t in tensors:
        dist.broadcast(t.data, src=0)


def any_true(flag: bool, device: torch.device) -> bool:
    """True on every process if ``flag`` is true on any."""
    if world() == 1:
        return bool(flag)
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def min_int(value: int, device: torch.device) -> int:
    if world() == 1:
        return int(value)
    t = torch.tensor([float(value)], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return int(t.item())


def mean_over_processes(values: dict[str, float], device: torch.device) -> dict[str, float]:
    """Average a dict of floats over the processes that have each key."""
    if world() == 1:
        return values
    out: dict[str, list[float]] = {}
    for part in gather_objects(values):
        for k, v in part.items():
            out.setdefault(k, []).append(float(v))
    return {k: sum(v) / len(v) for k, v in out.items()}


def broadcast_object(obj):
    """Process 0's ``obj`` on every process (JSON-able/tensor trees only)."""
    if world() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_objects(obj):
    """Every process's ``obj`` as a list on every process (JSON-able/tensor trees only)."""
    if world() == 1:
        return [obj]
    out = [None] * world()
    dist.all_gather_object(out, obj)
    return out


def weights_digest(module: torch.nn.Module) -> str:
    """A short hash of the module's parameters and buffers (bitwise)."""
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:16]
