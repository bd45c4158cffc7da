"""MAT's networks: the two-stage mask-aware transformer generator and its two-headed discriminator.

Li et al., "MAT: Mask-Aware Transformer for Large Hole Image Inpainting", CVPR 2022. Module and
attribute names follow ``networks/mat.py`` of fenglinglwb/MAT, so the generator's state dict
uses the published key names one to one (``mapping.*``, ``synthesis.first_stage.*``,
``synthesis.enc.*``, ``synthesis.to_square.*``, ``synthesis.to_style.*``, ``synthesis.dec.*``).

Generator (internally MAT's mask convention, 1 = known; :class:`MAT` converts)::

    z --mapping--> w (B, num_ws, w_dim)
    first stage (coarse):
      [known - 0.5, image * known] --partial conv--> (B, dim, H, W)
        --partial conv, stride 2, x down_times--> tokens (B, token_res^2, dim) + token mask
      transformer: 5 stages of window-MCA blocks at token_res, /2, /4, /2, token_res
        (the first two with the mask: keys of invalid tokens are left out, and after each
        block a window's tokens all become valid if one was: the dynamic mask update;
        MAT's adjusted block: no LayerNorm, shortcut and attention output fused by a linear
        layer, then an MLP)
      style manipulation at the bottleneck: half the features (Bernoulli draws) replaced by a
        map from w; a global style code from the features; style = [global, w]
      conv tail: style-modulated up-convs with skips back to the image size -> RGB
    second stage (refine): conv encoder of [known - 0.5, composite, image * known] down to
      16x16, the same noise mixing and a global style, StyleGAN2-like decoder with per-pixel
      noise back to the image size. Both outputs are composited with the known pixels.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from zoo.layers import contextual_attention, shift_region_labels, window_partition, window_reverse
from zoo_plugins.mat.config import MatConfig
from zoo_plugins.mat.layers import Conv2dLayer, Draws, FullyConnectedLayer, MappingNet, StyleConv, ToRGB

STAGE_FACTORS = (1, 2, 4, 2, 1)  # token grid of each transformer stage: token_res / factor
STAGE_RATIOS = (1, 0.5, 0.5, 2, 2)  # resampling at the start of each stage


def token2feature(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B, N, C) -> (B, C, H, W)."""
    B, N, C = x.shape
    return x.permute(0, 2, 1).reshape(B, C, *size)


def feature2token(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, H * W, C)."""
    B, C = x.shape[:2]
    return x.reshape(B, C, -1).transpose(1, 2)


def maybe_checkpoint(fn, *args, on: bool):
    """``fn(*args)``, recomputed in backward when ``on`` (and gradients are recorded). The
    global RNG state is restored for the recomputation, so noise drawn from it repeats."""
    if on and torch.is_grad_enabled():
        return checkpoint(fn, *args, use_reentrant=False)
    return fn(*args)


# -- partial convolution --------------------------------------------------------------------
class PartialConv(nn.Module):
    """Conv whose output at a position is rescaled by kernel area / number of valid inputs
    under the kernel (0 where none is valid); the new mask is 1 wherever one was valid.
    (``Conv2dLayerPartial``.) x (B, in, H, W), mask (B, 1, H, W) or None."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, activation: str = "lrelu", up: int = 1, down: int = 1) -> None:
        super().__init__()
        self.conv = Conv2dLayer(in_channels, out_channels, kernel_size, activation=activation, up=up, down=down)
        self.kernel_size, self.stride = kernel_size, down
        self.padding = kernel_size // 2 if kernel_size % 2 == 1 else 0

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        if mask is None:
            return self.conv(x), None
        with torch.no_grad():
            k = self.kernel_size
            ones = torch.ones(1, 1, k, k, device=x.device, dtype=x.dtype)
            count = F.conv2d(mask.to(x.dtype), ones, stride=self.stride, padding=self.padding)  # valid inputs per window
            ratio = k * k / (count + 1e-8)
            new_mask = count.clamp(0, 1)
            ratio = ratio * new_mask
        return self.conv(x) * ratio, new_mask


# -- the transformer body -------------------------------------------------------------------
class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = FullyConnectedLayer(dim, hidden, activation="lrelu")
        self.fc2 = FullyConnectedLayer(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.fc1(x))


