"""The resampling loop of RePaint (Lugmayr et al. 2022, Algorithm 1) on any chain.

Walk the level sequence ``points`` (see :mod:`zoo.diffusion.jump`); for each transition:

* down (k -> k-1, one network call):
    1. out = model(x_k, t_k)
    2. unknown = reverse_step(x_k, out, noise)                 # Alg. 1 lines 6-7
    3. known   = sqrt(abar_{k-1}) x0 + sqrt(1 - abar_{k-1}) noise  # line 5, the input noised
                                                                 # to the new level
    4. x_{k-1} = hole * unknown + (1 - hole) * known            # line 8: composited before
                                                                 # the next denoising step
* up (k-1 -> k, no network call): x_k = sqrt(1 - beta_k) x_{k-1} + sqrt(beta_k) eps (line 13).

Random numbers are drawn in diffusers' order (one ``randn`` for the start, one per step down,
shared by the known and unknown parts, one per undo step), so with the same prior, points
and generator the result equals diffusers' ``RePaintPipeline`` (``known_noise="shared"``).
``known_noise="fresh"`` follows the official code instead: before every network call the
known region is replaced by the input noised to the current level with a new draw
(``known = sqrt(abar_k) x0 + sqrt(1 - abar_k) eps'``), so after an undo step it is not the
re-noised previous value. Each step's marginal is the same either way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from tqdm.auto import tqdm

from zoo.diffusion.schedule import Chain
from zoo.diffusion.steps import reverse_step, undo_step
from zoo.progress import enabled as inner_bars

KNOWN_NOISE = ("shared", "fresh")

#: model_fn(x (B, C, H, W), t (B,) long model timesteps) -> (B, C or 2C, H, W)
ModelFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
#: cond_fn(x (B, C, H, W), t (B,) model timesteps) -> scaled grad log p(y | x_t) (B, C, H, W)
CondFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class RepaintResult:
    images: torch.Tensor  # (B, C, H, W); known pixels equal the input exactly
    nfe: int  # network calls per image
    undo_steps: int


def randn(shape: torch.Size, generator: torch.Generator | None, like: torch.Tensor) -> torch.Tensor:
    """Gaussian noise from ``generator`` (drawn on the generator's device, then moved)."""
    device = generator.device if generator is not None else like.device
    return torch.randn(shape, generator=generator, device=device, dtype=like.dtype).to(like.device)


@torch.no_grad()
def repaint(
    model_fn: ModelFn,
    images: torch.Tensor,
    holes: torch.Tensor | None,
    chain: Chain,
    points: list[int],
    generator: torch.Generator | None = None,
    sampler: str = "ddpm",
    eta: float = 1.0,
    clip: bool = True,
    x_init: torch.Tensor | None = None,
    progress: bool = False,
    desc: str = "repaint",
    known_noise: str = "shared",
    cond_fn: CondFn | None = None,
) -> RepaintResult:
    """Inpaint ``images`` (B, C, H, W) in [-1, 1] where ``holes`` (B, 1, H, W) is 1.

    ``holes=None`` samples unconditionally (plain ancestral sampling when ``points`` only
    goes down). ``x_init`` replaces the starting noise (e.g. DIP-DDPM's start mid-chain,
    then ``points`` starts at that level). ``cond_fn`` (classifier guidance) is evaluated on
    the network's input of every step down and shifts that step (:func:`reverse_step`'s
    ``guidance``), as guided-diffusion's ``cond_fn`` inside RePaint's ``p_sample_loop``.
    Returns the final x at level -1 and the number of network calls.
    """
    if points[-1] != -1 or any(abs(a - b) != 1 for a, b in zip(points, points[1:])):
        raise ValueError("points must move by one level at a time and end at -1")
    if known_noise not in KNOWN_NOISE:
        raise ValueError(f"unknown known_noise {known_noise!r}; valid: {KNOWN_NOISE}")
    fresh = known_noise == "fresh"
    if points[0] >= len(chain):
        raise ValueError(f"schedule starts at level {points[0]} but the chain has {len(chain)} levels")
    x = randn(images.shape, generator, images) if x_init is None else x_init.to(images)
    keep = None if holes is None else (1 - holes).to(images)  # 1 = known
    nfe = undos = 0
    pairs = list(zip(points, points[1:]))
    bar = tqdm(pairs, desc=desc, disable=not inner_bars(progress), dynamic_ncols=True, leave=False)
    for a, b in bar:
        noise_shape = x.shape
        if b < a:  # denoise level a -> a - 1
            if fresh and keep is not None:  # official: the known part drawn anew at level a
                known = chain.q_sample(images, a, randn(noise_shape, generator, x))
                x = keep * known + (1 - keep) * x
            t = chain.timesteps[a].to(images.device).long().expand(x.shape[0])
            out = model_fn(x, t)
            nfe += 1
            guidance = None if cond_fn is None else cond_fn(x, t)
            noise = randn(noise_shape, generator, x)
            x, _ = reverse_step(chain, x, a, out.to(x.dtype), noise, sampler, eta, clip, guidance)
            if keep is not None and not fresh:
                a_prev = float(chain.alphas_cumprod_prev[a])
                known = a_prev**0.5 * images + (1 - a_prev) ** 0.5 * noise
                x = keep * known + (1 - keep) * x
            if progress:
                bar.set_postfix(nfe=nfe, refresh=False)
        else:  # undo: level a -> a + 1
            x = undo_step(chain, x, b, randn(noise_shape, generator, x))
            undos += 1
    bar.close()
    if keep is not None:
        x = keep * images + (1 - keep) * x
    return RepaintResult(x, nfe, undos)
