"""The one way the core calls a method's ``zoo_sample`` hook, and the contract it enforces.

:func:`inpaint` is used by ``zoo sample``, ``zoo score METHOD``, ``zoo compare`` and the
training engine's validation, so every method, built-in or third-party, gets the same
guarantees:

1. **the method never sees the hole**: hole pixels (mask 1) of the images are erased to
   :data:`HOLE_VALUE` before the hook is called, so changing the hole content of an input
   changes nothing in any output;
2. the result has the input's shape, is clamped to [-1, 1], and is **composited**: known
   pixels equal the input exactly.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Iterator

import torch

from zoo.errors import PluginError, plugin_error
from zoo.plugins import get_manager

class NonFiniteOutput(PluginError):
    """A sampler returned NaN or Inf: one line naming the plugin, the method and how many images."""


#: What hole pixels are replaced with before a method sees them (mid-grey in [-1, 1]).
HOLE_VALUE = 0.0


_NAMES: ContextVar[tuple[str, ...] | None] = ContextVar("zoo_image_names", default=None)


@contextmanager
def image_names_of_batch(names: list[str]) -> Iterator[None]:
    """While active, :func:`image_names` returns ``names`` (``zoo sample`` sets it per batch)."""
    token = _NAMES.set(tuple(names))
    try:
        yield
    finally:
        _NAMES.reset(token)


def image_names() -> tuple[str, ...] | None:
    """The names of the images of the batch being sampled, in batch order: their paths under
    ``--images`` without the suffix, as the output files are named (``zoo sample`` only; None
    elsewhere). For per-image settings such as repaint's class list file."""
    return _NAMES.get()


def erase_holes(images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """``images`` with every hole pixel (mask 1) set to :data:`HOLE_VALUE`; a new tensor."""
    return torch.where(masks.bool().expand_as(images), torch.full_like(images, HOLE_VALUE), images)


def sample_seed(seed: int, sample_index: int, batch_start: int) -> int:
    """The generator seed of sample ``sample_index`` of the batch starting at image ``batch_start``."""
    return (int(seed) * 1_000_003 + sample_index * 7_919 + batch_start) % (2**63)


def inpaint(method: str, model: torch.nn.Module, config: Any, images: torch.Tensor, masks: torch.Tensor, generator: torch.Generator):
    """Call the method's sample hook on a batch; returns ``(composited images, info)``.

    ``images`` (B, 3, H, W) in [-1, 1], ``masks`` (B, 1, H, W) with 1 = hole. The hook gets
    the images with their holes erased; its output is checked for shape and composited
    with the original known pixels."""
    visible = erase_holes(images, masks)
    manager = get_manager()
    out = manager.call("zoo_sample", method, model=model, config=config, images=visible, masks=masks, generator=generator)
    pred = out.images
    if pred.shape != images.shape:
        raise plugin_error(manager.owner("methods", method), "zoo_sample", f"returned images of shape {tuple(pred.shape)} for input {tuple(images.shape)}; expected {tuple(images.shape)} (B, 3, H, W)", method)
    bad = int((~torch.isfinite(pred)).flatten(1).any(dim=1).sum())
    if bad:  # NaN * 0 is NaN: a non-finite prediction would also spoil the known pixels
        line = plugin_error(manager.owner("methods", method), "zoo_sample",
                            f"returned NaN or Inf values for {bad} of {pred.shape[0]} image(s) of this batch; nothing was written for them "
                            "(check the checkpoint, or sample at fp32 if a lower precision was used)", method)
        raise NonFiniteOutput(str(line))
    composited = images * (1 - masks) + pred.to(images.dtype).clamp(-1, 1) * masks
    return composited, out.info
