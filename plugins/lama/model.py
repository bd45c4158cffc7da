"""LaMa's networks: the FFC-ResNet generator and the pix2pixHD n-layer PatchGAN.

Fast Fourier Convolution (Chi et al., NeurIPS 2020) splits the channels of a feature map
into a *local* part (ordinary convolutions) and a *global* part (a spectral transform whose
receptive field is the whole image). An FFC layer has four paths::

    local  --conv-->  local        global --conv-->  local
    local  --conv-->  global       global --spectral transform--> global

Module and attribute names follow the official code (``saicinpainting/training/modules/
ffc.py`` and ``pix2pixhd.py`` of advimman/lama), so the state dict of :class:`LaMa` uses the
published key names one-to-one: ``generator.model.<i>...`` and ``discriminator.model<n>...``.
Internally the generator works on [0, 1] images and ends in a sigmoid, as published;
:meth:`LaMa.forward` converts from and to the zoo's [-1, 1].
"""

from __future__ import annotations

import torch
import torch.nn as nn
from torch.utils.checkpoint import checkpoint

from zoo_plugins.lama.config import LamaConfig

#: A local/global pair of feature maps; either part may be absent (None).
Pair = tuple["torch.Tensor | None", "torch.Tensor | None"]


def _add(a: torch.Tensor | None, b: torch.Tensor | None) -> torch.Tensor | None:
    if a is None:
        return b
    return a if b is None else a + b


# -- spectral transform ---------------------------------------------------------------------
class FourierUnit(nn.Module):
    """Pointwise conv in the frequency domain: a global receptive field in one layer.

    (B, C, H, W) -> rfft2 (ortho) -> real/imag as channels (B, 2C, H, W//2+1) -> 1x1 conv,
    BN, ReLU -> back to complex -> irfft2 -> (B, C_out, H, W).
    """

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv_layer = nn.Conv2d(in_ch * 2, out_ch * 2, kernel_size=1, bias=False)
        self.bn = nn.BatchNorm2d(out_ch * 2)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        ff = torch.fft.rfftn(x.float(), dim=(-2, -1), norm="ortho")  # (B, C, H, W//2+1) complex
        ff = torch.stack((ff.real, ff.imag), dim=2)  # (B, C, 2, H, Wf): channel 2c = re, 2c+1 = im
        ff = ff.reshape(b, -1, h, ff.shape[-1])  # (B, 2C, H, Wf)
        ff = self.relu(self.bn(self.conv_layer(ff)))  # (B, 2C', H, Wf)
        ff = ff.float().reshape(b, -1, 2, h, ff.shape[-1])  # (B, C', 2, H, Wf)
        ff = torch.complex(ff[:, :, 0], ff[:, :, 1])
        return torch.fft.irfftn(ff, s=(h, w), dim=(-2, -1), norm="ortho")  # (B, C', H, W)


class SpectralTransform(nn.Module):
    """The global->global path: 1x1 conv + BN + ReLU to half the channels, Fourier unit
    (plus the optional local Fourier unit on 2x2 tiles), residual sum, 1x1 conv out."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1, enable_lfu: bool = False) -> None:
        super().__init__()
        self.enable_lfu = enable_lfu
        self.downsample = nn.AvgPool2d(kernel_size=2, stride=2) if stride == 2 else nn.Identity()
        half = out_ch // 2
        self.conv1 = nn.Sequential(nn.Conv2d(in_ch, half, kernel_size=1, bias=False), nn.BatchNorm2d(half), nn.ReLU(inplace=True))
        self.fu = FourierUnit(half, half)
        if enable_lfu:
            self.lfu = FourierUnit(half, half)
        self.conv2 = nn.Conv2d(half, out_ch, kernel_size=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(self.downsample(x))  # (B, C/2, H, W)
        out = x + self.fu(x)
        if self.enable_lfu:
            # a quarter of the channels, cut into 2x2 tiles stacked as channels (as the
            # official code orders them: TL, BL, TR, BR), one Fourier unit, tiled back
            c, h, w = x.shape[1:]
            xs = torch.cat(torch.split(x[:, : c // 4], h // 2, dim=-2), dim=1)
            xs = torch.cat(torch.split(xs, w // 2, dim=-1), dim=1)  # (B, C/2, H/2, W/2)
            out = out + self.lfu(xs).repeat(1, 1, 2, 2)
        return self.conv2(out)


# -- FFC layers -----------------------------------------------------------------------------
class FFC(nn.Module):
    """The four paths of a Fast Fourier Convolution; ``ratio_gin`` / ``ratio_gout`` are the
    global shares of the input / output channels (a path with no channels is absent)."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, ratio_gin: float, ratio_gout: float,
                 stride: int = 1, padding: int = 0, dilation: int = 1, enable_lfu: bool = False) -> None:
        super().__init__()
        in_g = int(in_ch * ratio_gin)
        in_l = in_ch - in_g
        out_g = int(out_ch * ratio_gout)
        out_l = out_ch - out_g
        self.global_in_num = in_g

        def conv(i: int, o: int) -> nn.Module | None:
            if not (i and o):
                return None
            return nn.Conv2d(i, o, kernel_size, stride, padding, dilation, bias=False, padding_mode="reflect")

        self.convl2l = conv(in_l, out_l)
        self.convl2g = conv(in_l, out_g)
        self.convg2l = conv(in_g, out_l)
        self.convg2g = SpectralTransform(in_g, out_g, stride, enable_lfu) if in_g and out_g else None

    def forward(self, x: Pair) -> Pair:
        x_l, x_g = x
        out_l = _add(self.convl2l(x_l) if self.convl2l else None, self.convg2l(x_g) if self.convg2l else None)
        out_g = _add(self.convl2g(x_l) if self.convl2g else None, self.convg2g(x_g) if self.convg2g else None)
        return out_l, out_g


