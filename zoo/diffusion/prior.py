"""An unconditional eps-predicting UNet prior, shared by every method that samples one
(``repaint``, ``dip-ddpm``): guided-diffusion's UNet (native, checkpoint keys ``unet.*`` as
published) or a diffusers ``UNet2DModel`` for imported diffusers folders.

x_t (B, 3, H, W), t (B,) [, y (B,) classes] -> eps (B, 3, H, W), or [eps | v] (B, 6, H, W) with a
learned variance. A guided UNet is class-conditional when the config's ``num_classes`` is set
(guided-diffusion's ImageNet models).

The config is any object with the prior's fields: ``backbone`` (``guided`` | ``diffusers``),
``diffusers_unet``, ``resolution``, ``channels``, ``channel_mult``, ``num_res_blocks``,
``attention_resolutions``, ``num_head_channels`` (None: a fixed ``num_heads``), ``dropout``,
``use_scale_shift_norm``, ``resblock_updown``, ``learn_sigma``; and for :func:`prior_chain`
``beta_schedule``, ``diffusion_steps``, ``beta_start``, ``beta_end``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from zoo.diffusion.guided_unet import GuidedUNet, GuidedUNetConfig
from zoo.diffusion.schedule import Chain, make_betas


def guided_unet_config(cfg: Any) -> GuidedUNetConfig:
    """The guided-diffusion UNet of a prior config."""
    head_channels = getattr(cfg, "num_head_channels", 64)
    return GuidedUNetConfig(
        image_size=cfg.resolution,
        in_channels=3,
        model_channels=cfg.channels,
        out_channels=6 if cfg.learn_sigma else 3,
        num_res_blocks=cfg.num_res_blocks,
        attention_resolutions=tuple(cfg.attention_resolutions),
        channel_mult=tuple(cfg.channel_mult),
        dropout=cfg.dropout,
        num_head_channels=-1 if head_channels is None else head_channels,
        num_heads=getattr(cfg, "num_heads", 4),
        use_scale_shift_norm=cfg.use_scale_shift_norm,
        resblock_updown=cfg.resblock_updown,
        num_classes=getattr(cfg, "num_classes", None),
    )


class UNetPrior(nn.Module):
    """Holds the denoiser as ``self.unet``; ``multiple`` is the side length inputs are padded to."""

    def __init__(self, cfg: Any) -> None:
        super().__init__()
        self.cfg = cfg
        self.diffusers = cfg.backbone == "diffusers"
        if self.diffusers:
            from diffusers import UNet2DModel

            self.unet = UNet2DModel.from_config(dict(cfg.diffusers_unet))
            self.multiple = 2 ** (len(self.unet.config.block_out_channels) - 1)
        else:
            self.unet = GuidedUNet(guided_unet_config(cfg))
            self.multiple = 2 ** (len(cfg.channel_mult) - 1)

    def set_grad_checkpointing(self, on: bool = True) -> None:
        """The switch the training engine looks for (``--grad-checkpointing``)."""
        if self.diffusers:
            self.unet.enable_gradient_checkpointing() if on else self.unet.disable_gradient_checkpointing()
        else:
            self.unet.cfg.grad_checkpointing = on

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """``y`` (B,): class indices of a class-conditional guided UNet (``num_classes``)."""
        return self.unet(x, t).sample if self.diffusers else self.unet(x, t, y)


def prior_chain(cfg: Any) -> Chain:
    """The prior's training chain (T levels)."""
    return Chain.from_betas(make_betas(cfg.beta_schedule, cfg.diffusion_steps, cfg.beta_start, cfg.beta_end))
