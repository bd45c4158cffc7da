"""Device and precision from one place. CPU float32 is the default and always works."""

from __future__ import annotations

import os

import torch

from zoo.errors import ZooError

DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("fp32", "bf16", "fp16")
DEVICE_ENV = "ZOO_DEVICE"


def get_device(name: str | None = None) -> torch.device:
    """``auto`` (CUDA if present, else CPU), ``cpu``, ``cuda[:N]`` or ``mps``; ``ZOO_DEVICE``
    sets the default."""
    name = name or os.environ.get(DEVICE_ENV, "auto")
    base = name.split(":")[0]
    if base not in DEVICES:
        raise ZooError(f"unknown device {name!r}; valid choices: {', '.join(DEVICES)}")
    if base == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    index = name.split(":", 1)[1] if ":" in name else None
    if index is not None and (base not in ("cuda", "mps") or not index.isdigit()):
        raise ZooError(f"unknown device {name!r}; valid choices: {', '.join(DEVICES)}, cuda:N")
    if base == "cuda" and not torch.cuda.is_available():
        raise ZooError(f"device {name!r} was asked for but no CUDA GPU is visible; use --device cpu")
    if base == "cuda" and index is not None and int(index) >= torch.cuda.device_count():
        raise ZooError(f"device {name!r} was asked for but only {torch.cuda.device_count()} CUDA GPU(s) are visible (cuda:0 ... cuda:{torch.cuda.device_count() - 1})")
    if base == "mps" and not torch.backends.mps.is_available():
        raise ZooError(f"device {name!r} was asked for but is not available; use --device cpu")
    return torch.device(name)


def get_dtype(precision: str) -> torch.dtype:
    table = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
    if precision not in table:
        raise ZooError(f"unknown precision {precision!r}; valid choices: {', '.join(PRECISIONS)}")
    return table[precision]


def cpu_name() -> str:
    """The CPU's model name (from /proc/cpuinfo where there is one), for benchmark records."""
    import platform
    from pathlib import Path

    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


PROCESS_GIB = 1.0  # memory one CPU process of --devices needs at least: torch alone takes about 0.5 GiB


def cpu_cores() -> int:
    """CPU cores this process may run on (its affinity, as taskset / cgroups set it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def available_memory_gib() -> float | None:
    """Memory the kernel could give new processes now (MemAvailable), in GiB; None when unknown."""
    try:
        import psutil

        return psutil.virtual_memory().available / 2**30
    except Exception:
        pass
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return None


def max_devices(device: str | None = None) -> tuple[int, str]:
    """How many processes ``--devices`` may start on this machine for ``device``, and why:
    on a GPU one per visible GPU; on a CPU at most one per core, and no more than the
    available memory holds at :data:`PROCESS_GIB` each."""
    dev = get_device(device)
    if dev.type == "cuda":
        n = torch.cuda.device_count()
        return n, f"{n} CUDA GPU(s) are visible"
    if dev.type == "mps":
        return 1, "an Apple GPU (mps) runs one process"
    cores, free = cpu_cores(), available_memory_gib()
    if free is None:
        return cores, f"this machine has {cores} CPU core(s)"
    by_memory = max(1, int(free // PROCESS_GIB))
    return min(cores, by_memory), f"this machine has {cores} CPU core(s) and {free:.1f} GiB of available memory (about {PROCESS_GIB:g} GiB per process)"


def check_devices(devices: int, device: str | None = None) -> None:
    """Refuse ``--devices`` below 1 or above :func:`max_devices`, before any process starts."""
    if devices < 1:
        raise ZooError("--devices must be at least 1")
    if devices == 1:
        return
    limit, why = max_devices(device)
    if devices > limit:
        raise ZooError(f"--devices {devices}: {why}, so at most {limit} process(es); valid choices: 1 ... {max(1, limit)}")
