"""Inference: RePaint's resampling loop on the prior, and the hole denoising loss score."""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F

from zoo.diffusion import count_steps, diffusers_points, jump_points, repaint
from zoo.diffusion.losses import hole_denoising_loss
from zoo.errors import ZooError
from zoo.spec import SampleOutput
from zoo_plugins.repaint.config import SAMPLING_MODES, RepaintConfig
from zoo_plugins.repaint.model import RepaintPrior, make_chain


#: The official ``schedule_jump_params`` beyond t_T / jump_length / jump_n_sample, with
#: their defaults (no extra resampling); they take effect with ``sampling=custom``.
EXTRA_SCHEDULE = {"jump2_length": 1, "jump2_n_sample": 1, "jump3_length": 1, "jump3_n_sample": 1, "start_resampling": None, "n_sample": 1}


def sampling_settings(cfg: RepaintConfig) -> RepaintConfig:
    """Apply the named sampling mode (``published`` / ``fast``) over the custom fields."""
    if cfg.sampling == "custom":
        return cfg
    changed = [k for k, v in EXTRA_SCHEDULE.items() if getattr(cfg, k) != v]
    if changed:
        raise ZooError(f"{', '.join(changed)} take effect with sampling=custom (now sampling={cfg.sampling}); add --set sampling=custom")
    return dataclasses.replace(cfg, **SAMPLING_MODES[cfg.sampling])


def schedule_points(cfg: RepaintConfig) -> list[int]:
    cfg = sampling_settings(cfg)
    extra = {k: getattr(cfg, k) for k in EXTRA_SCHEDULE}
    if cfg.schedule_alignment == "diffusers":
        if any(v != EXTRA_SCHEDULE[k] for k, v in extra.items()):
            raise ZooError("schedule_alignment=diffusers has only jump_length / jump_n_sample (diffusers' RePaintScheduler); use schedule_alignment=repaint for jump2, jump3, start_resampling, n_sample")
        return diffusers_points(cfg.t_T, cfg.jump_length, cfg.jump_n_sample)
    return jump_points(cfg.t_T, cfg.jump_length, cfg.jump_n_sample, **extra)


def expected_nfe(cfg: RepaintConfig) -> int:
    """Network calls per image of the config's schedule."""
    return count_steps(schedule_points(cfg)).down


@torch.no_grad()
def sample(model: RepaintPrior, cfg: RepaintConfig, images: torch.Tensor, holes: torch.Tensor, generator: torch.Generator, progress: bool = True) -> SampleOutput:
    """images (B, 3, H, W) in [-1, 1], holes (B, 1, H, W) 1 = hole -> composited result.

    Sizes that the UNet cannot halve enough times are reflect-padded (padding counts as
    known) and cropped back.
    """
    s = sampling_settings(cfg)
    h, w = images.shape[-2:]
    m = model.multiple
    ph, pw = (-h) % m, (-w) % m
    x, hole = images, holes
    if ph or pw:
        mode = "reflect" if min(h, w) > max(ph, pw) else "replicate"
        x = F.pad(images, (0, pw, 0, ph), mode=mode)
        hole = F.pad(holes, (0, pw, 0, ph))
    chain = make_chain(cfg).respace(s.t_T)
    points = schedule_points(cfg)
    result = repaint(model, x, hole, chain, points, generator, s.sampler, s.eta, s.clip_denoised, progress=progress, desc="repaint", known_noise=s.known_noise)
    out = result.images[..., :h, :w]
    out = images * (1 - holes) + out * holes
    info = {"nfe": result.nfe, "undo_steps": result.undo_steps, "schedule": f"t_T={s.t_T} j={s.jump_length} r={s.jump_n_sample} {s.sampler}" + (f" eta={s.eta}" if s.sampler == "ddim" else "") + f" known_noise={s.known_noise}" + "".join(f" {k}={getattr(s, k)}" for k, v in EXTRA_SCHEDULE.items() if getattr(s, k) != v)}
    return SampleOutput(out, info)


@torch.no_grad()
def score(model: RepaintPrior, cfg: RepaintConfig, images: torch.Tensor, holes: torch.Tensor) -> dict[str, float]:
    """The prior's eps-MSE on the hole of the ground truth, averaged over ``score_levels``
    timesteps evenly spread over the training chain (fixed noise)."""
    chain = make_chain(cfg)
    n = max(1, cfg.score_levels)
    levels = sorted({round(i * (len(chain) - 1) / max(n - 1, 1)) for i in range(n)})
    m = model.multiple
    h, w = images.shape[-2:]
    ph, pw = (-h) % m, (-w) % m
    if ph or pw:
        images = F.pad(images, (0, pw, 0, ph), mode="replicate")
        holes = F.pad(holes, (0, pw, 0, ph))
    loss = hole_denoising_loss(model, chain, images, holes, levels)
    return {"hole_denoise_mse": float(loss.mean())}
