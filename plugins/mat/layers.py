"""StyleGAN2-style building blocks MAT is made of (equalized learning rate, FIR resampling).

MAT (``networks/basic_module.py`` of fenglinglwb/MAT) builds on StyleGAN2-ADA's layers: every
weight is stored as N(0, 1) and scaled at run time by ``1 / sqrt(fan_in)`` ("equalized
learning rate"); activations carry a gain (sqrt(2) for leaky ReLU); up- and downsampling
convolutions blur with the 4x4 FIR filter ``[1, 3, 3, 1]^T [1, 3, 3, 1] / 64``. The layers
below compute the same functions with plain torch ops; their attribute and buffer names are
those of the published state dicts (``weight``, ``bias``, ``resample_filter``,
``noise_const``, ``noise_strength``, ``affine``).

Randomness (the noise inputs of the style convolutions) is drawn through a :class:`Draws`
object, so a forward pass can use an explicit ``torch.Generator``, the global RNG (training)
or replay recorded draws (equivalence with the official code).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

LRELU_SLOPE = 0.2
ACT_GAIN = {"linear": 1.0, "lrelu": math.sqrt(2.0)}


# -- random draws ---------------------------------------------------------------------------
class Draws:
    """Source of the random tensors of a forward pass: the feature-mixing masks of the style
    manipulation module (Bernoulli(0.5), as MAT's ``F.dropout(0.5 * ones, training=True)``)
    and the per-pixel noise of the style convolutions (standard normal).

    ``generator=None`` draws from the global RNG on the tensors' device (training: the
    engine seeds and checkpoints it). With a generator, draws are made on the generator's
    device and moved; a CPU generator seeded with ``s`` gives the very numbers the official
    code draws after ``torch.manual_seed(s)`` (same order, same kernels).
    ``record=True`` keeps every draw in :attr:`log`.
    """

    def __init__(self, generator: torch.Generator | None = None, record: bool = False) -> None:
        self.generator = generator
        self.log: list[torch.Tensor] | None = [] if record else None

    def _keep(self, t: torch.Tensor) -> torch.Tensor:
        if self.log is not None:
            self.log.append(t.detach().clone())
        return t

    def mix(self, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
        """0/1 mask of ``like``'s shape: 1 keeps the feature, 0 takes the noise-driven value.

        Filled in ``like``'s memory order (``empty_like`` keeps its strides), as MAT's
        ``F.dropout(0.5 * ones_like(x))`` does: the token tensors are transposed views."""
        g = self.generator
        dev = g.device if g is not None else like.device
        m = torch.empty_like(like, device=dev).bernoulli_(0.5, generator=g)
        assert tuple(m.shape) == tuple(shape)
        return self._keep(m.to(like.device))

    def noise(self, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
        g = self.generator
        dev = g.device if g is not None else like.device
        n = torch.randn(shape, device=dev, dtype=like.dtype, generator=g)
        return self._keep(n.to(like.device))


class ReplayDraws(Draws):
    """Replays a list of tensors (e.g. the official code's dropout masks and noise) in order."""

    def __init__(self, tensors: list[torch.Tensor]) -> None:
        super().__init__()
        self.tensors, self.i = list(tensors), 0

    def _next(self, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
        if self.i >= len(self.tensors):
            raise ValueError(f"ReplayDraws: draw {self.i} asked for but only {len(self.tensors)} were given")
        t = self.tensors[self.i]
        self.i += 1
        if tuple(t.shape) != tuple(shape):
            raise ValueError(f"ReplayDraws: draw {self.i - 1} has shape {tuple(t.shape)}, the model needs {tuple(shape)}")
        return t.to(device=like.device, dtype=like.dtype)

    mix = _next
    noise = _next


# -- FIR resampling -------------------------------------------------------------------------
def fir_filter(taps=(1.0, 3.0, 3.0, 1.0)) -> torch.Tensor:
    """The 2-D low-pass filter: outer product of the taps, normalised to sum 1. (k, k) float32."""
    f = torch.as_tensor(taps, dtype=torch.float32)
    f = torch.outer(f, f)
    return f / f.sum()


def upfirdn(x: torch.Tensor, f: torch.Tensor, up: int = 1, down: int = 1, pad: tuple[int, int, int, int] = (0, 0, 0, 0), gain: float = 1.0) -> torch.Tensor:
    """Upsample by zero insertion, pad (left, right, top, bottom), filter, keep every
    ``down``-th pixel. (B, C, H, W) -> (B, C, H', W'). ``gain`` scales the filter (``up**2``
    keeps the brightness when upsampling)."""
    B, C, H, W = x.shape
    if up > 1:
        x = x.reshape(B, C, H, 1, W, 1)
        x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1])
        x = x.reshape(B, C, H * up, W * up)
    x = F.pad(x, list(pad))
    k = (f * gain).to(x.dtype).flip([0, 1])  # convolution (symmetric filter: no-op)
    x = F.conv2d(x, k[None, None].repeat(C, 1, 1, 1), groups=C)
    return x[:, :, ::down, ::down] if down > 1 else x


