"""Noise schedules and timestep respacing for pixel and latent diffusion.

A :class:`Chain` is a discrete diffusion process: levels ``0 .. N-1`` with cumulative
signal rates ``alphas_cumprod[k]`` (level ``-1`` is the clean image), and the timestep of
the *trained* model each level stands for (``timesteps[k]``). The full training chain has
``timesteps = 0 .. T-1``; a respaced chain (Nichol & Dhariwal 2021, sec. 4) keeps a subset
of the levels and recomputes its betas so that ``alphas_cumprod`` is unchanged at the kept
levels. Everything a sampler needs (posterior, undo step) is defined on a chain, so the same
code runs on 1000, 250 or 25 levels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from zoo.errors import ZooError

BETA_SCHEDULES = ("linear", "cosine")


def make_betas(kind: str, num_timesteps: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    """Betas (T,) in float64.

    ``linear``: Ho et al. 2020, scaled by 1000 / T as in guided-diffusion so any T keeps the
    same total noise (for T = 1000: linspace(1e-4, 0.02)). ``cosine``: Nichol & Dhariwal
    2021, eq. 17, betas clipped at 0.999.
    """
    if kind == "linear":
        scale = 1000 / num_timesteps
        return torch.linspace(scale * beta_start, scale * beta_end, num_timesteps, dtype=torch.float64)
    if kind == "cosine":
        def f(t: float) -> float:
            return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2

        betas = [min(1 - f((i + 1) / num_timesteps) / f(i / num_timesteps), 0.999) for i in range(num_timesteps)]
        return torch.tensor(betas, dtype=torch.float64)
    raise ZooError(f"unknown beta schedule {kind!r}; valid choices: {', '.join(BETA_SCHEDULES)}")


@dataclass
class Chain:
    """A discrete diffusion chain (all tensors float64, length N = number of levels).

    ``betas[k]`` takes level ``k-1`` to level ``k`` (level -1 = clean image), so
    ``alphas_cumprod = cumprod(1 - betas)``; ``timesteps[k]`` is the model timestep of level k.
    """

    betas: torch.Tensor  # (N,)
    timesteps: torch.Tensor  # (N,) long

    def __post_init__(self) -> None:
        self.alphas_cumprod = torch.cumprod(1.0 - self.betas, dim=0)  # (N,)
        # alpha-bar of the level below: level -1 (clean) has alpha-bar 1
        self.alphas_cumprod_prev = torch.cat([torch.ones(1, dtype=torch.float64), self.alphas_cumprod[:-1]])
        # q(x_{k-1} | x_k, x_0) variance (Ho et al. eq. 7), and its log clipped at level 0
        self.posterior_variance = self.betas * (1 - self.alphas_cumprod_prev) / (1 - self.alphas_cumprod)
        pv = self.posterior_variance
        self.posterior_log_variance_clipped = torch.log(torch.cat([pv[1:2], pv[1:]]))

    def __len__(self) -> int:
        return len(self.betas)

    @classmethod
    def from_betas(cls, betas: torch.Tensor) -> "Chain":
        betas = torch.as_tensor(betas, dtype=torch.float64)
        return cls(betas, torch.arange(len(betas)))

    def respace(self, num_steps: int) -> "Chain":
        """Keep ``num_steps`` evenly spread levels (guided-diffusion's ``space_timesteps``
        with one section: round(i * (N - 1) / (num_steps - 1)))."""
        n = len(self)
        if not 1 <= num_steps <= n:
            raise ZooError(f"cannot respace a {n}-step chain to {num_steps} steps; choose 1 to {n}")
        if num_steps == n:
            return self
        stride = (n - 1) / (num_steps - 1) if num_steps > 1 else 0.0
        keep = sorted({round(i * stride) for i in range(num_steps)})
        ac = self.alphas_cumprod[keep]
        prev = torch.cat([torch.ones(1, dtype=torch.float64), ac[:-1]])
        return Chain(1 - ac / prev, self.timesteps[keep])

    def q_sample(self, x0: torch.Tensor, level: torch.Tensor | int, noise: torch.Tensor) -> torch.Tensor:
        """Forward process: x_k = sqrt(abar_k) x0 + sqrt(1 - abar_k) noise (Ho et al. eq. 4)."""
        a = _at(self.alphas_cumprod, level, x0)
        return a.sqrt() * x0 + (1 - a).sqrt() * noise


def _at(table: torch.Tensor, index: torch.Tensor | int, like: torch.Tensor) -> torch.Tensor:
    """table[index] broadcast to ``like`` (B, 1, 1, 1), in ``like``'s dtype and device."""
    idx = torch.as_tensor(index, device=table.device).long()
    out = table[idx].to(device=like.device, dtype=like.dtype)
    return out.reshape(-1, *([1] * (like.dim() - 1))) if out.dim() else out
