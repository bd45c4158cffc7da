"""The two baseline models: a parameter-free OpenCV fill and a small dilated conv net."""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from zoo.imageio import tensor_to_uint8, uint8_to_tensor
from zoo_plugins.baselines.config import ConvL1Config, TeleaConfig


class TeleaFill(nn.Module):
    """OpenCV inpainting (fast marching or Navier-Stokes); no parameters, nothing to train."""

    def __init__(self, config: TeleaConfig) -> None:
        super().__init__()
        self.flag = cv2.INPAINT_TELEA if config.algorithm == "telea" else cv2.INPAINT_NS
        self.radius = config.radius

    def forward(self, images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        out = []
        for img, mask in zip(images, masks):  # (3, H, W), (1, H, W)
            rgb = tensor_to_uint8(img)
            hole = (mask[0].cpu().numpy() > 0.5).astype(np.uint8)
            filled = cv2.inpaint(np.ascontiguousarray(rgb), hole, self.radius, self.flag)
            out.append(uint8_to_tensor(filled))
        return torch.stack(out).to(images)


class ResBlock(nn.Module):
    def __init__(self, ch: int, dilation: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(ch, ch, 3, padding=dilation, dilation=dilation)
        self.conv2 = nn.Conv2d(ch, ch, 3, padding=1)
        self.norm1 = nn.GroupNorm(8, ch)
        self.norm2 = nn.GroupNorm(8, ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return x + h


class ConvL1Net(nn.Module):
    """Encoder (stride-2 convs) -> dilated residual blocks -> decoder (upsample + conv).

    Input: masked image and mask, (B, 4, H, W); output (B, 3, H, W) in [-1, 1].
    """

    def __init__(self, config: ConvL1Config) -> None:
        super().__init__()
        ch = config.channels
        self.multiple = 2**config.downsamplings
        self.stem = nn.Conv2d(4, ch, 5, padding=2)
        down, c = [], ch
        for _ in range(config.downsamplings):
            down += [nn.Conv2d(c, c * 2, 4, stride=2, padding=1), nn.GroupNorm(8, c * 2), nn.SiLU()]
            c *= 2
        self.down = nn.Sequential(*down)
        self.middle = nn.Sequential(*[ResBlock(c, d) for d in config.dilations])
        up = []
        for _ in range(config.downsamplings):
            up += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c, c // 2, 3, padding=1), nn.GroupNorm(8, c // 2), nn.SiLU()]
            c //= 2
        self.up = nn.Sequential(*up)
        self.head = nn.Conv2d(c, 3, 3, padding=1)

    def forward(self, images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        h, w = images.shape[-2:]
        ph, pw = (-h) % self.multiple, (-w) % self.multiple
        x = torch.cat([images * (1 - masks), masks], dim=1)  # (B, 4, H, W): holes zeroed
        x = F.pad(x, (0, pw, 0, ph), mode="reflect" if min(h, w) > max(ph, pw) else "replicate")
        x = self.stem(x)  # (B, C, H, W)
        x = self.down(x)  # (B, C * 2**n, H / 2**n, W / 2**n)
        x = self.middle(x)
        x = self.up(x)  # (B, C, H, W)
        out = torch.tanh(self.head(x))
        return out[..., :h, :w] if ph or pw else out  # no needless view (FSDP warns about views)
