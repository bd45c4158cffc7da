"""Inference: RePaint-style resampling in latent space (:func:`zoo.diffusion.repaint`) with
classifier-free guidance on the context, then decode and composite in pixel space.

1. pad to a multiple of VAE factor x patch (x ``window`` with ``contextual-window``: whole
   windows of tokens; padding counts as known), encode the masked image: the known latent
   z_known, the context, the token validity;
2. walk the jump schedule (``num_steps`` levels, ``jump_length`` j, ``jump_n_sample`` r;
   r = 1: plain ancestral sampling): each step down calls the guided denoiser, the known
   latent region (latent pixels whose patch is entirely known) is re-imposed, noised to the
   new level (RePaint Alg. 1 lines 5-8); each step up re-noises (line 13);
3. decode, crop, composite: known pixels are the input's exactly.
``nfe`` counts network calls per image: two per step with guidance (w not in {0, 1}).
``valid_fraction``: the dynamic mask, the fraction of valid tokens after each block (one value
per block, mean over the batch's images) in the conditional branch. It is the same in every
denoiser call of the chain: validity depends on the hole and the window layout only, not on
z_t, t or the weights. :func:`score` reports it to ``zoo score`` / ``zoo compare``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from zoo.diffusion import count_steps, jump_points, repaint
from zoo.spec import SampleOutput
from zoo_plugins.dit_mca.config import DitMcaConfig
from zoo_plugins.dit_mca.model import DitMca, guided_output, make_chain


def schedule_points(cfg: DitMcaConfig) -> list[int]:
    return jump_points(cfg.num_steps, cfg.jump_length, cfg.jump_n_sample)


def expected_nfe(cfg: DitMcaConfig) -> int:
    """Network calls per image of the config's schedule and guidance."""
    return count_steps(schedule_points(cfg)).down * cfg.guidance_calls


def pad(images: torch.Tensor, holes: torch.Tensor, multiple: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad the masked image (reflected, replicated for tiny images) and the hole (0: padding
    counts as known) at the bottom / right to a multiple of ``multiple``."""
    h, w = images.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    x, hole = images * (1 - holes), holes
    if ph or pw:
        mode = "reflect" if min(h, w) > max(ph, pw) else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
        hole = F.pad(holes, (0, pw, 0, ph))
    return x, hole


def valid_fractions(model: DitMca, valid: torch.Tensor, grid: tuple[int, int]) -> list[float]:
    """Fraction of valid tokens after each block, mean over the batch: one float per block."""
    return [float(v.mean()) for v in model.dit.validity_trace(valid, grid)]


@torch.no_grad()
def score(model: DitMca, images: torch.Tensor, holes: torch.Tensor) -> dict[str, float]:
    """``zoo_score``: the dynamic mask of this batch, ``valid_fraction_start`` (the hole's
    tokens) and ``valid_fraction_block{i}`` after block i (1-based), the grid as sampling pads it;
    and the VAE's share of the error: ``vae_psnr`` (the ground truth encoded and decoded, whole
    image) and ``vae_ceiling_psnr`` (that reconstruction composited into the hole: what a
    perfect denoiser would score, comparable with a study's psnr column)."""
    from zoo.metrics.pixel import psnr

    hole = pad(images, holes, model.sample_multiple)[1]
    valid = model.token_validity(hole)
    grid = (hole.shape[-2] // model.multiple, hole.shape[-1] // model.multiple)
    out = {"valid_fraction_start": float(model.dit.start_validity(valid).mean())}
    out.update({f"valid_fraction_block{i + 1}": v for i, v in enumerate(valid_fractions(model, valid, grid))})
    whole = pad(images, torch.zeros_like(holes), model.sample_multiple)[0]
    rec = model.decode(model.encode(whole))[..., : images.shape[-2], : images.shape[-1]].clamp(-1, 1)
    out["vae_psnr"] = float(psnr(rec, images).mean())
    out["vae_ceiling_psnr"] = float(psnr(images * (1 - holes) + rec * holes, images).mean())
    return out


@torch.no_grad()
def sample(model: DitMca, cfg: DitMcaConfig, images: torch.Tensor, holes: torch.Tensor, generator: torch.Generator, progress: bool = True) -> SampleOutput:
    """images (B, 3, H, W) in [-1, 1], holes (B, 1, H, W) 1 = hole -> composited result."""
    h, w = images.shape[-2:]
    x, hole = pad(images, holes, model.sample_multiple)
    context, valid, latent_hole = model.context(x, hole)  # (B, C+1, h, w), (B, N), (B, 1, h, w)
    z_known = context[:, : model.latent_channels]
    empty = model.empty_context(z_known)
    chain = make_chain(cfg).respace(cfg.num_steps)

    def model_fn(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return guided_output(model, z, t, (context, valid), empty, cfg.guidance)

    result = repaint(model_fn, z_known, latent_hole, chain, schedule_points(cfg), generator, cfg.sampler, cfg.eta,
                     clip=False, progress=progress, desc="dit-mca")
    out = model.decode(result.images)[..., :h, :w].clamp(-1, 1)
    out = images * (1 - holes) + out * holes
    window = f" window={cfg.window}" if cfg.attention == "contextual-window" else ""
    info = {
        "nfe": result.nfe * cfg.guidance_calls,
        "undo_steps": result.undo_steps,
        "schedule": f"steps={cfg.num_steps} j={cfg.jump_length} r={cfg.jump_n_sample} {cfg.sampler} w={cfg.guidance} attention={cfg.attention}{window}",
        "valid_fraction": valid_fractions(model, valid, (hole.shape[-2] // model.multiple, hole.shape[-1] // model.multiple)),
    }
    return SampleOutput(out, info)
