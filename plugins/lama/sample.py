"""Inference: one generator pass at any size, composited; test-time feature refinement
(``refine=true``); the discriminator's realism score."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from zoo.spec import SampleOutput
from zoo_plugins.lama.config import LamaConfig
from zoo_plugins.lama.model import FFCResnetBlock, LaMa


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


# -- test-time feature refinement ------------------------------------------------------------
# Kulshreshtha et al., "Feature Refinement to Improve High Resolution Image Inpainting" (2022),
# as LaMa's bin/predict.py runs it with ``refine=True``. Everything below works on one image in
# LaMa's own convention: (1, 3, H, W) in [0, 1], mask (1, 1, H, W) with 1 = hole.

_EPS = 1e-8  # the official threshold for "hole" / "known" on resized masks


@dataclass
class Refined:
    """One image after refinement: ``image`` (1, 3, H, W) in [0, 1] (composited at the size it
    was refined at); ``losses[s]`` the loss of every forward pass at pyramid scale ``s``
    (coarsest first; the coarsest scale is one plain pass and has none); ``size`` the (H, W)
    it was refined at (smaller than the input when over the pixel budget)."""

    image: torch.Tensor
    losses: list[list[float]] = field(default_factory=list)
    size: tuple[int, int] = (0, 0)


def _gaussian_blur5(x: torch.Tensor) -> torch.Tensor:
    """5x5 Gaussian blur, sigma 1, reflect border (kornia ``gaussian_blur2d`` as LaMa calls it),
    separable: rows, then columns, as kornia sums (bit-equal to it; a 2D kernel differs by
    rounding, which Adam's normalised steps can grow to ~1e-4 over a few iterations)."""
    c = x.shape[1]
    t = torch.arange(5, device=x.device, dtype=torch.float32) - 2
    g = torch.exp(-(t**2) / 2.0)
    g = (g / g.sum()).to(x.dtype)
    x = F.pad(x, (2, 2, 2, 2), mode="reflect")
    x = F.conv2d(x, g.view(1, 1, 1, 5).expand(c, 1, 1, 5), groups=c)  # along W
    return F.conv2d(x, g.view(1, 1, 5, 1).expand(c, 1, 5, 1), groups=c)  # along H


def _half(x: torch.Tensor) -> torch.Tensor:
    """Bilinear to (H // 2, W // 2), half-pixel centres."""
    return F.interpolate(x, size=(x.shape[-2] // 2, x.shape[-1] // 2), mode="bilinear", align_corners=False)


def pyr_down(image: torch.Tensor) -> torch.Tensor:
    """One pyramid step of an image: blur, then halve."""
    return _half(_gaussian_blur5(image))


def pyr_down_mask(mask: torch.Tensor, blur: bool = True, grow: bool = True) -> torch.Tensor:
    """One pyramid step of a mask, binarised: ``grow`` marks every cell that touches the hole
    (the pyramid's masks), otherwise only cells wholly inside it (the loss's masks)."""
    small = _half(_gaussian_blur5(mask) if blur else mask)
    return (small >= _EPS).float() if grow else (small >= 1.0 - _EPS).float()


def ellipse_kernel(size: int = 15) -> torch.Tensor:
    """The elliptic structuring element of OpenCV's ``getStructuringElement(MORPH_ELLIPSE)``
    for a square ``size`` (odd): row ``i`` spans ``round(r * sqrt(1 - (i - r)^2 / r^2))``
    cells either side of the centre."""
    r = size // 2
    kernel = torch.zeros(size, size)
    for i in range(size):
        dx = int(round(r * math.sqrt(max(0.0, (r * r - (i - r) ** 2) / (r * r))))) if r else 0
        kernel[i, max(r - dx, 0) : min(r + dx + 1, size)] = 1
    return kernel


def erode_hole(mask: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Binary erosion of the hole of a 0/1 mask by ``kernel``; outside the image counts as
    hole (kornia's geodesic border), so the image edge does not erode it."""
    known = 1.0 - mask
    k = kernel.to(mask)[None, None]  # (1, 1, k, k)
    hits = F.conv2d(known, k, padding=kernel.shape[-1] // 2)  # known pixels under the element
    return (hits <= 0.5).float() * mask


def image_mask_pyramid(image: torch.Tensor, mask: torch.Tensor, config: LamaConfig) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """The scales to refine at, coarsest first.

    1. over ``refine_px_budget`` pixels: bilinear resize by sqrt(budget / (H W)) (the mask
       resized the same and every touched cell made hole);
    2. ``n = min(1 + round(max(0, log2(min(H, W) / refine_min_side))), refine_max_scales)``;
    3. n - 1 pyramid steps (blur + halve; masks grow to every touched cell), none that
       would make a side 2**n_downsampling px or less (the generator's bottleneck would be
       1 px, too small for its reflect-padded convolutions).
    """
    smallest = 2**config.n_downsampling
    h, w = image.shape[-2:]
    if h * w > config.refine_px_budget:
        ratio = math.sqrt(config.refine_px_budget / float(h * w))
        h, w = max(1, int(h * ratio)), max(1, int(w * ratio))
        image = F.interpolate(image, size=(h, w), mode="bilinear", align_corners=False)
        mask = F.interpolate(mask, size=(h, w), mode="bilinear", align_corners=False)
        mask = torch.where(mask > _EPS, torch.ones_like(mask), mask)
    n = min(1 + int(round(max(0.0, math.log2(min(h, w) / config.refine_min_side)))), config.refine_max_scales)
    images, masks = [image], [mask]
    for _ in range(n - 1):
        if min(images[-1].shape[-2:]) // 2 <= smallest:  # the official code fails there
            break
        images.append(pyr_down(images[-1]))
        masks.append(pyr_down_mask(masks[-1]))
    return images[::-1], masks[::-1]


def split_generator(model: LaMa) -> tuple[torch.nn.Sequential, torch.nn.Sequential]:
    """The generator cut before its first residual block: (front: stem and downsampling ->
    (local, global) features at 1/8 size, rear: residual blocks and decoder -> [0, 1] image)."""
    layers = model.generator.model
    first = next(i for i, layer in enumerate(layers) if isinstance(layer, FFCResnetBlock))
    return layers[:first], layers[first:]


def _pad_reflect(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad bottom/right to a multiple by reflection (the refiner's ``pad_tensor_to_modulo``);
    a pad as large as the side, where reflection is undefined, mirrors symmetrically."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if not (ph or pw):
        return x
    return F.pad(x, (0, pw, 0, ph), mode="reflect") if ph < h and pw < w else symmetric_pad(x, ph, pw)


def refinement_loss(pred: torch.Tensor, image: torch.Tensor, mask: torch.Tensor, ref: torch.Tensor,
                    size: tuple[int, int], kernel: torch.Tensor) -> torch.Tensor:
    """L1 to the input on known pixels + L1 of the blurred, halved prediction to the previous
    scale's result inside the (eroded) hole. ``pred``/``image``/``mask`` are padded; ``size``
    the unpadded (H, W); ``ref`` (1, 3, H // 2, W // 2). An empty term counts 0 (the
    official code's mean of nothing is NaN)."""
    h, w = size
    known = (mask < _EPS).expand_as(pred)
    loss = (pred[known] - image[known]).abs().mean() if known.any() else pred.sum() * 0
    small = pyr_down(pred[..., :h, :w])
    hole = erode_hole(pyr_down_mask(mask[..., :h, :w], blur=False, grow=False), kernel) >= _EPS
    hole = hole.expand_as(small)
    if hole.any():
        loss = loss + (small[hole] - ref[hole]).abs().mean()
    return loss


def refine_scale(front: torch.nn.Module, rear: torch.nn.Module, image: torch.Tensor, mask: torch.Tensor,
                 ref: torch.Tensor | None, config: LamaConfig, kernel: torch.Tensor, multiple: int) -> tuple[torch.Tensor, list[float]]:
    """One pyramid scale: (unpadded) image and mask -> composited result and the losses.

    1. pad to ``multiple`` (2**n_downsampling; the official ``modulo``) by reflection,
       binarise the mask;
    2. features z = front(masked image, mask), fixed from here on except by Adam;
    3. without ``ref`` (the coarsest scale) one pass; otherwise ``refine_n_iters`` passes of
       rear(z), an Adam step on z after each but the last;
    4. composite the last prediction and crop.
    """
    h, w = image.shape[-2:]
    image, mask = _pad_reflect(image, multiple), _pad_reflect(mask, multiple)
    mask = (mask >= _EPS).to(image.dtype)
    with torch.no_grad():
        feats = front(torch.cat([image * (1 - mask), mask], dim=1))  # (local, global) at 1/8
    z = [f.detach().clone().requires_grad_(True) if f is not None else None for f in feats]
    params = [t for t in z if t is not None]
    optimizer = torch.optim.Adam(params, lr=config.refine_lr)
    losses: list[float] = []
    n = 1 if ref is None else config.refine_n_iters
    for step in range(n):
        pred = rear(tuple(z))  # (1, 3, H', W') in [0, 1]
        if ref is None:
            break
        loss = refinement_loss(pred, image, mask, ref, (h, w), kernel)
        losses.append(float(loss.detach()))
        if step < n - 1:
            optimizer.zero_grad(set_to_none=True)
            grads = torch.autograd.grad(loss, params)  # the features only, never the weights
            for t, g in zip(params, grads):
                t.grad = g
            optimizer.step()
    out = mask * pred.detach() + (1 - mask) * image
    return out[..., :h, :w], losses


def refine_one(model: LaMa, image01: torch.Tensor, mask: torch.Tensor, config: LamaConfig) -> Refined:
    """Refine one image (1, 3, H, W) in [0, 1] with mask (1, 1, H, W): the pyramid, then each
    scale from the coarsest, each one's result the reference of the next."""
    front, rear = split_generator(model)
    images, masks = image_mask_pyramid(image01, mask, config)
    kernel = ellipse_kernel(15).to(image01.device)
    ref, losses = None, []
    with torch.enable_grad():
        for image, m in zip(images, masks):
            ref, scale_losses = refine_scale(front, rear, image, m, ref, config, kernel, model.multiple)
            losses.append(scale_losses)
    return Refined(ref, losses, tuple(images[-1].shape[-2:]))


def refine_inpaint(model: LaMa, images: torch.Tensor, masks: torch.Tensor, config: LamaConfig) -> SampleOutput:
    """``refine=true``: images (B, 3, H, W) in [-1, 1], masks 1 = hole -> composited (B, 3, H, W).

    Each image is refined on its own (the official refiner takes batches of one); a result
    refined at a smaller size (pixel budget) is resized back bilinearly; the known pixels of
    the input are kept exactly. ``info``: ``nfe`` (generator passes per image, the front
    counted once per scale) and ``refine_scales``.
    """
    outs, nfe, scales = [], 0, 0
    for b in range(images.shape[0]):
        mask = (masks[b : b + 1] > 0).to(images.dtype)
        result = refine_one(model, (images[b : b + 1] + 1) / 2, mask, config)
        pred = result.image
        if pred.shape[-2:] != images.shape[-2:]:
            pred = F.interpolate(pred, size=images.shape[-2:], mode="bilinear", align_corners=False)
        pred = pred.to(images.dtype) * 2 - 1
        outs.append(images[b : b + 1] * (1 - masks[b : b + 1]) + pred * masks[b : b + 1])
        nfe = max(nfe, sum(max(1, len(s)) for s in result.losses))
        scales = len(result.losses)
    return SampleOutput(torch.cat(outs), {"nfe": nfe, "refine_scales": scales})


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
