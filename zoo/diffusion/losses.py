"""Training losses of an eps-predicting diffusion model (Ho et al. 2020; Nichol & Dhariwal
2021 for the learned variance) and the hole-restricted denoising loss used as a score."""

from __future__ import annotations

import math

import torch

from zoo.diffusion.schedule import Chain, _at
from zoo.diffusion.steps import predict_x0, split_output


def normal_kl(mean1, logvar1, mean2, logvar2):
    """KL(N(mean1, e^logvar1) || N(mean2, e^logvar2)), elementwise, in nats."""
    return 0.5 * (-1.0 + logvar2 - logvar1 + torch.exp(logvar1 - logvar2) + (mean1 - mean2) ** 2 * torch.exp(-logvar2))


def _approx_std_normal_cdf(x):
    return 0.5 * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def discretized_gaussian_nll(x, mean, log_scale):
    """-log p(x) of 8-bit data x in [-1, 1] under a Gaussian discretised to 256 bins (Ho et al. sec. 3.3)."""
    centered = x - mean
    inv_std = torch.exp(-log_scale)
    cdf_plus = _approx_std_normal_cdf(inv_std * (centered + 1.0 / 255.0))
    cdf_min = _approx_std_normal_cdf(inv_std * (centered - 1.0 / 255.0))
    log_cdf_plus = torch.log(cdf_plus.clamp(min=1e-12))
    log_one_minus_cdf_min = torch.log((1.0 - cdf_min).clamp(min=1e-12))
    log_probs = torch.where(
        x < -0.999, log_cdf_plus, torch.where(x > 0.999, log_one_minus_cdf_min, torch.log((cdf_plus - cdf_min).clamp(min=1e-12)))
    )
    return -log_probs


def vlb_term(chain: Chain, x0, x_t, t, eps, v, clip: bool = False):
    """Per-image variational bound term L_{t-1} in bits/dim for the learned variance, with
    the mean frozen (the eps MSE trains the mean): Nichol & Dhariwal 2021, sec. 3.1.
    The x0 estimate is left unclipped, as guided-diffusion's ``training_losses`` computes it
    (``_vb_terms_bpd(..., clip_denoised=False)``); ``clip=True`` clips it to [-1, 1]."""
    eps = eps.detach()
    a, a_prev, beta = (_at(x, t, x0) for x in (chain.alphas_cumprod, chain.alphas_cumprod_prev, chain.betas))
    c1 = beta * a_prev.sqrt() / (1 - a)
    c2 = (1 - a_prev) * (1 - beta).sqrt() / (1 - a)
    true_mean = c1 * x0 + c2 * x_t
    true_logvar = _at(chain.posterior_log_variance_clipped, t, x0)
    x0_pred = (x_t - (1 - a).sqrt() * eps) / a.sqrt()
    x0_pred = x0_pred.clamp(-1, 1) if clip else x0_pred
    mean = c1 * x0_pred + c2 * x_t
    frac = (v + 1) / 2
    logvar = frac * torch.log(beta) + (1 - frac) * true_logvar
    kl = normal_kl(true_mean, true_logvar, mean, logvar).flatten(1).mean(1) / math.log(2.0)
    nll = discretized_gaussian_nll(x0, mean, 0.5 * logvar).flatten(1).mean(1) / math.log(2.0)
    return torch.where(t == 0, nll, kl)  # (B,)


def diffusion_loss(model, chain: Chain, x0: torch.Tensor, generator: torch.Generator | None = None, learn_sigma: bool = False, clip: bool = False):
    """One training loss: t ~ U{0..T-1}, x_t = q(x_t | x0), MSE on eps (+ the VLB term for a
    learned variance: the "hybrid" loss, L_simple + L_vlb * T / 1000). Returns (loss, logs).
    ``clip``: clip the x0 estimate of the VLB term to [-1, 1] (default False: guided-diffusion)."""
    b = x0.shape[0]
    t = torch.randint(0, len(chain), (b,), device=x0.device, generator=generator)
    noise = torch.randn(x0.shape, device=x0.device, dtype=x0.dtype, generator=generator)
    x_t = chain.q_sample(x0, t, noise)
    out = model(x_t, chain.timesteps.to(x0.device)[t])
    eps, v = split_output(out, x0.shape[1])
    mse = (eps.float() - noise.float()).pow(2).mean()
    logs = {"mse": mse.item()}
    loss = mse
    if learn_sigma:
        if v is None:
            raise ValueError("learn_sigma needs a network with 2x output channels")
        vb = vlb_term(chain, x0.float(), x_t.float(), t, eps.float(), v.float(), clip=clip).mean() * len(chain) / 1000.0
        loss = loss + vb
        logs["vb"] = vb.item()
    logs["loss"] = loss.item()
    return loss, logs


@torch.no_grad()
def hole_denoising_loss(model, chain: Chain, x0: torch.Tensor, holes: torch.Tensor, levels: list[int], seed: int = 0) -> torch.Tensor:
    """Per image: eps-MSE on hole pixels only, averaged over the fixed ``levels`` with a fixed
    noise per level (seeded), so two calls on the same inputs agree. Returns (B,)."""
    g = torch.Generator().manual_seed(seed)
    w = holes.expand_as(x0).float()
    total = torch.zeros(x0.shape[0], device=x0.device)
    for k in levels:
        noise = torch.randn(x0.shape, generator=g).to(x0)
        t = torch.full((x0.shape[0],), k, device=x0.device, dtype=torch.long)
        eps, _ = split_output(model(chain.q_sample(x0, t, noise), chain.timesteps.to(x0.device)[t]), x0.shape[1])
        err = (eps.float() - noise.float()).pow(2) * w
        total += err.flatten(1).sum(1) / w.flatten(1).sum(1).clamp_min(1)
    return total / len(levels)


__all__ = ["diffusion_loss", "hole_denoising_loss", "vlb_term", "normal_kl", "discretized_gaussian_nll", "predict_x0"]
