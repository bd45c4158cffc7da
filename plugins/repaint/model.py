"""The RePaint prior: an unconditional eps-predicting UNet, x_t (B, 3, H, W), t (B,) ->
eps (B, 3, H, W) or [eps | v] (B, 6, H, W) with a learned variance; and its noise chain."""

from __future__ import annotations

import torch
import torch.nn as nn

from zoo.diffusion import Chain, make_betas
from zoo.diffusion.guided_unet import GuidedUNet, GuidedUNetConfig
from zoo_plugins.repaint.config import RepaintConfig


def unet_config(cfg: RepaintConfig) -> GuidedUNetConfig:
    return GuidedUNetConfig(
        image_size=cfg.resolution,
        in_channels=3,
        model_channels=cfg.channels,
        out_channels=6 if cfg.learn_sigma else 3,
        num_res_blocks=cfg.num_res_blocks,
        attention_resolutions=tuple(cfg.attention_resolutions),
        channel_mult=tuple(cfg.channel_mult),
        dropout=cfg.dropout,
        num_head_channels=-1 if cfg.num_head_channels is None else cfg.num_head_channels,
        num_heads=cfg.num_heads,
        use_scale_shift_norm=cfg.use_scale_shift_norm,
        resblock_updown=cfg.resblock_updown,
    )


class RepaintPrior(nn.Module):
    """Holds the denoiser as ``self.unet`` (checkpoint keys ``unet.*``)."""

    def __init__(self, cfg: RepaintConfig) -> None:
        super().__init__()
        self.cfg = cfg
        if cfg.backbone == "diffusers":
            from diffusers import UNet2DModel

            self.unet = UNet2DModel.from_config(dict(cfg.diffusers_unet))
            self.multiple = 2 ** (len(self.unet.config.block_out_channels) - 1)
        else:
            self.unet = GuidedUNet(unet_config(cfg))
            self.multiple = 2 ** (len(cfg.channel_mult) - 1)

    def set_grad_checkpointing(self, on: bool) -> None:
        if isinstance(self.unet, GuidedUNet):
            self.unet.cfg.grad_checkpointing = on
        elif on:
            self.unet.enable_gradient_checkpointing()

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if self.cfg.backbone == "diffusers":
            return self.unet(x, t).sample
        return self.unet(x, t)


def make_chain(cfg: RepaintConfig) -> Chain:
    """The training chain (T levels) of the prior."""
    return Chain.from_betas(make_betas(cfg.beta_schedule, cfg.diffusion_steps, cfg.beta_start, cfg.beta_end))


def num_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