def conv2d_resample(x: torch.Tensor, w: torch.Tensor, f: torch.Tensor, up: int = 1, down: int = 1, padding: int = 0, groups: int = 1) -> torch.Tensor:
    """Convolution with optional 2x up- or downsampling, StyleGAN2's padding arithmetic.

    * down: blur (padded) then strided conv (a 1x1 conv: blur-and-subsample first);
    * up: transposed strided conv, then blur with gain 4;
    * neither: a plain padded conv.
    ``w``: (out, in / groups, k, k) already scaled.
    """
    out_ch, in_per_group, kh, kw = w.shape
    ft = f.shape[-1]
    if up == 1 and down == 1:
        return F.conv2d(x, w, padding=padding, groups=groups)
    if down > 1:
        p0 = padding + (ft - down + 1) // 2
        p1 = padding + (ft - down) // 2
        if kw == 1:
            x = upfirdn(x, f, down=down, pad=(p0, p1, p0, p1))
            return F.conv2d(x, w, groups=groups)
        x = upfirdn(x, f, pad=(p0, p1, p0, p1))
        return F.conv2d(x, w, stride=down, groups=groups)
    # up > 1 (kernel > 1 in MAT): conv_transpose wants (in, out / groups, k, k), flipped
    p0 = padding + (ft + up - 1) // 2 - (kw - 1)
    p1 = padding + (ft - up) // 2 - (kw - up)
    if groups == 1:
        wt = w.transpose(0, 1)
    else:
        wt = w.reshape(groups, out_ch // groups, in_per_group, kh, kw).transpose(1, 2).reshape(groups * in_per_group, out_ch // groups, kh, kw)
    x = F.conv_transpose2d(x, wt.flip([2, 3]), stride=up, groups=groups)
    return upfirdn(x, f, pad=(p0, p1, p0, p1), gain=up * up)


def bias_act(x: torch.Tensor, b: torch.Tensor | None, act: str = "linear", gain: float = 1.0, dim: int = 1) -> torch.Tensor:
    """x + b (along ``dim``), activation, times the activation's gain and ``gain``."""
    if b is not None:
        shape = [-1 if i == dim else 1 for i in range(x.ndim)]
        x = x + b.reshape(shape)
    if act == "lrelu":
        x = F.leaky_relu(x, LRELU_SLOPE)
    elif act != "linear":
        raise ValueError(f"unknown activation {act!r}")
    g = ACT_GAIN[act] * gain
    return x * g if g != 1 else x


# -- layers ---------------------------------------------------------------------------------
class FullyConnectedLayer(nn.Module):
    """Equalized-lr linear layer. (..., in) -> (..., out)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, activation: str = "linear", lr_multiplier: float = 1.0, bias_init: float = 0.0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_multiplier)
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init))) if bias else None
        self.activation = activation
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight * self.weight_gain
        b = self.bias
        if b is not None and self.bias_gain != 1:
            b = b * self.bias_gain
        x = x.matmul(w.t())
        return bias_act(x, b, self.activation, dim=x.ndim - 1)


class Conv2dLayer(nn.Module):
    """Equalized-lr conv with optional 2x up/down FIR resampling and an activation.
    (B, in, H, W) -> (B, out, H * up / down, W * up / down)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, bias: bool = True, activation: str = "linear", up: int = 1, down: int = 1) -> None:
        super().__init__()
        self.activation, self.up, self.down = activation, up, down
        self.register_buffer("resample_filter", fir_filter())
        self.padding = kernel_size // 2
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size**2)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None

    def forward(self, x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
        w = (self.weight * self.weight_gain).to(x.dtype)
        x = conv2d_resample(x, w, self.resample_filter, self.up, self.down, self.padding)
        return bias_act(x, self.bias.to(x.dtype) if self.bias is not None else None, self.activation, gain)


class ModulatedConv2d(nn.Module):
    """Per-sample weights: the style scales the input channels, then (optionally) each
    output filter is renormalised (demodulation). x (B, in, H, W), style (B, style_dim)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, style_dim: int, demodulate: bool = True, up: int = 1) -> None:
        super().__init__()
        self.demodulate, self.up = demodulate, up
        self.weight = nn.Parameter(torch.randn(1, out_channels, in_channels, kernel_size, kernel_size))
        self.out_channels, self.kernel_size = out_channels, kernel_size
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size**2)
        self.padding = kernel_size // 2
        self.register_buffer("resample_filter", fir_filter())
        self.affine = FullyConnectedLayer(style_dim, in_channels, bias_init=1)

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        s = self.affine(style).view(B, 1, C, 1, 1)
        w = self.weight * self.weight_gain * s  # (B, out, in, k, k)
        if self.demodulate:
            w = w * (w.pow(2).sum(dim=[2, 3, 4]) + 1e-8).rsqrt().view(B, self.out_channels, 1, 1, 1)
        w = w.view(B * self.out_channels, C, self.kernel_size, self.kernel_size).to(x.dtype)
        x = conv2d_resample(x.reshape(1, B * C, H, W), w, self.resample_filter, up=self.up, padding=self.padding, groups=B)
        return x.view(B, self.out_channels, *x.shape[2:])


class StyleConv(nn.Module):
    """Modulated conv + optional per-pixel noise + bias + leaky ReLU (gain sqrt 2)."""

    def __init__(self, in_channels: int, out_channels: int, style_dim: int, resolution: int, kernel_size: int = 3, up: int = 1, use_noise: bool = True, demodulate: bool = True) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(in_channels, out_channels, kernel_size, style_dim, demodulate, up)
        self.use_noise = use_noise
        if use_noise:
            self.register_buffer("noise_const", torch.randn(resolution, resolution))
            self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros(out_channels))

    def forward(self, x: torch.Tensor, style: torch.Tensor, noise_mode: str, draws: Draws) -> torch.Tensor:
        x = self.conv(x, style)
        if self.use_noise and noise_mode != "none":
            if noise_mode == "random":
                x = x + draws.noise((x.shape[0], 1, *x.shape[2:]), x) * self.noise_strength
            else:  # const: the buffer is the training resolution's; other sizes were refused upstream
                x = x + self.noise_const.to(x.dtype) * self.noise_strength
        return bias_act(x, self.bias.to(x.dtype), "lrelu")


class ToRGB(nn.Module):
    """1x1 modulated conv (no demodulation) to RGB, added to the upsampled previous RGB."""

    def __init__(self, in_channels: int, out_channels: int, style_dim: int) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(in_channels, out_channels, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.register_buffer("resample_filter", fir_filter())

    def forward(self, x: torch.Tensor, style: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        out = bias_act(self.conv(x, style), self.bias.to(x.dtype))
        if skip is not None:
            if skip.shape != out.shape:  # 2x upsample: zero insertion, pad (2, 1), blur, gain 4
                skip = upfirdn(skip, self.resample_filter, up=2, pad=(2, 1, 2, 1), gain=4)
            out = out + skip
        return out


def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


class MappingNet(nn.Module):
    """z (B, z_dim) -> w broadcast to (B, num_ws, w_dim): normalise, ``num_layers`` leaky-ReLU
    FC layers at learning-rate multiplier 0.01, moving average ``w_avg`` for truncation."""

    def __init__(self, z_dim: int, w_dim: int, num_ws: int, num_layers: int = 8, lr_multiplier: float = 0.01, w_avg_beta: float = 0.995) -> None:
        super().__init__()
        self.z_dim, self.w_dim, self.num_ws, self.num_layers, self.w_avg_beta = z_dim, w_dim, num_ws, num_layers, w_avg_beta
        features = [z_dim] + [w_dim] * num_layers
        for i in range(num_layers):
            setattr(self, f"fc{i}", FullyConnectedLayer(features[i], features[i + 1], activation="lrelu", lr_multiplier=lr_multiplier))
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(self, z: torch.Tensor, truncation_psi: float = 1.0, truncation_cutoff: int | None = None, update_w_avg: bool = True) -> torch.Tensor:
        x = normalize_2nd_moment(z.to(torch.float32))
        for i in range(self.num_layers):
            x = getattr(self, f"fc{i}")(x)
        if self.training and update_w_avg:  # as StyleGAN: tracked in every training call
            self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))
        x = x.unsqueeze(1).repeat(1, self.num_ws, 1)  # (B, num_ws, w_dim)
        if truncation_psi != 1:
            if truncation_cutoff is None:
                x = self.w_avg.lerp(x, truncation_psi)
            else:
                x[:, :truncation_cutoff] = self.w_avg.lerp(x[:, :truncation_cutoff], truncation_psi)
        return x
