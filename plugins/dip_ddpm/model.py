"""Networks of ``dip-ddpm``.

* :class:`SkipNet` — Deep Image Prior's ``skip`` encoder-decoder (Ulyanov et al. 2018,
  ``models/skip.py`` of the official code), **one independent network per image, run as
  one batched model**: every conv is a grouped convolution with ``groups = G`` (G images),
  activations live as (1, G * C, H, W), and BatchNorm over (1, G * C, H, W) normalises
  each image's channels over its own pixels, which is exactly what DIP's BatchNorm does on
  its batch of one. So G networks train in one forward / backward, with Adam (elementwise)
  keeping them independent; nothing mixes across groups.
* :class:`EpsPrior` — the unconditional eps-predicting DDPM prior: guided-diffusion's UNet
  (native, ``unet.*`` keys as published) or a diffusers ``UNet2DModel`` for imported
  folders; the same key layout as ``repaint``'s prior, so its checkpoints load as-is.
* :class:`DipDdpm` — what a checkpoint holds: the prior as ``prior.unet.*``. DIP has no
  weights to store: it is fitted to every image at sample time.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from zoo.diffusion import Chain
from zoo.diffusion.guided_unet import GuidedUNetConfig
from zoo.diffusion.prior import UNetPrior, guided_unet_config, prior_chain
from zoo_plugins.dip_ddpm.config import DipDdpmConfig


# -- stage 1: Deep Image Prior's `skip` network, G networks at once -------------------------
class GConv(nn.Module):
    """G independent convs (reflection padding): (1, G*cin, H, W) -> (1, G*cout, H/s, W/s)."""

    def __init__(self, groups: int, cin: int, cout: int, k: int, stride: int = 1) -> None:
        super().__init__()
        self.groups, self.cin, self.k, self.stride = groups, cin, k, stride
        self.weight = nn.Parameter(torch.empty(groups * cout, cin, k, k))  # (G*cout, cin, k, k)
        self.bias = nn.Parameter(torch.empty(groups * cout))

    def reset_parameters(self, generator: torch.Generator | None) -> None:
        # PyTorch's Conv2d default (kaiming_uniform, a = sqrt(5)): U(-1/sqrt(fan_in), +), per network
        bound = 1 / math.sqrt(self.cin * self.k * self.k)
        with torch.no_grad():
            for p in (self.weight, self.bias):
                p.copy_(torch.rand(p.shape, generator=generator) * 2 * bound - bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.k // 2
        if p:
            x = F.pad(x, (p, p, p, p), mode="reflect" if min(x.shape[-2:]) > p else "replicate")
        return F.conv2d(x, self.weight, self.bias, stride=self.stride, groups=self.groups)


def gbn(groups: int, ch: int) -> nn.BatchNorm2d:
    """Per-image, per-channel BatchNorm (train-mode statistics always, as DIP uses it)."""
    return nn.BatchNorm2d(groups * ch, track_running_stats=False)


def conv_bn_act(groups: int, cin: int, cout: int, k: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(GConv(groups, cin, cout, k, stride), gbn(groups, cout), nn.LeakyReLU(0.2))


def gcat(groups: int, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Concatenate channels per network: (1, G*ca, H, W), (1, G*cb, H, W) -> (1, G*(ca+cb), H, W)."""
    h, w = a.shape[-2:]
    return torch.cat([a.reshape(groups, -1, h, w), b.reshape(groups, -1, h, w)], dim=1).reshape(1, -1, h, w)


class SkipLevel(nn.Module):
    """One scale of ``skip``: [skip branch | down (stride-2 conv, conv) -> deeper -> nearest x2]
    concatenated, BatchNorm, conv 3x3, conv 1x1 (``need1x1_up``)."""

    def __init__(self, groups: int, cin: int, down: int, up: int, skip: int, inner: "SkipLevel | None") -> None:
        super().__init__()
        self.groups = groups
        self.skip = conv_bn_act(groups, cin, skip, 1) if skip else None
        self.down = nn.Sequential(conv_bn_act(groups, cin, down, 3, stride=2), conv_bn_act(groups, down, down, 3))
        self.inner = inner
        k = inner.out_channels if inner is not None else down
        self.cat_bn = gbn(groups, skip + k)
        self.up = nn.Sequential(conv_bn_act(groups, skip + k, up, 3), conv_bn_act(groups, up, up, 1))
        self.out_channels = up

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = self.down(x)  # (1, G*down, H/2, W/2)
        if self.inner is not None:
            d = self.inner(d)  # (1, G*up_inner, H/2, W/2)
        d = F.interpolate(d, scale_factor=2, mode="nearest")  # (1, G*k, H, W)
        if self.skip is not None:
            d = gcat(self.groups, self.skip(x), d)  # (1, G*(skip+k), H, W)
        return self.up(self.cat_bn(d))  # (1, G*up, H, W)


class SkipNet(nn.Module):
    """G DIP ``skip`` networks: z (G, Cz, H, W) -> images (G, 3, H, W) in [0, 1] (sigmoid).

    H and W must be multiples of 2 ** depth."""

    def __init__(self, groups: int, cfg: DipDdpmConfig, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.groups, self.depth = groups, len(cfg.dip_channels_down)
        inner: SkipLevel | None = None
        for i in reversed(range(self.depth)):  # built from the deepest scale outwards
            cin = cfg.dip_input_channels if i == 0 else cfg.dip_channels_down[i - 1]
            inner = SkipLevel(groups, cin, cfg.dip_channels_down[i], cfg.dip_channels_up[i], cfg.dip_channels_skip[i], inner)
        self.body = inner
        self.head = GConv(groups, cfg.dip_channels_up[0], 3, 1)
        for m in self.modules():
            if isinstance(m, GConv):
                m.reset_parameters(generator)

    @property
    def multiple(self) -> int:
        return 2**self.depth

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        g, c, h, w = z.shape
        y = self.head(self.body(z.reshape(1, g * c, h, w)))  # (1, G*3, H, W)
        return torch.sigmoid(y).reshape(g, 3, h, w)


# -- stage 2: the DDPM prior ------------------------------------------------------------------
def unet_config(cfg: DipDdpmConfig) -> GuidedUNetConfig:
    return guided_unet_config(cfg)


class EpsPrior(UNetPrior):
    """The shared prior (zoo.diffusion.prior): x_t, t -> eps or [eps | v]; UNet as ``unet``."""


class DipDdpm(nn.Module):
    """The checkpointed part of dip-ddpm: the prior (``prior.unet.*``)."""

    def __init__(self, cfg: DipDdpmConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.prior = EpsPrior(cfg)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.prior(x, t)


def make_chain(cfg: DipDdpmConfig) -> Chain:
    """The prior's training chain (T levels)."""
    return prior_chain(cfg)


def refine_chain(cfg: DipDdpmConfig) -> Chain:
    """The chain stage 2 walks: training levels 0..t0 (their alpha-bars unchanged), respaced
    to ``refine_steps`` evenly spread levels; its top level is the model timestep t0."""
    full = make_chain(cfg)
    sub = Chain(full.betas[: cfg.t0 + 1].clone(), full.timesteps[: cfg.t0 + 1].clone())
    return sub.respace(cfg.refine_steps)
