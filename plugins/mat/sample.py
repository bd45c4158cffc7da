"""Inference: one generator pass per z, composited; the realism and diversity scores."""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F

from zoo.errors import ZooError
from zoo.spec import SampleOutput
from zoo_plugins.mat.layers import Draws
from zoo_plugins.mat.model import MAT


def symmetric_pad(x: torch.Tensor, bottom: int, right: int) -> torch.Tensor:
    """Pad the bottom/right edges by mirroring (edge pixel repeated), any pad size."""
    h, w = x.shape[-2:]

    def index(n: int, pad: int) -> torch.Tensor:
        i = torch.arange(n + pad, device=x.device) % (2 * n)
        return torch.where(i < n, i, 2 * n - 1 - i)

    return x[..., index(h, bottom), :][..., index(w, right)]


def padded_size(model: MAT, h: int, w: int) -> tuple[int, int]:
    k = model.config.multiple
    return h + (-h) % k, w + (-w) % k


@torch.no_grad()
def inpaint(model: MAT, images: torch.Tensor, masks: torch.Tensor, generator: torch.Generator) -> SampleOutput:
    """images (B, 3, H, W) in [-1, 1], masks (B, 1, H, W) 1 = hole -> composited (B, 3, H, W).

    1. pad H and W up to the window layout's multiple (``config.multiple``: 512 for mat-512,
       256 for mat-256, 32 for tiny), mirroring image and mask;
    2. z ~ N(0, I) and every random draw of the pass (the style module's Bernoulli feature
       mixing, the decoder noise) from ``generator``: one forward pass per z;
    3. crop back and keep the known pixels of the input exactly.
    """
    c = model.config
    h, w = images.shape[-2:]
    H, W = padded_size(model, h, w)
    if c.noise_mode == "const" and (H, W) != (c.resolution, c.resolution):
        raise ZooError(
            f"mat: noise_mode=const uses the stored {c.resolution}x{c.resolution} noise maps, but this image is {w}x{h} "
            f"(padded {W}x{H}); use --set noise_mode=random or none, or images of {c.resolution}x{c.resolution}"
        )
    x, m = symmetric_pad(images, H - h, W - w), symmetric_pad(masks, H - h, W - w)
    x = x * (1 - m)  # the generator never sees hole content
    z = torch.randn(images.shape[0], c.z_dim, generator=generator, device=generator.device).to(images.device)
    pred, _ = model(x, m, z, draws=Draws(generator))
    pred = pred[..., :h, :w].clamp(-1, 1).to(images.dtype)
    out = images * (1 - masks) + pred * masks
    return SampleOutput(out, {"nfe": 1, "size": f"{W}x{H}" if (H, W) != (h, w) else f"{w}x{h}"})


def _at_training_size(model: MAT, x: torch.Tensor, mode: str) -> torch.Tensor:
    r = model.config.resolution
    if x.shape[-2:] == (r, r):
        return x
    return F.interpolate(x, size=(r, r), mode=mode, **({"align_corners": False} if mode == "bilinear" else {}))


@torch.no_grad()
def score(model: MAT, images: torch.Tensor, masks: torch.Tensor, outputs: torch.Tensor) -> dict[str, float] | None:
    """The discriminator's realism of the outputs and the diversity of completions.

    * ``d-realism``: mean sigmoid of the main head's logit on (output, mask); MAT's
      discriminator scores the whole composited image given its mask (one logit per image),
      so this is a realism of the filled hole in context. Images of another size are resized
      to the training size. Absent when the model has no discriminator (imported weights).
    * diversity of ``config.score_samples`` completions per image (seed 0; 0 = skipped): mean pairwise LPIPS
      (``diversity-lpips``) when the AlexNet LPIPS weights are in the torch hub cache, else the
      mean pairwise L1 over hole pixels (``diversity-l1-hole``).
    """
    if masks.sum() <= 0:
        return None
    result: dict[str, float] = {}
    if model.discriminator is not None:
        out = _at_training_size(model, outputs.float(), "bilinear")
        m = (_at_training_size(model, masks.float(), "area") > 0.5).float()
        logits, _ = model.discriminate(out, m, out)
        result["d-realism"] = float(torch.sigmoid(logits.float()).mean())
        result["d-logit"] = float(logits.float().mean())
    n = model.config.score_samples
    if n < 2:
        return result or None
    g = torch.Generator().manual_seed(0)
    known = images * (1 - masks)
    samples = [inpaint(model, known, masks, g).images.float() for _ in range(n)]
    pairs = list(itertools.combinations(range(n), 2))
    lpips = _lpips_if_available()
    if lpips is not None:
        d = [lpips(samples[i], samples[j]).mean() for i, j in pairs]
        result["diversity-lpips"] = float(torch.stack(d).mean())
    else:
        hole = masks.expand_as(samples[0])
        d = [((samples[i] - samples[j]).abs() * hole).sum() / hole.sum() for i, j in pairs]
        result["diversity-l1-hole"] = float(torch.stack(d).mean())
    return result


def _lpips_if_available():
    """LPIPS(alex) when its weights are already cached (the score never downloads)."""
    try:
        from zoo.metrics.perceptual import backbone_url, lpips_distance
        from zoo.metrics.weights import hub_checkpoint

        if not hub_checkpoint(backbone_url("alex")).is_file():
            return None
        import lpips  # noqa: F401
    except Exception:  # noqa: BLE001 - lpips not installed
        return None
    return lambda a, b: lpips_distance(a, b, "alex")