class WindowAttention(nn.Module):
    """MAT's multi-head contextual attention in a window: q and k from the L2-normalised
    tokens, v from the raw ones, separate equalized-lr q/k/v layers; the masking and the
    validity update are :func:`zoo.layers.contextual_attention`.

    x (Bw, N, C), valid (Bw, N) or None, allowed (Bw, N, N) bool or None
    -> (Bw, N, C), new valid (Bw, N) or None."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.q = FullyConnectedLayer(dim, dim)
        self.k = FullyConnectedLayer(dim, dim)
        self.v = FullyConnectedLayer(dim, dim)
        self.proj = FullyConnectedLayer(dim, dim)

    def forward(self, x: torch.Tensor, valid: torch.Tensor | None, allowed: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        Bw, N, C = x.shape
        heads = lambda t: t.reshape(Bw, N, self.num_heads, C // self.num_heads).transpose(1, 2)  # noqa: E731  (Bw, h, N, d)
        norm_x = F.normalize(x, p=2.0, dim=-1)
        q, k, v = heads(self.q(norm_x)), heads(self.k(norm_x)), heads(self.v(x))
        keys_valid = valid if valid is not None else torch.ones(Bw, N, device=x.device, dtype=torch.bool)
        out, new_valid = contextual_attention(q, k, v, keys_valid, allowed)  # (Bw, h, N, d)
        out = self.proj(out.transpose(1, 2).reshape(Bw, N, C))
        return out, (new_valid if valid is not None else None)


def shift_labels_mask(size: tuple[int, int], window: int, shift: int) -> torch.Tensor:
    """Swin's shifted-window mask as MAT stores it: (nW, N, N) float, 0 where query and key
    come from the same region of the rolled image, -100 elsewhere."""
    win = shift_region_labels(size, window, shift)  # (nW, N), on the CPU even while a model is built on meta
    diff = win.unsqueeze(1) - win.unsqueeze(2)
    return torch.where(diff != 0, -100.0, 0.0)


class SwinTransformerBlock(nn.Module):
    """MAT's adjusted transformer block (no LayerNorm):

        a = WindowMCA(windows(roll(x)))        # keys of invalid tokens left out
        x = MLP(FC_lrelu([x, a]))              # fuse shortcut and attention output, then MLP

    x (B, N, C), mask (B, N, 1) or None -> (B, N, C), updated mask."""

    def __init__(self, dim: int, input_resolution: tuple[int, int], num_heads: int, window_size: int, shift_size: int, mlp_ratio: float) -> None:
        super().__init__()
        self.input_resolution = tuple(input_resolution)
        self.window_size, self.shift_size = window_size, shift_size
        if min(self.input_resolution) <= self.window_size:  # one window covers the grid: no shift
            self.shift_size = 0
            self.window_size = min(self.input_resolution)
        self.attn = WindowAttention(dim, num_heads)
        self.fuse = FullyConnectedLayer(dim * 2, dim, activation="lrelu")
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        mask = shift_labels_mask(self.input_resolution, self.window_size, self.shift_size) if self.shift_size > 0 else None
        self.register_buffer("attn_mask", mask)

    def allowed(self, size: tuple[int, int], batch: int, device: torch.device) -> torch.Tensor | None:
        """(B * nW, N, N) bool: True where the shifted-window layout lets a query see a key."""
        if self.shift_size == 0:
            return None
        labels = self.attn_mask if tuple(size) == self.input_resolution else shift_labels_mask(size, self.window_size, self.shift_size).to(device)
        allowed = labels == 0  # (nW, N, N)
        return allowed.unsqueeze(0).expand(batch, *allowed.shape).reshape(-1, *allowed.shape[1:])

    def forward(self, x: torch.Tensor, x_size: tuple[int, int], mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        H, W = x_size
        B, L, C = x.shape
        w, s = self.window_size, self.shift_size
        shortcut = x
        x = x.view(B, H, W, C)
        if mask is not None:
            mask = mask.view(B, H, W, 1)
        if s > 0:  # cyclic shift
            x = torch.roll(x, shifts=(-s, -s), dims=(1, 2))
            mask = torch.roll(mask, shifts=(-s, -s), dims=(1, 2)) if mask is not None else None
        x_win = window_partition(x, w)  # (B * nW, N, C)
        valid = window_partition(mask, w).squeeze(-1) if mask is not None else None  # (B * nW, N)
        attn, valid = self.attn(x_win, valid, self.allowed((H, W), B, x.device))
        x = window_reverse(attn, w, H, W)  # (B, H, W, C)
        if valid is not None:
            mask = window_reverse(valid.to(x.dtype).unsqueeze(-1), w, H, W)
        if s > 0:
            x = torch.roll(x, shifts=(s, s), dims=(1, 2))
            mask = torch.roll(mask, shifts=(s, s), dims=(1, 2)) if mask is not None else None
        x = x.reshape(B, H * W, C)
        mask = mask.reshape(B, H * W, 1) if mask is not None else None
        x = self.fuse(torch.cat([shortcut, x], dim=-1))
        return self.mlp(x), mask


class PatchMerging(nn.Module):
    """Tokens -> stride-2 partial conv -> tokens at half the grid (mask follows)."""

    def __init__(self, in_channels: int, out_channels: int, down: int = 2) -> None:
        super().__init__()
        self.conv = PartialConv(in_channels, out_channels, 3, down=down)
        self.down = down

    def forward(self, x, x_size, mask=None):
        x = token2feature(x, x_size)
        mask = token2feature(mask, x_size) if mask is not None else None
        x, mask = self.conv(x, mask)
        x_size = (x_size[0] // self.down, x_size[1] // self.down)
        return feature2token(x), x_size, (feature2token(mask) if mask is not None else None)


class PatchUpsampling(nn.Module):
    """Tokens -> 2x up-conv -> tokens at twice the grid (used without a mask, as in MAT)."""

    def __init__(self, in_channels: int, out_channels: int, up: int = 2) -> None:
        super().__init__()
        self.conv = PartialConv(in_channels, out_channels, 3, up=up)
        self.up = up

    def forward(self, x, x_size, mask=None):
        x, _ = self.conv(token2feature(x, x_size), None)
        return feature2token(x), (x_size[0] * self.up, x_size[1] * self.up), None


class BasicLayer(nn.Module):
    """One transformer stage: resample, ``depth`` blocks (odd ones shifted by half a window),
    a partial conv, plus the stage's input. Activation checkpointing per block."""

    def __init__(self, dim: int, input_resolution: int, depth: int, num_heads: int, window_size: int, mlp_ratio: float, downsample: nn.Module | None) -> None:
        super().__init__()
        self.downsample = downsample
        res = (input_resolution, input_resolution)
        self.blocks = nn.ModuleList(
            SwinTransformerBlock(dim, res, num_heads, window_size, 0 if i % 2 == 0 else window_size // 2, mlp_ratio) for i in range(depth)
        )
        self.conv = PartialConv(dim, dim, 3)
        self.use_checkpoint = False

    def forward(self, x, x_size, mask=None):
        if self.downsample is not None:
            x, x_size, mask = self.downsample(x, x_size, mask)
        identity = x
        for blk in self.blocks:
            x, mask = maybe_checkpoint(blk, x, x_size, mask, on=self.use_checkpoint)
        mask = token2feature(mask, x_size) if mask is not None else None
        x, mask = self.conv(token2feature(x, x_size), mask)
        x = feature2token(x) + identity
        return x, x_size, (feature2token(mask) if mask is not None else None)


# -- decoder blocks -------------------------------------------------------------------------
class DecStyleBlock(nn.Module):
    """First-stage tail block: 2x style up-conv, + skip, style conv, to RGB (no noise)."""

    def __init__(self, in_channels: int, out_channels: int, style_dim: int, use_noise: bool = False) -> None:
        super().__init__()
        self.conv0 = StyleConv(in_channels, out_channels, style_dim, 0, up=2, use_noise=use_noise)
        self.conv1 = StyleConv(out_channels, out_channels, style_dim, 0, use_noise=use_noise)
        self.toRGB = ToRGB(out_channels, 3, style_dim)

    def forward(self, x, img, style, skip, noise_mode, draws):
        x = self.conv0(x, style, noise_mode, draws) + skip
        x = self.conv1(x, style, noise_mode, draws)
        return x, self.toRGB(x, style, skip=img)


class FirstStage(nn.Module):
    """Coarse stage: partial-conv head -> window-MCA transformer -> style-modulated conv tail."""

    def __init__(self, c: MatConfig) -> None:
        super().__init__()
        dim = c.dim
        self.conv_first = PartialConv(3 + 1, dim, 3)
        self.enc_conv = nn.ModuleList(PartialConv(dim, dim, 3, down=2) for _ in range(c.down_times))  # image -> token_res
        self.tran = nn.ModuleList()
        res = c.token_res
        for i, depth in enumerate(c.depths):
            res = int(res * STAGE_RATIOS[i])
            merge = PatchMerging(dim, dim, 2) if STAGE_RATIOS[i] < 1 else PatchUpsampling(dim, dim, 2) if STAGE_RATIOS[i] > 1 else None
            self.tran.append(BasicLayer(dim, res, depth, c.num_heads, c.window_sizes[i], c.mlp_ratio, merge))
        mid_res = c.token_res // 4
        self.down_conv = nn.Sequential(
            *[Conv2dLayer(dim, dim, 3, activation="lrelu", down=2) for _ in range(int(math.log2(mid_res)))], nn.AdaptiveAvgPool2d((1, 1))
        )
        self.to_style = FullyConnectedLayer(dim, dim * 2, activation="lrelu")  # global style
        self.ws_style = FullyConnectedLayer(c.w_dim, dim, activation="lrelu")
        self.to_square = FullyConnectedLayer(dim, c.square * c.square, activation="lrelu")
        self.dec_conv = nn.ModuleList(DecStyleBlock(dim, dim, dim * 3) for _ in range(c.down_times))
        self.checkpoint_convs = False

    def forward(self, images, known, ws, noise_mode: str, draws: Draws) -> torch.Tensor:
        x = torch.cat([known - 0.5, images * known], dim=1)  # (B, 4, H, W)
        skips = []
        x, mask = maybe_checkpoint(self.conv_first, x, known, on=self.checkpoint_convs)  # (B, dim, H, W), (B, 1, H, W)
        skips.append(x)
        for i, block in enumerate(self.enc_conv):  # down to token_res
            x, mask = maybe_checkpoint(block, x, mask, on=self.checkpoint_convs)
            if i != len(self.enc_conv) - 1:
                skips.append(x)
        x_size = tuple(x.shape[-2:])
        x, mask = feature2token(x), feature2token(mask)  # (B, N, dim), (B, N, 1)
        mid = len(self.tran) // 2
        style = None
        for i, block in enumerate(self.tran):
            if i < mid:  # with the token mask: contextual attention, dynamic mask update
                x, x_size, mask = block(x, x_size, mask)
                skips.append(x)
            elif i > mid:
                x, x_size, _ = block(x, x_size, None)
                x = x + skips[mid - i]
            else:  # bottleneck + style manipulation
                x, x_size, _ = block(x, x_size, None)
                keep = draws.mix(tuple(x.shape), x)  # (B, N, dim) 0/1
                w = self.ws_style(ws[:, -1])  # (B, dim)
                add_n = self.to_square(w).unsqueeze(1)  # (B, 1, square^2)
                add_n = F.interpolate(add_n, size=x.size(1), mode="linear", align_corners=False).squeeze(1).unsqueeze(-1)  # (B, N, 1)
                x = x * keep + add_n * (1 - keep)
                gs = self.to_style(self.down_conv(token2feature(x, x_size)).flatten(start_dim=1))  # (B, 2 dim)
                style = torch.cat([gs, w], dim=1)  # (B, 3 dim)
        x = token2feature(x, x_size).contiguous()
        img = None
        for i, block in enumerate(self.dec_conv):
            x, img = maybe_checkpoint(block, x, img, style, skips[len(self.dec_conv) - i - 1], noise_mode, draws, on=self.checkpoint_convs)
        return img * (1 - known) + images * known


class EncFromRGB(nn.Module):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv0 = Conv2dLayer(in_channels, out_channels, 1, activation="lrelu")
        self.conv1 = Conv2dLayer(out_channels, out_channels, 3, activation="lrelu")

    def forward(self, x):
        return self.conv1(self.conv0(x))


class ConvBlockDown(nn.Module):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv0 = Conv2dLayer(in_channels, out_channels, 3, activation="lrelu", down=2)
        self.conv1 = Conv2dLayer(out_channels, out_channels, 3, activation="lrelu")

    def forward(self, x):
        return self.conv1(self.conv0(x))


class Encoder(nn.Module):
    """Second-stage conv encoder: image size down to 16x16; features keyed by log2(res)."""

    def __init__(self, c: MatConfig) -> None:
        super().__init__()
        top = int(math.log2(c.resolution))
        self.resolution = [2**i for i in range(top, 3, -1)]
        for res in self.resolution:
            block = EncFromRGB(3 * 2 + 1, c.nf(res)) if res == c.resolution else ConvBlockDown(c.nf(res * 2), c.nf(res))
            setattr(self, f"EncConv_Block_{res}x{res}", block)
        self.checkpoint_convs = False

    def forward(self, x) -> dict[int, torch.Tensor]:
        out = {}
        for res in self.resolution:
            x = maybe_checkpoint(getattr(self, f"EncConv_Block_{res}x{res}"), x, on=self.checkpoint_convs)
            out[int(math.log2(res))] = x
        return out


class ToStyle(nn.Module):
    """Global style code of the second stage: three stride-2 convs, average pool, FC."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(*[Conv2dLayer(in_channels, in_channels, 3, activation="lrelu", down=2) for _ in range(3)])
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = FullyConnectedLayer(in_channels, out_channels, activation="lrelu")

    def forward(self, x):
        return self.fc(self.pool(self.conv(x)).flatten(start_dim=1))


class DecBlockFirstV2(nn.Module):
    """16x16: conv + encoder skip, style conv, to RGB."""

    def __init__(self, res: int, in_channels: int, out_channels: int, style_dim: int) -> None:
        super().__init__()
        self.res = res
        self.conv0 = Conv2dLayer(in_channels, in_channels, 3, activation="lrelu")
        self.conv1 = StyleConv(in_channels, out_channels, style_dim, 2**res)
        self.toRGB = ToRGB(out_channels, 3, style_dim)

    def forward(self, x, ws, gs, feats, noise_mode, draws):
        x = self.conv0(x) + feats[self.res]
        x = self.conv1(x, torch.cat([ws[:, 0], gs], dim=1), noise_mode, draws)
        return x, self.toRGB(x, torch.cat([ws[:, 1], gs], dim=1))


class DecBlock(nn.Module):
    """2x style up-conv + encoder skip, style conv, to RGB; styles from w[2 res - 9 ...]."""

    def __init__(self, res: int, in_channels: int, out_channels: int, style_dim: int) -> None:
        super().__init__()
        self.res = res
        self.conv0 = StyleConv(in_channels, out_channels, style_dim, 2**res, up=2)
        self.conv1 = StyleConv(out_channels, out_channels, style_dim, 2**res)
        self.toRGB = ToRGB(out_channels, 3, style_dim)

    def forward(self, x, img, ws, gs, feats, noise_mode, draws):
        r = self.res
        x = self.conv0(x, torch.cat([ws[:, r * 2 - 9], gs], dim=1), noise_mode, draws) + feats[r]
        x = self.conv1(x, torch.cat([ws[:, r * 2 - 8], gs], dim=1), noise_mode, draws)
        return x, self.toRGB(x, torch.cat([ws[:, r * 2 - 7], gs], dim=1), skip=img)


class Decoder(nn.Module):
    def __init__(self, c: MatConfig, style_dim: int) -> None:
        super().__init__()
        self.top = int(math.log2(c.resolution))
        self.Dec_16x16 = DecBlockFirstV2(4, c.nf(16), c.nf(16), style_dim)
        for r in range(5, self.top + 1):
            setattr(self, f"Dec_{2**r}x{2**r}", DecBlock(r, c.nf(2 ** (r - 1)), c.nf(2**r), style_dim))
        self.checkpoint_convs = False

    def forward(self, x, ws, gs, feats, noise_mode, draws):
        x, img = maybe_checkpoint(self.Dec_16x16, x, ws, gs, feats, noise_mode, draws, on=self.checkpoint_convs)
        for r in range(5, self.top + 1):
            x, img = maybe_checkpoint(getattr(self, f"Dec_{2**r}x{2**r}"), x, img, ws, gs, feats, noise_mode, draws, on=self.checkpoint_convs)
        return img


class SynthesisNet(nn.Module):
    def __init__(self, c: MatConfig) -> None:
        super().__init__()
        self.square = c.square
        self.first_stage = FirstStage(c)
        self.enc = Encoder(c)
        self.to_square = FullyConnectedLayer(c.w_dim, c.square * c.square, activation="lrelu")
        self.to_style = ToStyle(c.nf(16), c.nf(4) * 2)
        self.dec = Decoder(c, c.w_dim + c.nf(4) * 2)

    def forward(self, images, known, ws, noise_mode: str, draws: Draws) -> tuple[torch.Tensor, torch.Tensor]:
        stg1 = self.first_stage(images, known, ws, noise_mode, draws)  # (B, 3, H, W), composited
        x = images * known + stg1 * (1 - known)
        feats = self.enc(torch.cat([known - 0.5, x, images * known], dim=1))
        fea = feats[4]  # (B, C, H/(res/16), ...)
        keep = draws.mix(tuple(fea.shape), fea)
        add_n = self.to_square(ws[:, 0]).view(-1, 1, self.square, self.square)
        add_n = F.interpolate(add_n, size=fea.shape[-2:], mode="bilinear", align_corners=False)
        fea = fea * keep + add_n * (1 - keep)
        feats[4] = fea
        gs = self.to_style(fea)
        img = self.dec(fea, ws, gs, feats, noise_mode, draws)
        return img * (1 - known) + images * known, stg1


class Generator(nn.Module):
    """forward(images [-1, 1], known (1 = known), z) -> (output, first-stage output)."""

    def __init__(self, c: MatConfig) -> None:
        super().__init__()
        self.z_dim = c.z_dim
        self.synthesis = SynthesisNet(c)
        self.mapping = MappingNet(c.z_dim, c.w_dim, c.num_ws, c.mapping_layers, c.mapping_lr_mul, c.w_avg_beta)

    def forward(self, images, known, z=None, ws=None, truncation_psi: float = 1.0, noise_mode: str = "random", draws: Draws | None = None,
                z_mix: torch.Tensor | None = None, mix_cutoff: int = 0):
        """``z_mix``: style mixing (training) -- the styles from ``mix_cutoff`` on come from it."""
        draws = draws if draws is not None else Draws()
        if ws is None:
            ws = self.mapping(z, truncation_psi=truncation_psi)  # (B, num_ws, w_dim)
            if z_mix is not None:
                ws = ws.clone()
                ws[:, mix_cutoff:] = self.mapping(z_mix, truncation_psi=truncation_psi, update_w_avg=False)[:, mix_cutoff:]
        return self.synthesis(images, known, ws, noise_mode, draws)


# -- discriminator ----------------------------------------------------------------------------
class DisFromRGB(nn.Module):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = Conv2dLayer(in_channels, out_channels, 1, activation="lrelu")

    def forward(self, x):
        return self.conv(x)


class DisBlock(nn.Module):
    """Residual down block: (conv, stride-2 conv) + stride-2 1x1 skip, each times sqrt(1/2)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv0 = Conv2dLayer(in_channels, in_channels, 3, activation="lrelu")
        self.conv1 = Conv2dLayer(in_channels, out_channels, 3, activation="lrelu", down=2)
        self.skip = Conv2dLayer(in_channels, out_channels, 1, bias=False, down=2)

    def forward(self, x):
        skip = self.skip(x, gain=math.sqrt(0.5))
        return skip + self.conv1(self.conv0(x), gain=math.sqrt(0.5))


class MinibatchStdLayer(nn.Module):
    """Appends the mean std over groups of samples as a feature. The group is the largest
    divisor of the batch not above ``group_size`` (MAT: min(group, batch), which must divide it)."""

    def __init__(self, group_size: int) -> None:
        super().__init__()
        self.group_size = group_size

    def forward(self, x):
        N, C, H, W = x.shape
        G = max(g for g in range(1, min(self.group_size, N) + 1) if N % g == 0)
        y = x.reshape(G, -1, 1, C, H, W)  # sample i in group i % (N / G)
        y = (y - y.mean(dim=0)).square().mean(dim=0)
        y = (y + 1e-8).sqrt().mean(dim=[2, 3, 4]).reshape(-1, 1, 1, 1)  # (N/G, 1, 1, 1)
        return torch.cat([x, y.repeat(G, 1, H, W)], dim=1)


class Discriminator(nn.Module):
    """Two heads: one scores the final output, a half-width one the first-stage output; both
    see [known - 0.5, image]. -> (logits (B, 1), logits_stg1 (B, 1))."""

    def __init__(self, c: MatConfig) -> None:
        super().__init__()
        top = int(math.log2(c.resolution))

        def trunk(div: int) -> nn.Sequential:
            layers = [DisFromRGB(3 + 1, c.nf(2**top) // div)]
            layers += [DisBlock(c.nf(2**r) // div, c.nf(2 ** (r - 1)) // div) for r in range(top, 2, -1)]
            layers += [MinibatchStdLayer(c.mbstd_group), Conv2dLayer(c.nf(4) // div + 1, c.nf(4) // div, 3, activation="lrelu")]
            return nn.Sequential(*layers)

        self.Dis = trunk(1)
        self.fc0 = FullyConnectedLayer(c.nf(4) * 16, c.nf(4), activation="lrelu")
        self.fc1 = FullyConnectedLayer(c.nf(4), 1)
        self.Dis_stg1 = trunk(2)
        self.fc0_stg1 = FullyConnectedLayer(c.nf(4) // 2 * 16, c.nf(4) // 2, activation="lrelu")
        self.fc1_stg1 = FullyConnectedLayer(c.nf(4) // 2, 1)

    def forward(self, images, known, images_stg1):
        x = self.Dis(torch.cat([known - 0.5, images], dim=1))
        x = self.fc1(self.fc0(x.flatten(start_dim=1)))
        y = self.Dis_stg1(torch.cat([known - 0.5, images_stg1], dim=1))
        y = self.fc1_stg1(self.fc0_stg1(y.flatten(start_dim=1)))
        return x, y


# -- the zoo model --------------------------------------------------------------------------
class MAT(nn.Module):
    """The module a zoo checkpoint holds: ``generator`` (published key names under
    ``generator.``) and ``discriminator`` (None for imported generators).

    forward(images (B, 3, H, W) in [-1, 1], masks (B, 1, H, W) 1 = hole, z (B, z_dim))
    -> (output, first-stage output), both composited, at the training size's layout.
    """

    def __init__(self, config: MatConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        self.generator = Generator(config)
        self.discriminator = Discriminator(config) if config.discriminator else None

    def forward(self, images, masks, z=None, ws=None, truncation_psi: float | None = None, noise_mode: str | None = None, draws: Draws | None = None,
                z_mix: torch.Tensor | None = None, mix_cutoff: int = 0):
        c = self.config
        psi = c.truncation_psi if truncation_psi is None else truncation_psi
        return self.generator(images, 1 - masks, z, ws, psi, noise_mode or c.noise_mode, draws, z_mix, mix_cutoff)

    def discriminate(self, images, masks, images_stg1):
        return self.discriminator(images, 1 - masks, images_stg1)

    def enable_grad_checkpointing(self) -> None:
        """Activation checkpointing of every transformer block (recomputed in backward); with
        ``config.checkpoint_convs`` also of the convolutional blocks of both stages (head,
        tail, second-stage encoder and decoder), which hold most of the activations at 512 px.
        Training only: the recomputation repeats the global RNG's draws, not a generator's."""
        for m in self.modules():
            if isinstance(m, BasicLayer):
                m.use_checkpoint = True
            elif isinstance(m, (FirstStage, Encoder, Decoder)):
                m.checkpoint_convs = self.config.checkpoint_convs
