"""Inpainting with MaskGIT's iterative parallel decoding, and the score hook.

    1. pad the image to a multiple of the token size f (replicate; padding counts as known)
    2. tokens = nearest codes of the encoded image; the hole's pixels were erased by the core,
       so every token whose f x f cell lies within ``hole_margin`` pixels of the hole -> [MASK]
    3. for t = 0 .. T-1 (stop after ``sweet_spot`` iterations if set)      [MaskGIT Alg. 1]
         logits = transformer(tokens)                                      one network call
         sample every masked token from softmax(logits)
         confidence = log p(sample) + temp * (1 - (t+1)/T) * Gumbel noise; known: +inf
         n = ceil(N * gamma((t+1)/T)), N = tokens masked at the start (0 at the last step)
         re-mask the n least confident sampled tokens; keep the rest
    4. decode the tokens to pixels, crop, composite with the known pixels
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from zoo.spec import SampleOutput
from zoo_plugins.maskgit.config import MaskGITConfig
from zoo_plugins.maskgit.model import MaskGIT
from zoo_plugins.maskgit.schedules import masked_count


@dataclass
class DecodeResult:
    tokens: torch.Tensor  # (B, N) final ids, no [MASK]
    nfe: int  # transformer calls per image
    masked_per_step: list[list[int]]  # [step][image]: tokens still masked after each step


def token_holes(masks: torch.Tensor, factor: int, margin: int) -> torch.Tensor:
    """Pixel holes (B, 1, H, W), H and W multiples of ``factor`` -> token holes (B, H/f, W/f) bool:
    True where the cell, grown by ``margin`` pixels, touches a hole pixel."""
    m = masks.float()
    if margin > 0:
        m = F.max_pool2d(m, 2 * margin + 1, stride=1, padding=margin)
    return F.max_pool2d(m, factor, stride=factor)[:, 0] > 0


def gumbel(shape: torch.Size, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    u = torch.rand(shape, generator=generator).clamp(1e-20, 1.0 - 1e-7)
    return (-torch.log(-torch.log(u))).to(device)


@torch.no_grad()
def decode(transformer, tokens: torch.Tensor, unknown: torch.Tensor, cfg: MaskGITConfig, generator: torch.Generator, grid: tuple[int, int] | None = None) -> DecodeResult:
    """MaskGIT decoding. tokens (B, N) ids (values under ``unknown`` are ignored), unknown (B, N)
    bool -> every unknown token filled; known tokens are returned unchanged."""
    mask_id = transformer.mask_id
    cur = torch.where(unknown, torch.full_like(tokens, mask_id), tokens)  # (B, N)
    start = unknown.sum(1)  # (B,) N of each image
    T = cfg.total_iter
    stop = cfg.sweet_spot or T
    nfe, history = 0, []
    if not bool(unknown.any()):
        return DecodeResult(cur, 0, [])
    for t in range(stop):
        masked = cur == mask_id  # (B, N)
        logits = transformer(cur, grid).float()  # (B, N, K)
        nfe += 1
        probs = logits.softmax(-1)
        B, N, K = probs.shape
        flat = probs.reshape(-1, K).cpu()
        sampled = torch.multinomial(flat, 1, generator=generator).view(B, N).to(cur.device)  # (B, N)
        sampled = torch.where(masked, sampled, cur)  # known and already decided tokens stay
        last = t == stop - 1
        ratio = (t + 1) / T
        n_mask = [0 if last else masked_count(cfg.schedule, ratio, int(n)) for n in start.tolist()]
        # at least one more token decided per step, never more masked than before
        n_mask = [min(k, int(c) - 1) if int(c) > 0 else 0 for k, c in zip(n_mask, masked.sum(1).tolist())]
        n_mask = [max(k, 0) for k in n_mask]
        if max(n_mask) > 0:
            logp = torch.log(torch.gather(probs, -1, sampled[..., None])[..., 0].clamp_min(1e-30))  # (B, N)
            temp = cfg.choice_temperature * (1.0 - ratio)
            conf = logp + temp * gumbel(logp.shape, generator, logp.device)
            conf = torch.where(masked, conf, torch.full_like(conf, float("inf")))  # known: infinite confidence
            order = conf.argsort(dim=1)  # least confident first
            k = torch.tensor(n_mask, device=cur.device)[:, None]
            remask = torch.zeros_like(masked).scatter(1, order, torch.arange(N, device=cur.device).expand(B, N) < k)
            cur = torch.where(remask, torch.full_like(sampled, mask_id), sampled)
        else:
            cur = sampled
        history.append((cur == mask_id).sum(1).tolist())
        if not bool((cur == mask_id).any()):
            break
    return DecodeResult(cur, nfe, history)


def pad_to(x: torch.Tensor, m: int) -> tuple[torch.Tensor, int, int]:
    h, w = x.shape[-2:]
    ph, pw = (-h) % m, (-w) % m
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="replicate")
    return x, ph, pw


@torch.no_grad()
def sample(model: MaskGIT, cfg: MaskGITConfig, images: torch.Tensor, masks: torch.Tensor, generator: torch.Generator) -> SampleOutput:
    """images (B, 3, H, W) in [-1, 1], masks (B, 1, H, W) 1 = hole -> composited result."""
    f = model.factor
    h, w = images.shape[-2:]
    known = images * (1 - masks)  # never look at hole pixels
    x, ph, pw = pad_to(known, f)
    m = F.pad(masks, (0, pw, 0, ph)) if (ph or pw) else masks
    grid = (x.shape[-2] // f, x.shape[-1] // f)
    tokens = model.encode_tokens(x).flatten(1)  # (B, N)
    unknown = token_holes(m, f, cfg.hole_margin).flatten(1)  # (B, N)
    res = decode(model.transformer, tokens, unknown, cfg, generator, grid)
    pred = model.decode_tokens(res.tokens.view(-1, *grid))[..., :h, :w].clamp(-1, 1)
    out = images * (1 - masks) + pred * masks
    info = {"nfe": res.nfe, "schedule": f"{cfg.schedule} T={cfg.total_iter}" + (f" stop={cfg.sweet_spot}" if cfg.sweet_spot else ""),
            "masked_tokens": int(unknown.sum()) // max(1, unknown.shape[0])}
    return SampleOutput(out, info)


@torch.no_grad()
def own_tokens(model: MaskGIT, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The ground truth's own tokens (B, N) and their decoding (B, 3, H, W) in [-1, 1]: composited
    into the hole, the ceiling of the method (``tokenizer_ceiling_psnr``; also
    benchmarks/study/tokenizer_ceiling.py, per image)."""
    f = model.factor
    h, w = images.shape[-2:]
    x, _, _ = pad_to(images, f)
    grid = (x.shape[-2] // f, x.shape[-1] // f)
    target = model.encode_tokens(x).flatten(1)
    return target, model.decode_tokens(target.view(-1, *grid))[..., :h, :w].clamp(-1, 1)


@torch.no_grad()
def score(model: MaskGIT, cfg: MaskGITConfig, images: torch.Tensor, masks: torch.Tensor) -> dict[str, float] | None:
    """Token accuracy and NLL of the hole tokens in one transformer pass with every hole token
    masked (targets: the tokens of the ground truth), the tokenizer's PSNR over the whole
    image, and ``tokenizer_ceiling_psnr``: the PSNR of the ground truth's own tokens decoded
    into the hole and composited (what a perfect transformer would score; the ceiling of the
    method on this hole, comparable with a study's psnr column)."""
    f = model.factor
    x, ph, pw = pad_to(images, f)
    m = F.pad(masks, (0, pw, 0, ph)) if (ph or pw) else masks
    grid = (x.shape[-2] // f, x.shape[-1] // f)
    target, rec = own_tokens(model, images)  # (B, N) ground-truth tokens, their decoding
    mse = ((rec - images) / 2).pow(2).flatten(1).mean(1).clamp_min(1e-10)  # in [0, 1] units
    out = {"tokenizer_psnr": float((10 * torch.log10(1 / mse)).mean())}
    # the ceiling on the inpainting task itself: the ground truth's own tokens decoded into the
    # hole and composited, scored like an output (whole-image PSNR, mean over images)
    filled = images * (1 - masks) + rec * masks
    mse_c = ((filled - images) / 2).pow(2).flatten(1).mean(1).clamp_min(1e-10)
    out["tokenizer_ceiling_psnr"] = float((10 * torch.log10(1 / mse_c)).mean())
    known_tokens = model.encode_tokens(x * (1 - m)).flatten(1)
    hole = token_holes(m, f, cfg.hole_margin).flatten(1)
    if hole.any():
        inp = torch.where(hole, torch.full_like(known_tokens, model.mask_id), known_tokens)
        logits = model.transformer(inp, grid).float()  # (B, N, K)
        nll = F.cross_entropy(logits[hole], target[hole])
        acc = (logits[hole].argmax(-1) == target[hole]).float().mean()
        out.update({"hole_token_accuracy": float(acc), "hole_token_nll": float(nll)})
    return out
