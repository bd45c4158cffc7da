"""guided-diffusion's noisy-image classifier (Dhariwal & Nichol 2021, sec. 4), written natively
with the published parameter names so that files such as ``256x256_classifier.pt`` (the
``EncoderUNetModel`` of openai/guided-diffusion) load with ``strict=True``; and the gradient
that classifier guidance adds to each reverse step (``cond_fn`` of ``classifier_sample.py``).

Layout of the state dict: the down half of the UNet (:mod:`zoo.diffusion.guided_unet`)::

    time_embed.{0,2}, input_blocks.*, middle_block.{0,1,2}     as in the UNet
    out.0 GroupNorm, out.2 AttentionPool2d:                     pool="attention" (published)
        positional_embedding (C, (S*S + 1)), qkv_proj (1-d conv C -> 3C), c_proj (C -> classes)
    out.0 GroupNorm, out.3 conv 1x1 C -> classes:               pool="adaptive"

Read from the shapes: the base width, the width of every level, attention levels, scale-shift
norm, resblock up/down, the classes, and (attention pool) the training resolution, S * 2**(L-1).
Not readable: the residual blocks per level (the published 2, ``classifier_depth``) and the
channels per attention head (64 in guided-diffusion's ``create_classifier``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from zoo.diffusion.guided_unet import AttentionBlock, Downsample, EmbedSequential, ResBlock, norm, timestep_embedding
from zoo.errors import ZooError
from zoo.official import load_official, tensors_only

HEAD_CHANNELS = 64  # guided-diffusion's create_classifier: num_head_channels=64


@dataclass(frozen=True)
class ClassifierConfig:
    model_channels: int  # C ("classifier_width": 128 published)
    widths: tuple[int, ...]  # channels of each level (C x channel_mult)
    num_res_blocks: int  # "classifier_depth": 2 published
    attention_levels: tuple[int, ...]  # levels (0 = full size) with self-attention
    classes: int  # 1000 published
    pool: str = "attention"  # "attention" (published) | "adaptive"
    image_size: int | None = None  # training resolution (attention pool only; adaptive takes any)
    use_scale_shift_norm: bool = True
    resblock_updown: bool = True
    num_head_channels: int = HEAD_CHANNELS


class AttentionPool2d(nn.Module):
    """CLIP-style attention pooling: the mean token attends to all positions (heads split
    after q/k/v, guided-diffusion's ``QKVAttention``); returns the mean token's output."""

    def __init__(self, spatial: int, ch: int, head_channels: int, out: int) -> None:
        super().__init__()
        self.positional_embedding = nn.Parameter(torch.randn(ch, spatial**2 + 1) / ch**0.5)
        self.qkv_proj = nn.Conv1d(ch, 3 * ch, 1)
        self.c_proj = nn.Conv1d(ch, out, 1)
        self.heads = ch // head_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c = x.shape[:2]
        x = x.reshape(b, c, -1)  # (B, C, N)
        x = torch.cat([x.mean(dim=-1, keepdim=True), x], dim=-1) + self.positional_embedding[None].to(x.dtype)  # (B, C, N + 1)
        q, k, v = self.qkv_proj(x).chunk(3, dim=1)  # each (B, C, N + 1)
        n = x.shape[-1]
        q, k, v = (z.reshape(b * self.heads, c // self.heads, n).transpose(1, 2) for z in (q, k, v))  # (B*heads, N + 1, d)
        a = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, c, n)  # (B, C, N + 1)
        return self.c_proj(a)[:, :, 0]  # (B, classes)


class NoisyClassifier(nn.Module):
    """x_t (B, 3, H, W), t (B,) -> class logits (B, classes)."""

    def __init__(self, cfg: ClassifierConfig) -> None:
        super().__init__()
        self.cfg = cfg
        C, emb_ch = cfg.model_channels, cfg.model_channels * 4

        def res(ch_in: int, ch_out: int, **kw) -> ResBlock:
            return ResBlock(ch_in, emb_ch, 0.0, ch_out, cfg.use_scale_shift_norm, **kw)

        self.time_embed = nn.Sequential(nn.Linear(C, emb_ch), nn.SiLU(), nn.Linear(emb_ch, emb_ch))
        ch = cfg.widths[0]
        self.input_blocks = nn.ModuleList([EmbedSequential(nn.Conv2d(3, ch, 3, padding=1))])
        for level, width in enumerate(cfg.widths):
            for _ in range(cfg.num_res_blocks):
                layers: list[nn.Module] = [res(ch, width)]
                ch = width
                if level in cfg.attention_levels:
                    layers.append(AttentionBlock(ch, 1, cfg.num_head_channels))
                self.input_blocks.append(EmbedSequential(*layers))
            if level != len(cfg.widths) - 1:
                self.input_blocks.append(EmbedSequential(res(ch, ch, down=True) if cfg.resblock_updown else Downsample(ch, True)))
        self.middle_block = EmbedSequential(res(ch, ch), AttentionBlock(ch, 1, cfg.num_head_channels), res(ch, ch))
        if cfg.pool == "attention":
            spatial = cfg.image_size // 2 ** (len(cfg.widths) - 1)
            self.out = nn.Sequential(norm(ch), nn.SiLU(), AttentionPool2d(spatial, ch, cfg.num_head_channels, cfg.classes))
        else:
            self.out = nn.Sequential(norm(ch), nn.SiLU(), nn.AdaptiveAvgPool2d(1), nn.Conv2d(ch, cfg.classes, 1), nn.Flatten())

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        emb = self.time_embed(timestep_embedding(t, self.cfg.model_channels))  # (B, 4C)
        h = x
        for block in self.input_blocks:  # down to (B, widths[-1], H / 2**(L-1), ...)
            h = block(h, emb)
        return self.out(self.middle_block(h, emb))  # (B, classes)


def _ids(sd: dict[str, torch.Tensor], prefix: str) -> list[int]:
    return sorted({int(m.group(1)) for k in sd if (m := re.match(rf"{prefix}\.(\d+)\.", k))})


def infer_classifier_config(sd: dict[str, torch.Tensor], depth: int, name: str = "the classifier") -> ClassifierConfig:
    """The architecture of an ``EncoderUNetModel`` state dict with ``depth`` blocks per level."""
    try:
        C = sd["time_embed.0.weight"].shape[1]
        blocks = len(_ids(sd, "input_blocks"))
        if blocks % (depth + 1):
            raise ZooError(f"{name}: {blocks} input blocks do not make levels of classifier_depth={depth} residual blocks and a downsampler; --set classifier_depth=N (published: 2)")
        levels = blocks // (depth + 1)
        widths = tuple(sd[f"input_blocks.{1 + lvl * (depth + 1)}.0.out_layers.3.weight"].shape[0] for lvl in range(levels))
        downs = [1 + lvl * (depth + 1) + depth for lvl in range(levels - 1)]
        if any(f"input_blocks.{i}.0.in_layers.2.weight" not in sd and f"input_blocks.{i}.0.op.weight" not in sd for i in downs):
            raise ZooError(f"{name}: no downsampler where classifier_depth={depth} puts one; --set classifier_depth=N (published: 2)")
        updown = all(f"input_blocks.{i}.0.in_layers.2.weight" in sd for i in downs)
        first = sd["input_blocks.1.0.emb_layers.1.weight"].shape[0]
        scale_shift = first == 2 * sd["input_blocks.1.0.out_layers.3.weight"].shape[0]
        attention = tuple(lvl for lvl in range(levels) if f"input_blocks.{1 + lvl * (depth + 1)}.1.qkv.weight" in sd)
    except KeyError as exc:
        raise ZooError(f"{name} is not a guided-diffusion classifier (EncoderUNetModel) state dict (missing {exc})") from None
    if "out.2.positional_embedding" in sd:
        tokens = sd["out.2.positional_embedding"].shape[1] - 1
        spatial = math.isqrt(tokens)
        pool, classes, size = "attention", sd["out.2.c_proj.weight"].shape[0], spatial * 2 ** (levels - 1)
    elif "out.3.weight" in sd:
        pool, classes, size = "adaptive", sd["out.3.weight"].shape[0], None
    else:
        raise ZooError(f"{name}: its pooling head is not supported; valid choices: attention (published), adaptive")
    return ClassifierConfig(C, widths, depth, attention, classes, pool, size, scale_shift, updown)


def load_classifier(path: str | Path, depth: int = 2) -> NoisyClassifier:
    """A guided-diffusion classifier file (``.pt`` read without executing code, or
    ``.safetensors``) -> the classifier in eval mode, loaded strictly."""
    path = Path(path)
    if not path.is_file():
        raise ZooError(f"classifier {path} does not exist" if not path.exists() else f"classifier {path} is not a file")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        sd = load_file(str(path))
    else:
        obj = load_official(path)
        sd = tensors_only(obj.get("state_dict", obj) if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict) else obj)
    cfg = infer_classifier_config(sd, depth, f"classifier {path.name}")
    model = NoisyClassifier(cfg)
    try:
        model.load_state_dict({k: v.float() for k, v in sd.items()}, strict=True)
    except RuntimeError as exc:
        raise ZooError(f"classifier {path.name} does not load as read from its shapes ({str(exc).splitlines()[1].strip()[:160]})") from None
    return model.eval().requires_grad_(False)


def classifier_gradient(classifier: nn.Module, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor, scale: float) -> torch.Tensor:
    """``scale * d/dx log p(y | x_t, t)`` (B, 3, H, W): guided-diffusion's ``cond_fn``."""
    with torch.enable_grad():
        x_in = x.detach().float().requires_grad_(True)
        log_probs = F.log_softmax(classifier(x_in, t), dim=-1)  # (B, classes)
        picked = log_probs[torch.arange(len(y), device=y.device), y].sum()
        return torch.autograd.grad(picked, x_in)[0] * scale


__all__ = ["AttentionPool2d", "ClassifierConfig", "NoisyClassifier", "classifier_gradient", "infer_classifier_config", "load_classifier"]
