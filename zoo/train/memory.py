"""``--micro-batch auto``: the largest micro-batch that fits, found by trying.

The probe runs one forward + backward of every phase on a micro-batch of the per-process
batch size, and halves it after each out-of-memory error until one fits; the engine then
accumulates ``ceil(per_process_batch / micro)`` micro-batches per step, so the global
batch (and the gradient) stays the one asked for.

A memory limit can be simulated (``ZOO_SIMULATED_MEMORY_LIMIT=<bytes>`` or
``TrainOptions.simulated_memory_limit``): the probe then counts the bytes of the
activations autograd saves for the backward pass (distinct storages, all phases of one
micro-batch) and treats more than the limit as out of memory. That is how the choice is
exercised on a CPU, and how one sizes a run for a smaller card on a bigger one.
"""

from __future__ import annotations

import contextlib
import os
from typing import Callable, Iterable, Iterator

import torch

ENV_LIMIT = "ZOO_SIMULATED_MEMORY_LIMIT"


class SimulatedOutOfMemory(RuntimeError):
    """Raised when saved activations pass the simulated memory limit."""


def is_oom(exc: BaseException) -> bool:
    if isinstance(exc, SimulatedOutOfMemory):
        return True
    oom_types = tuple(t for t in (getattr(torch, "OutOfMemoryError", None), getattr(torch.cuda, "OutOfMemoryError", None)) if t)
    return isinstance(exc, oom_types) or (isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower())


def simulated_limit(option: int | None) -> int | None:
    if option:
        return int(option)
    env = os.environ.get(ENV_LIMIT, "").strip()
    return int(float(env)) if env else None


@contextlib.contextmanager
def count_saved_bytes(limit: int | None = None, exclude: Iterable[torch.Tensor] = ()) -> Iterator[list[int]]:
    """Count bytes of distinct tensors saved for backward; raise past ``limit``.

    Tensors sharing storage with ``exclude`` (pass the model's parameters: they are in
    memory anyway) are not counted. Yields a one-element list holding the running total."""
    skip = {_local(t).untyped_storage().data_ptr() for t in exclude}
    seen: set[tuple[int, int]] = set()
    total = [0]

    def pack(t: torch.Tensor):
        try:
            key = (t.untyped_storage().data_ptr(), t.untyped_storage().nbytes())
        except Exception:  # tensors without storage (e.g. some wrappers)
            key = (id(t), t.numel() * t.element_size())
        if key not in seen and key[0] not in skip:
            seen.add(key)
            total[0] += key[1]
            if limit is not None and total[0] > limit:
                raise SimulatedOutOfMemory(f"simulated out of memory: {total[0]} bytes of saved activations > limit {limit}")
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        yield total


def _local(t: torch.Tensor) -> torch.Tensor:
    """The local part of an FSDP-sharded weight (a DTensor), else ``t``."""
    to_local = getattr(t, "to_local", None)
    return to_local() if callable(to_local) else t


def probe_micro_batch(run_micro: Callable[[int], None], per_process: int, device: torch.device) -> int:
    """Largest ``m`` in ``per_process, per_process // 2, ..., 1`` for which
    ``run_micro(m)`` (forward + backward of each phase on ``m`` samples, each phase
    inside :func:`count_saved_bytes` when a limit is simulated) does not run out of
    memory; 0 if even one sample does not fit."""
    m = per_process
    while m >= 1:
        try:
            run_micro(m)
            return m
        except Exception as exc:  # noqa: BLE001 - only out-of-memory errors are retried
            if not is_oom(exc):
                raise
        if device.type == "cuda":
            torch.cuda.empty_cache()
        m //= 2
    return 0


def memory_of(device: torch.device) -> int:
    """Bytes of memory of ``device``: the GPU's, or the machine's physical memory."""
    if device.type == "cuda":
        return int(torch.cuda.get_device_properties(device.index or 0).total_memory)
    try:
        return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):  # no sysconf (Windows): no estimate
        return 0


def _gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB"


def check_training_sizes(method: str, steps: int, batch_size: int, resolution: int, options: object) -> None:
    """Before a run starts: ``--steps`` and ``--batch-size`` within the zoo's upper limits, and
    the first (micro-)batch within the device's memory (:func:`check_first_batch`)."""
    from zoo.config import check_upper_limit
    from zoo.device import get_device

    check_upper_limit("steps", steps, f"--steps {steps}")
    check_upper_limit("batch_size", batch_size, f"--batch-size {batch_size}")
    micro = getattr(options, "micro_batch", None)
    first = min(batch_size, micro) if isinstance(micro, int) else batch_size
    check_first_batch(resolution, first, get_device(getattr(options, "device", None)), method)


def check_first_batch(resolution: int, batch: int, device: torch.device, method: str) -> None:
    """Refuse, before any work, a training resolution or batch whose first batch cannot fit:
    its images (3 channels) and masks (1), float32, are a lower bound of what a step holds (the
    network's activations come on top). Also refuses a side above :data:`zoo.config.MAX_SIDE`."""
    from zoo.config import MAX_SIDE
    from zoo.errors import ZooError

    need = batch * 4 * resolution * resolution * 4
    have = memory_of(device)
    where = "the GPU's" if device.type == "cuda" else "this machine's"
    estimate = f"the first batch alone needs {_gib(need)} ({batch} images of {resolution}x{resolution}, 3 colour channels and a mask, float32)"
    if resolution > MAX_SIDE:
        raise ZooError(f"config resolution={resolution} for {method}: at most {MAX_SIDE} (the zoo's upper limit for an image side); {estimate}")
    if have and need > have:
        raise ZooError(f"config resolution={resolution} with --batch-size {batch} for {method}: {estimate}, more than {where} {_gib(have)} of memory; "
                       "lower --set resolution= or --batch-size (or use --micro-batch auto)")
