"""guided-diffusion's UNet (Dhariwal & Nichol 2021), written natively with the same
parameter names, so published checkpoints (openai/guided-diffusion, andreas128/RePaint's
``celeba256_250000.pt`` / ``places256_300000.pt``) load with ``strict=True``.

Layout of the state dict (the published key names)::

    time_embed.{0,2}                    sinusoidal(t) -> MLP, width 4C
    label_emb                           class-conditional models only: (num_classes, 4C), added
    input_blocks.0.0                    conv 3x3, in -> C
    input_blocks.i.{0: ResBlock, 1: AttentionBlock?} | .0: ResBlock(down) / Downsample
    middle_block.{0: ResBlock, 1: AttentionBlock, 2: ResBlock}
    output_blocks.j.{0: ResBlock(cat skip), 1: Attention?, last: ResBlock(up) / Upsample}
    out.{0: GroupNorm, 2: conv 3x3 -> out_channels (2x with learned variance)}

ResBlock: in_layers.{0 norm, 2 conv}, emb_layers.1 (2 * out with scale-shift norm),
out_layers.{0 norm, 3 conv}, skip_connection (1x1 conv when channels change).
AttentionBlock: norm, qkv (1-d conv, heads split *before* q/k/v: "legacy" order), proj_out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint


@dataclass
class GuidedUNetConfig:
    image_size: int = 256  # only used to turn attention resolutions into downsampling factors
    in_channels: int = 3
    model_channels: int = 256  # C ("num_channels" in guided-diffusion's flags)
    out_channels: int = 6  # 3, or 6 with learned variance (learn_sigma)
    num_res_blocks: int = 2
    attention_resolutions: tuple[int, ...] = (32, 16, 8)  # feature-map sizes with attention
    channel_mult: tuple[int, ...] = (1, 1, 2, 2, 4, 4)
    dropout: float = 0.0
    num_heads: int = 4  # used when num_head_channels == -1
    num_head_channels: int = 64  # channels per attention head (-1: use num_heads)
    use_scale_shift_norm: bool = True
    resblock_updown: bool = True
    grad_checkpointing: bool = False
    num_classes: int | None = None  # class-conditional (guided-diffusion's ImageNet models): label_emb


class GroupNorm32(nn.GroupNorm):
    """GroupNorm(32) computed in float32 (as guided-diffusion's ``normalization``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.float()).type(x.dtype)


def norm(ch: int) -> GroupNorm32:
    return GroupNorm32(min(32, ch), ch)


def timestep_embedding(t: torch.Tensor, dim: int, max_period: int = 10000) -> torch.Tensor:
    """(B,) timesteps -> (B, dim) [cos | sin] features (guided-diffusion order: cos first)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t[:, None].float() * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    return F.pad(emb, (0, 1)) if dim % 2 else emb


class Upsample(nn.Module):
    def __init__(self, ch: int, use_conv: bool, out_ch: int | None = None) -> None:
        super().__init__()
        self.use_conv = use_conv
        if use_conv:
            self.conv = nn.Conv2d(ch, out_ch or ch, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        return self.conv(x) if self.use_conv else x


class Downsample(nn.Module):
    def __init__(self, ch: int, use_conv: bool, out_ch: int | None = None) -> None:
        super().__init__()
        self.op = nn.Conv2d(ch, out_ch or ch, 3, stride=2, padding=1) if use_conv else nn.AvgPool2d(2, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv, timestep FiLM (scale-shift) or add, GroupNorm-SiLU-dropout-conv,
    residual; ``up`` / ``down`` resample inside the block (BigGAN style)."""

    def __init__(self, ch: int, emb_ch: int, dropout: float, out_ch: int, scale_shift: bool, up: bool = False, down: bool = False) -> None:
        super().__init__()
        self.scale_shift = scale_shift
        self.in_layers = nn.Sequential(norm(ch), nn.SiLU(), nn.Conv2d(ch, out_ch, 3, padding=1))
        self.updown = up or down
        if up:
            self.h_upd, self.x_upd = Upsample(ch, False), Upsample(ch, False)
        elif down:
            self.h_upd, self.x_upd = Downsample(ch, False), Downsample(ch, False)
        else:
            self.h_upd = self.x_upd = nn.Identity()
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_ch, 2 * out_ch if scale_shift else out_ch))
        self.out_layers = nn.Sequential(norm(out_ch), nn.SiLU(), nn.Dropout(dropout), nn.Conv2d(out_ch, out_ch, 3, padding=1))
        nn.init.zeros_(self.out_layers[3].weight)
        nn.init.zeros_(self.out_layers[3].bias)
        self.skip_connection = nn.Identity() if out_ch == ch else nn.Conv2d(ch, out_ch, 1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        if self.updown:  # norm + act, resample, then conv; the skip path is resampled too
            h = self.in_layers[2](self.h_upd(self.in_layers[:2](x)))
            x = self.x_upd(x)
        else:
            h = self.in_layers(x)  # (B, out, H, W)
        e = self.emb_layers(emb).type(h.dtype)[..., None, None]  # (B, out or 2 out, 1, 1)
        if self.scale_shift:
            scale, shift = e.chunk(2, dim=1)
            h = self.out_layers[0](h) * (1 + scale) + shift
            h = self.out_layers[1:](h)
        else:
            h = self.out_layers(h + e)
        return self.skip_connection(x) + h


class AttentionBlock(nn.Module):
    """Self-attention over all positions; qkv laid out per head as [q | k | v] (legacy order)."""

    def __init__(self, ch: int, num_heads: int, num_head_channels: int) -> None:
        super().__init__()
        self.heads = num_heads if num_head_channels == -1 else ch // num_head_channels
        self.norm = norm(ch)
        self.qkv = nn.Conv1d(ch, 3 * ch, 1)
        self.proj_out = nn.Conv1d(ch, ch, 1)
        nn.init.zeros_(self.proj_out.weight)
        nn.init.zeros_(self.proj_out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        flat = x.reshape(b, c, h * w)  # (B, C, N)
        qkv = self.qkv(self.norm(flat)).reshape(b * self.heads, 3 * c // self.heads, h * w)
        q, k, v = qkv.transpose(1, 2).chunk(3, dim=-1)  # each (B*heads, N, d)
        a = F.scaled_dot_product_attention(q, k, v)  # (B*heads, N, d)
        a = a.transpose(1, 2).reshape(b, c, h * w)
        return (flat + self.proj_out(a)).reshape(b, c, h, w)


class EmbedSequential(nn.Sequential):
    """Passes the timestep embedding to the ResBlocks inside."""

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        for layer in self:
            x = layer(x, emb) if isinstance(layer, ResBlock) else layer(x)
        return x


class GuidedUNet(nn.Module):
    """eps (and variance) predicting UNet: (B, in, H, W), (B,) timesteps [, (B,) classes] -> (B, out, H, W)."""

    def __init__(self, cfg: GuidedUNetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        C, emb_ch = cfg.model_channels, cfg.model_channels * 4
        attn_ds = {cfg.image_size // r for r in cfg.attention_resolutions}

        def res(ch_in: int, ch_out: int, **kw) -> ResBlock:
            return ResBlock(ch_in, emb_ch, cfg.dropout, ch_out, cfg.use_scale_shift_norm, **kw)

        def attn(ch: int) -> AttentionBlock:
            return AttentionBlock(ch, cfg.num_heads, cfg.num_head_channels)

        self.time_embed = nn.Sequential(nn.Linear(C, emb_ch), nn.SiLU(), nn.Linear(emb_ch, emb_ch))
        if cfg.num_classes is not None:
            self.label_emb = nn.Embedding(cfg.num_classes, emb_ch)  # added to the timestep embedding
        self.input_blocks = nn.ModuleList([EmbedSequential(nn.Conv2d(cfg.in_channels, C, 3, padding=1))])
        skip_chs, ch, ds = [C], C, 1
        for level, mult in enumerate(cfg.channel_mult):
            for _ in range(cfg.num_res_blocks):
                layers: list[nn.Module] = [res(ch, mult * C)]
                ch = mult * C
                if ds in attn_ds:
                    layers.append(attn(ch))
                self.input_blocks.append(EmbedSequential(*layers))
                skip_chs.append(ch)
            if level != len(cfg.channel_mult) - 1:
                down = res(ch, ch, down=True) if cfg.resblock_updown else Downsample(ch, True)
                self.input_blocks.append(EmbedSequential(down))
                skip_chs.append(ch)
                ds *= 2
        self.middle_block = EmbedSequential(res(ch, ch), attn(ch), res(ch, ch))
        self.output_blocks = nn.ModuleList()
        for level, mult in list(enumerate(cfg.channel_mult))[::-1]:
            for i in range(cfg.num_res_blocks + 1):
                layers = [res(ch + skip_chs.pop(), mult * C)]
                ch = mult * C
                if ds in attn_ds:
                    layers.append(attn(ch))
                if level and i == cfg.num_res_blocks:
                    layers.append(res(ch, ch, up=True) if cfg.resblock_updown else Upsample(ch, True))
                    ds //= 2
                self.output_blocks.append(EmbedSequential(*layers))
        self.out = nn.Sequential(norm(ch), nn.SiLU(), nn.Conv2d(C, cfg.out_channels, 3, padding=1))
        nn.init.zeros_(self.out[2].weight)
        nn.init.zeros_(self.out[2].bias)

    def _run(self, block: nn.Module, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        if self.cfg.grad_checkpointing and self.training and torch.is_grad_enabled():
            return checkpoint(block, h, emb, use_reentrant=False)
        return block(h, emb)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """``y`` (B,) class indices: required by a class-conditional UNet, refused by another."""
        if (y is None) != (self.cfg.num_classes is None):
            raise ValueError("a class-conditional UNet needs y (B,) class indices; an unconditional one takes none")
        emb = self.time_embed(timestep_embedding(t, self.cfg.model_channels))  # (B, 4C)
        if y is not None:
            emb = emb + self.label_emb(y)  # (B, 4C)
        h, skips = x, []
        for block in self.input_blocks:  # down to (B, C * mult[-1], H / 2**(L-1), ...)
            h = self._run(block, h, emb)
            skips.append(h)
        h = self._run(self.middle_block, h, emb)
        for block in self.output_blocks:  # back up, concatenating the skips
            h = self._run(block, torch.cat([h, skips.pop()], dim=1), emb)
        return self.out(h)  # (B, out_channels, H, W)