class FFC_BN_ACT(nn.Module):
    """FFC, then BatchNorm and an activation on each part (``FFC_BN_ACT`` upstream)."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, ratio_gin: float, ratio_gout: float,
                 stride: int = 1, padding: int = 0, dilation: int = 1, enable_lfu: bool = False,
                 activation: type[nn.Module] = nn.ReLU) -> None:
        super().__init__()
        self.ffc = FFC(in_ch, out_ch, kernel_size, ratio_gin, ratio_gout, stride, padding, dilation, enable_lfu)
        out_g = int(out_ch * ratio_gout)
        self.bn_l = nn.BatchNorm2d(out_ch - out_g) if out_ch - out_g else None
        self.bn_g = nn.BatchNorm2d(out_g) if out_g else None
        self.act = activation(inplace=True)

    def forward(self, x: Pair | torch.Tensor) -> Pair:
        if isinstance(x, torch.Tensor):
            x = (x, None)
        x_l, x_g = self.ffc(x)
        x_l = self.act(self.bn_l(x_l)) if x_l is not None else None
        x_g = self.act(self.bn_g(x_g)) if x_g is not None else None
        return x_l, x_g


class FFCResnetBlock(nn.Module):
    """Two 3x3 FFC_BN_ACT layers with a residual connection on both parts."""

    def __init__(self, dim: int, ratio_g: float, enable_lfu: bool = False, dilation: int = 1) -> None:
        super().__init__()
        kw = dict(ratio_gin=ratio_g, ratio_gout=ratio_g, padding=dilation, dilation=dilation, enable_lfu=enable_lfu)
        self.conv1 = FFC_BN_ACT(dim, dim, 3, **kw)
        self.conv2 = FFC_BN_ACT(dim, dim, 3, **kw)

    def forward(self, x: Pair) -> Pair:
        y_l, y_g = self.conv2(self.conv1(x))
        return _add(x[0], y_l), _add(x[1], y_g)


class ConcatTupleLayer(nn.Module):
    """(local, global) -> one tensor, channels concatenated local first."""

    def forward(self, x: Pair) -> torch.Tensor:
        parts = [t for t in x if t is not None]
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)


# -- generator ------------------------------------------------------------------------------
class FFCResNetGenerator(nn.Module):
    """(B, 4, H, W) masked image in [0, 1] + mask -> (B, 3, H, W) in [0, 1].

    ``model`` is one ``nn.Sequential`` whose indices are those of the official generator::

        0      reflection pad 3          1      7x7 FFC stem (all local)          (B, ngf, H, W)
        2..    stride-2 FFCs (all local; the last one splits local/global)       (B, 8 ngf, H/8, W/8)
        ..     n_blocks FFC residual blocks                                      (local, global)
        ..     concat                                                           (B, 8 ngf, H/8, W/8)
        ..     3 x (ConvTranspose stride 2, BN, ReLU)                            (B, ngf, H, W)
        ..     reflection pad 3, 7x7 conv, sigmoid                               (B, 3, H, W)
    """

    def __init__(self, config: LamaConfig, input_nc: int = 4, output_nc: int = 3) -> None:
        super().__init__()
        ngf, n_down, cap = config.ngf, config.n_downsampling, config.max_features
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), FFC_BN_ACT(input_nc, ngf, 7, 0.0, 0.0)]
        for i in range(n_down):
            ratio_out = config.ratio_g if i == n_down - 1 else 0.0
            layers.append(FFC_BN_ACT(min(cap, ngf * 2**i), min(cap, ngf * 2 ** (i + 1)), 3, 0.0, ratio_out, stride=2, padding=1))
        dim = min(cap, ngf * 2**n_down)
        layers += [FFCResnetBlock(dim, config.ratio_g, config.enable_lfu) for _ in range(config.n_blocks)]
        layers.append(ConcatTupleLayer())
        for i in range(n_down):
            c_in, c_out = min(cap, ngf * 2 ** (n_down - i)), min(cap, ngf * 2 ** (n_down - i) // 2)
            layers += [nn.ConvTranspose2d(c_in, c_out, 3, stride=2, padding=1, output_padding=1), nn.BatchNorm2d(c_out), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, 7), nn.Sigmoid()]
        self.model = nn.Sequential(*layers)
        self.grad_checkpointing = False

    def enable_grad_checkpointing(self) -> None:
        """Recompute the residual blocks' activations in the backward pass (less memory).
        BatchNorm running statistics then see each batch twice per step."""
        self.grad_checkpointing = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.grad_checkpointing and self.training and torch.is_grad_enabled()):
            return self.model(x)
        for layer in self.model:
            if isinstance(layer, FFCResnetBlock):
                x = checkpoint(lambda a, b, blk=layer: blk((a, b)), *x, use_reentrant=False)
            else:
                x = layer(x)
        return x


# -- discriminator --------------------------------------------------------------------------
class NLayerDiscriminator(nn.Module):
    """pix2pixHD PatchGAN on [0, 1] images: ``model0`` .. ``model{n+1}``.

    Returns (logits (B, 1, h, w), [activation of every layer but the last]) — the
    activations feed the feature-matching loss.
    """

    def __init__(self, input_nc: int = 3, ndf: int = 64, n_layers: int = 4) -> None:
        super().__init__()
        self.n_layers = n_layers
        kw, pad = 4, 2
        seq: list[list[nn.Module]] = [[nn.Conv2d(input_nc, ndf, kw, 2, pad), nn.LeakyReLU(0.2, True)]]
        nf = ndf
        for _ in range(1, n_layers):
            nf_prev, nf = nf, min(nf * 2, 512)
            seq.append([nn.Conv2d(nf_prev, nf, kw, 2, pad), nn.BatchNorm2d(nf), nn.LeakyReLU(0.2, True)])
        nf_prev, nf = nf, min(nf * 2, 512)
        seq.append([nn.Conv2d(nf_prev, nf, kw, 1, pad), nn.BatchNorm2d(nf), nn.LeakyReLU(0.2, True)])
        seq.append([nn.Conv2d(nf, 1, kw, 1, pad)])
        for n, layers in enumerate(seq):
            setattr(self, f"model{n}", nn.Sequential(*layers))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        feats = []
        for n in range(self.n_layers + 2):
            x = getattr(self, f"model{n}")(x)
            feats.append(x)
        return feats[-1], feats[:-1]


# -- the zoo model --------------------------------------------------------------------------
class LaMa(nn.Module):
    """Generator (+ discriminator when ``config.discriminator``); what a checkpoint holds.

    ``forward(images, masks)``: images (B, 3, H, W) in [-1, 1], masks (B, 1, H, W) with
    1 = hole, H and W multiples of ``2**n_downsampling`` -> raw prediction (B, 3, H, W) in
    [-1, 1] (not composited; :func:`zoo_plugins.lama.sample.inpaint` pads and composites).
    """

    def __init__(self, config: LamaConfig) -> None:
        super().__init__()
        self.config = config
        self.multiple = 2**config.n_downsampling
        self.generator = FFCResNetGenerator(config)
        self.discriminator = NLayerDiscriminator(3, config.ndf, config.d_layers) if config.discriminator else None

    def generate01(self, image01: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """LaMa's own convention: [0, 1] image and mask -> [0, 1] prediction."""
        x = torch.cat([image01 * (1 - mask), mask], dim=1)  # (B, 4, H, W): hole zeroed + mask
        return self.generator(x)

    def forward(self, images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        h, w = images.shape[-2:]
        if h % self.multiple or w % self.multiple:
            raise ValueError(f"LaMa input {h}x{w} is not a multiple of {self.multiple}; pad first (sample.inpaint does)")
        pred01 = self.generate01((images + 1) / 2, masks)
        return pred01 * 2 - 1
