"""``--strategy fsdp``: weights, gradients and optimizer state sharded over the processes.

With the default data parallelism (``--strategy ddp``) every process holds the whole
model, its gradients and its optimizer moments; the engine averages gradients per phase
(:mod:`zoo.train.dist`). With ``--strategy fsdp`` each of N processes holds 1/N of them:
PyTorch's FSDP2 (``torch.distributed.fsdp.fully_shard``) gathers a block's weights just
before its forward (and again for its backward), frees them after, and reduce-scatters
the gradients, on the process group accelerate set up (``zoo train --devices N`` or
``accelerate launch``; NCCL on GPUs, gloo on CPUs). For Adam that cuts the per-process
memory of weights + gradients + moments (16 bytes per parameter in fp32) by N, which is
what lets a large model train on several small cards.

What is sharded: the modules :meth:`TrainTask.fsdp_roots` returns (default: the whole
model, right when the losses call ``task.model(...)``). Inside each root, every block of
a ``ModuleList``/``Sequential`` with two or more blocks that hold parameters (transformer
blocks, UNet levels, residual blocks) becomes its own unit, so only one block is gathered
at a time; what is left belongs to the root's unit. A method "allows" FSDP when its
losses only reach weights through the forward of those roots; GAN tasks return the
sub-modules they call (``[model.generator, model.discriminator]``). A task that returns
None, or whose loss touches a sharded weight outside a forward, stops with one line.

Checkpoints stay in the one portable format: the engine gathers full tensors before
writing (model, EMA, optimizer moments) and re-shards them on resume, so a run saved
with FSDP resumes with DDP, on another process count, and ``zoo sample`` reads its
``model.safetensors`` as any other. Gathering needs the full state in memory once per
save; for the models in this zoo that is small next to the activations.
"""

from __future__ import annotations

from typing import Any, Iterable

import torch
import torch.nn as nn

from zoo.errors import ZooError

STRATEGIES = ("ddp", "fsdp")


def is_sharded(t: Any) -> bool:
    try:
        from torch.distributed.tensor import DTensor
    except ImportError:  # pragma: no cover - torch without DTensor
        return False
    return isinstance(t, DTensor)


def block_units(root: nn.Module) -> list[nn.Module]:
    """The blocks of ``root`` to shard one by one: the children of the outermost
    ``ModuleList``/``Sequential`` containers that hold parameters and are made of
    sub-modules (blocks, not single layers), where a container has at least two of
    them (the container may be ``root`` itself); blocks are not looked into further.
    Single layers stay in the unit of the module around them."""

    def holds_params(m: nn.Module) -> bool:
        return any(True for _ in m.parameters())

    def composite(m: nn.Module) -> bool:  # a block, not a single torch layer (Conv, Norm, Linear)
        return any(True for _ in m.children()) or not type(m).__module__.startswith("torch.nn")

    units: list[nn.Module] = []

    def visit(module: nn.Module) -> None:
        if isinstance(module, (nn.ModuleList, nn.Sequential)):
            blocks = [c for c in module.children() if holds_params(c) and composite(c)]
            if len(blocks) >= 2:
                units.extend(blocks)
                return
        for child in module.children():
            visit(child)

    visit(root)
    return units


