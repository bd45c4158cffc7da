"""What every check of the kit shares: the failure type, the example batch, global RNG control."""

from __future__ import annotations

import contextlib
import random
from typing import Iterator

import torch

#: Image side the kit samples at (the tiny presets train at 32 px).
SIZE = 32
#: ``hole-only``: pixels farther than this from the hole must not change a hole metric.
HOLE_MARGIN = 8


class KitFailure(AssertionError):
    """A failed check: ``NAME: [CHECK/SUB-CHECK] message``."""

    def __init__(self, subject: str, check: str, subcheck: str, message: str) -> None:
        message = " | ".join(line.strip() for line in str(message).splitlines() if line.strip())  # one line
        super().__init__(f"{subject}: [{check}/{subcheck}] {message}")
        self.subject, self.check, self.subcheck, self.message = subject, check, subcheck, message


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def example_batch(n: int = 2, height: int = SIZE, width: int = SIZE) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` images of the built-in ``shapes`` data (B, 3, H, W) in [-1, 1] and masks
    (B, 1, H, W) with one box hole (1 = hole): the batch the kit samples and scores with."""
    from zoo.data import ShapesDataset

    data = ShapesDataset(resolution=max(height, width), seed=3, split="val")
    images = torch.stack([data[i]["image"][:, :height, :width] for i in range(n)])
    masks = torch.zeros(n, 1, height, width)
    masks[..., height // 4 : height // 2 + 3, width // 5 : width - width // 4] = 1
    return images, masks


@contextlib.contextmanager
def _global_rng(seed: int, which: tuple[str, ...] = ("torch", "numpy", "random")) -> Iterator[None]:
    """Seed the global RNGs named in ``which`` with ``seed`` (the others with 0) for the
    block, and put every one back as it was afterwards."""
    import numpy as np

    saved = torch.get_rng_state(), np.random.get_state(), random.getstate()
    torch.manual_seed(seed if "torch" in which else 0)
    np.random.seed((seed if "numpy" in which else 0) % 2**32)
    random.seed(seed if "random" in which else 0)
    try:
        yield
    finally:
        torch.set_rng_state(saved[0])
        np.random.set_state(saved[1])
        random.setstate(saved[2])


_GLOBAL_NAMES = {"torch": "torch's global RNG", "numpy": "numpy's global RNG", "random": "Python's random module"}


def _fmt(values) -> str:
    """A tensor of values as a short list: ``[0.1234, 0.5]``."""
    return "[" + ", ".join(f"{float(v):.4g}" for v in values) + "]"
