"""The RePaint prior: an unconditional eps-predicting UNet, x_t (B, 3, H, W), t (B,) ->
eps (B, 3, H, W) or [eps | v] (B, 6, H, W) with a learned variance; and its noise chain."""

from __future__ import annotations

from zoo.diffusion import Chain
from zoo.diffusion.guided_unet import GuidedUNetConfig
from zoo.diffusion.prior import UNetPrior, guided_unet_config, prior_chain
from zoo_plugins.repaint.config import RepaintConfig


def unet_config(cfg: RepaintConfig) -> GuidedUNetConfig:
    return guided_unet_config(cfg)


class RepaintPrior(UNetPrior):
    """The shared prior (zoo.diffusion.prior) on repaint's config; checkpoint keys ``unet.*``."""


def make_chain(cfg: RepaintConfig) -> Chain:
    """The training chain (T levels) of the prior."""
    return prior_chain(cfg)