def shard(roots: Iterable[nn.Module], model: nn.Module, device: torch.device, world: int) -> list[nn.Module]:
    """``fully_shard`` the blocks of each root, then the root; returns the roots.

    Weights are gathered in fp32 and gradients reduced in fp32; with ``--precision
    bf16|fp16`` autocast runs the matmuls and convolutions in half precision, as without
    FSDP. (FSDP's own parameter casting is not used: it hands half-precision weights to
    layers that compute in fp32 on purpose, such as BatchNorm with fp32 statistics or a
    GroupNorm that upcasts its input, and those refuse mixed dtypes.)"""
    import warnings

    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    # DTensor's note about 1-element gradient-scaler/norm tensors it replicates for us
    warnings.filterwarnings("ignore", message="Found a non-scalar tensor with numel=1")
    roots = list(roots)
    mesh = init_device_mesh(device.type, (world,))
    for root in roots:
        for unit in block_units(root):
            fully_shard(unit, mesh=mesh)
        fully_shard(root, mesh=mesh)
    left = [name for name, p in model.named_parameters() if p.requires_grad and not is_sharded(p)]
    if left:
        raise ZooError(
            f"--strategy fsdp: {len(left)} trainable weights lie outside the modules the method shards (e.g. {left[0]}); "
            "its TrainTask.fsdp_roots() must cover every trained sub-module, or train with --strategy ddp"
        )
    return roots


# -- full <-> sharded state ---------------------------------------------------------------------
def gather(obj: Any, keep: bool = True) -> Any:
    """``obj`` with every sharded tensor replaced by its full tensor on the CPU
    (collective: every process must call it with the same structure). Processes with
    ``keep=False`` take part in each all-gather but drop the result at once (None in
    its place), so only the writing process ever holds the whole state."""
    if is_sharded(obj):
        full = obj.full_tensor()
        return full.detach().cpu() if keep else None
    if isinstance(obj, dict):
        return {k: gather(v, keep) for k, v in obj.items()}
    if isinstance(obj, list):
        return [gather(v, keep) for v in obj]
    if isinstance(obj, tuple):
        return tuple(gather(v, keep) for v in obj)
    return obj


def shard_like(full: torch.Tensor, like: Any) -> Any:
    """``full`` cut into this process's shard of ``like`` (no communication: every process
    read the same full tensor)."""
    if not is_sharded(like):
        return full
    from torch.distributed.tensor import distribute_tensor

    return distribute_tensor(full.to(device=like.device, dtype=like.dtype), like.device_mesh, like.placements, src_data_rank=None)


def shard_state(full: dict[str, torch.Tensor], own: dict[str, Any]) -> dict[str, Any]:
    """A full state dict cut like the (sharded) state dict ``own``; unknown keys pass
    through (the caller's strict load names them)."""
    return {k: shard_like(v, own[k]) if k in own else v for k, v in full.items()}


def shard_optimizer_state(optimizer: torch.optim.Optimizer) -> None:
    """After ``optimizer.load_state_dict(full_state)``: cut every per-parameter moment
    that has its parameter's full shape into the parameter's shard."""
    for param, st in optimizer.state.items():
        if not is_sharded(param):
            continue
        for key, value in list(st.items()):
            if torch.is_tensor(value) and not is_sharded(value) and tuple(value.shape) == tuple(param.shape):
                st[key] = shard_like(value.to(param.dtype) if value.is_floating_point() else value, param)


def misuse_message(method: str, exc: BaseException) -> str | None:
    """One line for the errors of a loss FSDP cannot shard; None for other errors.

    Two ways a loss breaks FSDP: it uses a sharded weight outside the forward of a
    sharded module (a DTensor meets a plain tensor), or it differentiates through a
    sharded module twice (an R1 gradient penalty's ``autograd.grad(...,
    create_graph=True)``): FSDP frees the gathered weights after the first backward."""
    text = str(exc)
    first = text.strip().splitlines()[0][:160] if text.strip() else type(exc).__name__
    if "not allocated" in text:
        return (
            f"--strategy fsdp: method {method!r} backpropagates through a sharded module twice (e.g. an R1 gradient penalty), "
            f"which FSDP does not support ({first}); train with --strategy ddp"
        )
    if "DTensor" in text or "mixed torch.Tensor" in text:
        return (
            f"--strategy fsdp: method {method!r} uses sharded weights outside the forward of the modules it shards ({first}); "
            "its TrainTask.fsdp_roots() must return the sub-modules its losses call, or train with --strategy ddp"
        )
    return None
