"""One forward pass for both baselines, composited so known pixels stay."""

from __future__ import annotations

import torch

from zoo.spec import SampleOutput


@torch.no_grad()
def sample(model: torch.nn.Module, images: torch.Tensor, masks: torch.Tensor) -> SampleOutput:
    pred = model(images, masks)
    out = images * (1 - masks) + pred * masks
    return SampleOutput(out, {"nfe": 1} if any(True for _ in model.parameters()) else {})  # telea runs no network
