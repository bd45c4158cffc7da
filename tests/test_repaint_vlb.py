"""The VLB term of the prior's hybrid loss, as guided-diffusion computes it in training:
on the unclipped x0 estimate (``_vb_terms_bpd(..., clip_denoised=False)``), unless
``vlb_clip_denoised=true`` (issue 26, item 3)."""

from __future__ import annotations

import dataclasses
import math

import torch

from zoo.config import apply_overrides
from zoo.diffusion import Chain, make_betas
from zoo.diffusion.losses import diffusion_loss, normal_kl, vlb_term
from zoo_plugins.repaint.config import PRESETS, RepaintConfig
from zoo_plugins.repaint.train import PriorTask


class LoudEps(torch.nn.Module):
    """Predicts a large eps (x0 estimate far outside [-1, 1]) and a fixed variance mix."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x, t):
        return torch.cat([3.0 * torch.ones_like(x) + self.w, 0.3 * torch.ones_like(x)], dim=1)


def test_vlb_term_uses_the_unclipped_mean_of_ho_et_al_eq_11():
    chain = Chain.from_betas(make_betas("linear", 1000))
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(2, 3, 8, 8, generator=g) * 2 - 1
    t = torch.tensor([500, 900])
    noise = torch.randn(x0.shape, generator=g)
    x_t = chain.q_sample(x0, t, noise)
    eps = 3.0 * torch.ones_like(x0)  # x0 estimate far outside [-1, 1] at these levels
    v = 0.3 * torch.ones_like(x0)
    # reference: mu = (x_t - beta / sqrt(1 - abar) eps) / sqrt(alpha)  (Ho et al. eq. 11: no clipping)
    beta, abar = chain.betas[t].view(-1, 1, 1, 1), chain.alphas_cumprod[t].view(-1, 1, 1, 1)
    abar_prev = chain.alphas_cumprod_prev[t].view(-1, 1, 1, 1)
    mu = (x_t - beta / (1 - abar).sqrt() * eps) / (1 - beta).sqrt()
    true_mean = (beta * abar_prev.sqrt() * x0 + (1 - abar_prev) * (1 - beta).sqrt() * x_t) / (1 - abar)
    true_logvar = torch.log(beta * (1 - abar_prev) / (1 - abar))
    logvar = 0.65 * torch.log(beta) + 0.35 * true_logvar
    expected = normal_kl(true_mean, true_logvar, mu, logvar).flatten(1).mean(1) / math.log(2.0)
    got = vlb_term(chain, x0, x_t, t, eps, v)
    assert torch.allclose(got, expected.float(), rtol=1e-4)
    clipped = vlb_term(chain, x0, x_t, t, eps, v, clip=True)
    assert not torch.allclose(clipped, expected.float(), rtol=1e-2)


def _task_loss(cfg: RepaintConfig) -> float:
    task = PriorTask(LoudEps(), cfg)
    x = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(1)) * 2 - 1
    torch.manual_seed(3)
    loss, logs = task.loss({"image": x}, 0)
    return logs["vb"]


def _direct(cfg: RepaintConfig, clip: bool) -> float:
    x = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(1)) * 2 - 1
    torch.manual_seed(3)
    chain = Chain.from_betas(make_betas(cfg.beta_schedule, cfg.diffusion_steps, cfg.beta_start, cfg.beta_end))
    return diffusion_loss(LoudEps(), chain, x, learn_sigma=True, clip=clip)[1]["vb"]


def test_training_default_is_guided_diffusions_and_the_field_switches_it():
    cfg = apply_overrides(RepaintConfig(), PRESETS["tiny"])
    assert cfg.vlb_clip_denoised is False and cfg.learn_sigma
    unclipped, clipped = _direct(cfg, False), _direct(cfg, True)
    assert abs(unclipped - clipped) > 1e-3 * abs(unclipped)  # the choice matters for this output
    assert math.isclose(_task_loss(cfg), unclipped, rel_tol=1e-6)
    assert math.isclose(_task_loss(dataclasses.replace(cfg, vlb_clip_denoised=True)), clipped, rel_tol=1e-6)
