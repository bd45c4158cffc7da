"""Inference: one generator pass at any size, composited; the discriminator's realism score."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from zoo.spec import SampleOutput
from zoo_plugins.lama.model import LaMa


def symmetric_pad(x: torch.Tensor, bottom: int, right: int) -> torch.Tensor:
    """Pad the bottom/right edges by mirroring with the edge pixel repeated (numpy's
    ``mode="symmetric"``, what LaMa's ``pad_img_to_modulo`` uses); any pad size."""
    h, w = x.shape[-2:]

    def index(n: int, pad: int) -> torch.Tensor:
        i = torch.arange(n + pad, device=x.device) % (2 * n)
        return torch.where(i < n, i, 2 * n - 1 - i)

    return x[..., index(h, bottom), :][..., index(w, right)]


@torch.no_grad()
def inpaint(model: LaMa, images: torch.Tensor, masks: torch.Tensor) -> SampleOutput:
    """images (B, 3, H, W) in [-1, 1], masks (B, 1, H, W) 1 = hole -> composited (B, 3, H, W).

    1. pad H and W up to a multiple of 2**n_downsampling (8), symmetric, as LaMa;
    2. one generator pass on the masked image + mask;
    3. crop back and keep the known pixels of the input exactly.
    """
    h, w = images.shape[-2:]
    k = model.multiple
    ph, pw = (-h) % k, (-w) % k
    x, m = symmetric_pad(images, ph, pw), symmetric_pad(masks, ph, pw)
    pred = model(x, m)[..., :h, :w].to(images.dtype)  # (B, 3, H, W) in [-1, 1]
    out = images * (1 - masks) + pred * masks
    return SampleOutput(out, {"nfe": 1})


@torch.no_grad()
def realism_score(model: LaMa, masks: torch.Tensor, outputs: torch.Tensor) -> dict[str, float] | None:
    """Mean probability that the discriminator calls the hole real, over the batch.

    D's logits (B, 1, h, w) on the composited outputs; each cell is weighted by the share of
    hole pixels it covers (area-resized mask). None when the model has no discriminator
    (imported generators) or the batch has no hole.
    """
    if model.discriminator is None:
        return None
    logits, _ = model.discriminator((outputs.float() + 1) / 2)  # (B, 1, h, w)
    weight = F.adaptive_avg_pool2d(masks.float(), logits.shape[-2:])  # (B, 1, h, w) hole share
    if weight.sum() <= 0:
        return None
    prob = torch.sigmoid(logits.float())
    return {
        "d-realism-hole": float((prob * weight).sum() / weight.sum()),
        "d-logit-hole": float((logits.float() * weight).sum() / weight.sum()),
    }
