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
