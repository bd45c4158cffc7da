"""Single steps on a :class:`~zoo.diffusion.schedule.Chain`: the model's x0 estimate, the
reverse step (DDPM posterior with fixed or learned variance, or DDIM with eta), and RePaint's
undo step. ``level`` is an int; tensors are (B, C, H, W)."""

from __future__ import annotations

import torch

from zoo.diffusion.schedule import Chain

SAMPLERS = ("ddpm", "ddim")


def split_output(out: torch.Tensor, channels: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Network output -> (eps, v). ``v`` in [-1, 1] is the learned-variance interpolation
    (Nichol & Dhariwal 2021, eq. 15) when the network has 2 * channels outputs, else None."""
    if out.shape[1] == 2 * channels:
        return out[:, :channels], out[:, channels:]
    return out, None


def predict_x0(chain: Chain, x: torch.Tensor, level: int, eps: torch.Tensor, clip: bool = True) -> torch.Tensor:
    """x0 = (x_k - sqrt(1 - abar_k) eps) / sqrt(abar_k)  (Ho et al. eq. 15), clipped to [-1, 1]."""
    a = float(chain.alphas_cumprod[level])
    x0 = (x - (1 - a) ** 0.5 * eps) / a**0.5
    return x0.clamp(-1, 1) if clip else x0


def reverse_step(
    chain: Chain,
    x: torch.Tensor,
    level: int,
    out: torch.Tensor,
    noise: torch.Tensor,
    sampler: str = "ddpm",
    eta: float = 1.0,
    clip: bool = True,
    guidance: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """x_k -> x_{k-1} from the network output ``out`` at level k; returns (x_{k-1}, x0).

    ``ddpm``: mean of q(x_{k-1} | x_k, x0) (Ho et al. eq. 7) with the learned variance when
    ``out`` carries one (exp(v' log beta_k + (1 - v') log beta~_k), v' = (v + 1) / 2), else the
    posterior variance beta~_k. ``ddim``: Song et al. 2021 eq. 12 with sigma = eta *
    sqrt(beta~_k), the direction term using the network's eps (as diffusers does). No noise is
    added at level 0.

    ``guidance``: a gradient of log p(y | x_k) (classifier guidance, already scaled). ``ddpm``
    shifts the mean by variance x guidance (Sohl-Dickstein et al. 2015; guided-diffusion's
    ``condition_mean``, also at level 0); ``ddim`` shifts eps by -sqrt(1 - abar_k) x guidance
    (guided-diffusion's ``condition_score``) before x0 and the step are computed from it.
    """
    eps, v = split_output(out, x.shape[1])
    if guidance is not None and sampler == "ddim":
        eps = eps - (1 - float(chain.alphas_cumprod[level])) ** 0.5 * guidance
    x0 = predict_x0(chain, x, level, eps, clip)
    a_prev = float(chain.alphas_cumprod_prev[level])
    if sampler == "ddim":
        sigma = eta * float(chain.posterior_variance[level]) ** 0.5
        prev = a_prev**0.5 * x0 + max(1 - a_prev - sigma**2, 0.0) ** 0.5 * eps
        if level > 0 and eta > 0:
            prev = prev + sigma * noise
        return prev, x0
    if sampler != "ddpm":
        raise ValueError(f"unknown sampler {sampler!r}; valid: {SAMPLERS}")
    a, beta = float(chain.alphas_cumprod[level]), float(chain.betas[level])
    coef1 = beta * a_prev**0.5 / (1 - a)  # posterior mean coefficients (Ho et al. eq. 7)
    coef2 = (1 - a_prev) * (1 - beta) ** 0.5 / (1 - a)
    mean = coef1 * x0 + coef2 * x
    min_log = float(chain.posterior_log_variance_clipped[level])
    log_var: torch.Tensor | float
    if v is None:
        log_var = min_log
    else:
        frac = (v + 1) / 2
        log_var = frac * torch.log(chain.betas[level]).item() + (1 - frac) * min_log
    if guidance is not None:  # mean + variance * grad (guided-diffusion's condition_mean)
        var = torch.tensor(log_var).exp().item() if v is None else torch.exp(log_var)
        mean = mean + var * guidance.to(mean.dtype)
    if level == 0:
        return mean, x0
    if v is None:
        std = torch.tensor(log_var).mul(0.5).exp().item()
        return mean + std * noise, x0
    return mean + torch.exp(0.5 * log_var) * noise, x0


def undo_step(chain: Chain, x: torch.Tensor, to_level: int, noise: torch.Tensor) -> torch.Tensor:
    """RePaint's re-noising: x_k = sqrt(1 - beta_k) x_{k-1} + sqrt(beta_k) eps (Algorithm 1, line 13)."""
    beta = float(chain.betas[to_level])
    return (1 - beta) ** 0.5 * x + beta**0.5 * noise
