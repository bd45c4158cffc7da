"""Shifted windows over a token grid and windowed multi-head contextual attention.

Swin (Liu et al., ICCV 2021) and MAT (Li et al., CVPR 2022) attend within windows of
``size x size`` tokens, and shift the windows by half a window in alternate blocks so that
information crosses window borders. The shift is cyclic (``torch.roll``): the windows at the
grid's bottom and right edges then hold up to four regions that were not neighbours, and a
query sees only keys of its own region (Swin's attention mask; MAT adds -100 to the logits).

:func:`window_contextual_attention` runs a :class:`~zoo.layers.MultiHeadContextualAttention`
(its ``qkv`` / ``proj`` weights: DiT and ViT state dicts load) window by window, with MAT's
dynamic mask when ``WindowSpec.masked``:

1. keys of invalid tokens are left out of every query's softmax;
2. a query with no valid key in its window region (the window, or its part of a wrapped
   window) gets no attention output at all: the token passes the block's attention residual
   unchanged, and it stays invalid;
3. every other token of the region becomes valid (MAT: ``mask = clamp(sum(mask in window))``).

Two departures from MAT's official code, both so that a hole token's own content never mixes
with other hole tokens' before context reaches it: MAT's ``-100`` logits make a window with no
valid key attend over all its (hole) tokens, here such a window's attention adds nothing; and
MAT marks a whole rolled window valid when any of its tokens is, even tokens of a wrapped
region that cannot see that key, here validity spreads only where attention does.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn.functional as F

from zoo.layers.attention import MultiHeadContextualAttention, contextual_mask

Pair = tuple[int, int]


def _pair(v: int | Pair) -> Pair:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def window_partition(x: torch.Tensor, w: int | Pair) -> torch.Tensor:
    """(B, H, W, C) -> (B * nW, wh * ww, C), windows in row-major order per image."""
    wh, ww = _pair(w)
    B, H, W, C = x.shape
    x = x.view(B, H // wh, wh, W // ww, ww, C).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, wh * ww, C)


def window_reverse(windows: torch.Tensor, w: int | Pair, H: int, W: int) -> torch.Tensor:
    """(B * nW, wh * ww, C) -> (B, H, W, C)."""
    wh, ww = _pair(w)
    C = windows.shape[-1]
    x = windows.view(-1, H // wh, W // ww, wh, ww, C).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, H, W, C)


def shift_region_labels(size: Pair, window: int | Pair, shift: int | Pair) -> torch.Tensor:
    """Region of each token of the rolled grid, per window: (nW, wh * ww) float labels.

    Along an axis with a shift, the rolled grid has three bands (``[0, -window)``,
    ``[-window, -shift)``, ``[-shift, end)``); tokens of different bands in one window come from
    opposite edges of the image. An axis without shift is one band. Made on the CPU."""
    H, W = size
    (wh, ww), (sh, sw) = _pair(window), _pair(shift)

    def bands(w: int, s: int) -> tuple[slice, ...]:
        return (slice(0, -w), slice(-w, -s), slice(-s, None)) if s else (slice(None),)

    labels = torch.zeros(1, H, W, 1, device="cpu")
    n = 0
    for hs in bands(wh, sh):
        for ws in bands(ww, sw):
            labels[:, hs, ws, :] = n
            n += 1
    return window_partition(labels, (wh, ww)).squeeze(-1)  # (nW, n)


@lru_cache(maxsize=64)
def _same_region(H: int, W: int, wh: int, ww: int, sh: int, sw: int) -> torch.Tensor:
    labels = shift_region_labels((H, W), (wh, ww), (sh, sw))  # (nW, n)
    return labels.unsqueeze(1) == labels.unsqueeze(2)  # (nW, n, n) bool


@dataclass(frozen=True)
class WindowSpec:
    """How one block attends. ``size``: tokens per window side (0: one window over the whole
    grid, i.e. global attention); ``shift``: cyclic shift in tokens before partitioning (Swin's
    SW-MSA; half a window in alternate blocks); ``masked``: MAT's contextual attention (invalid
    keys left out, validity grows) or, when False, plain attention with validity unchanged."""

    size: int = 0
    shift: int = 0
    masked: bool = True

    def resolve(self, H: int, W: int) -> tuple[Pair, Pair]:
        """((wh, ww), (sh, sw)) on an H x W grid. An axis one window covers is not shifted (as
        in Swin and MAT). ValueError when the window does not divide the grid."""
        wh, ww = (H, W) if self.size == 0 else (min(self.size, H), min(self.size, W))
        if H % wh or W % ww:
            raise ValueError(f"a window of {self.size} tokens does not divide the {H} x {W} token grid")
        return (wh, ww), (self.shift if wh < H else 0, self.shift if ww < W else 0)


def _to_windows(t: torch.Tensor, grid: Pair, w: Pair, s: Pair) -> torch.Tensor:
    """(B, N, C) on ``grid`` -> rolled by ``-s`` -> (B * nW, n, C)."""
    B, _, C = t.shape
    t = t.reshape(B, *grid, C)
    if s[0] or s[1]:
        t = torch.roll(t, shifts=(-s[0], -s[1]), dims=(1, 2))
    return window_partition(t, w)


def _from_windows(t: torch.Tensor, grid: Pair, w: Pair, s: Pair) -> torch.Tensor:
    """Inverse of :func:`_to_windows`: (B * nW, n, C) -> (B, N, C)."""
    t = window_reverse(t, w, *grid)
    if s[0] or s[1]:
        t = torch.roll(t, shifts=(s[0], s[1]), dims=(1, 2))
    return t.reshape(t.shape[0], grid[0] * grid[1], t.shape[-1])


def _window_masks(valid: torch.Tensor, grid: Pair, spec: WindowSpec):
    """Per-window boolean SDPA mask, rows with no key, and validity, all in window order."""
    (wh, ww), (sh, sw) = spec.resolve(*grid)
    vw = _to_windows(valid[..., None], grid, (wh, ww), (sh, sw))[..., 0]  # (B * nW, n)
    allowed = None
    if sh or sw:
        same = _same_region(grid[0], grid[1], wh, ww, sh, sw).to(valid.device)  # (nW, n, n)
        allowed = same.repeat(valid.shape[0], 1, 1)  # (B * nW, n, n)
    keys = vw if spec.masked else torch.ones_like(vw)
    mask, no_key = contextual_mask(keys, allowed)  # (B * nW, 1, n, n), (B * nW, 1, n)
    no_key = no_key[:, 0]
    new = torch.maximum(vw, (~no_key).to(vw.dtype)) if spec.masked else vw
    return mask, no_key, new, ((wh, ww), (sh, sw))


def window_validity(valid: torch.Tensor, grid: Pair, spec: WindowSpec) -> torch.Tensor:
    """Validity after a block of layout ``spec``: (B, N) -> (B, N), the dtype of ``valid``;
    what :func:`window_contextual_attention` returns, without running the attention."""
    _, _, new, (w, s) = _window_masks(valid, grid, spec)
    return _from_windows(new[..., None], grid, w, s)[..., 0]


def window_contextual_attention(attn: MultiHeadContextualAttention, x: torch.Tensor, valid: torch.Tensor, grid: Pair,
                                spec: WindowSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """``attn``'s weights applied window by window (see the module docstring).

    x (B, N, C) row-major on ``grid`` = (H, W), valid (B, N) 1 = valid
    -> (out (B, N, C): zero for tokens with no valid key, new valid (B, N))."""
    mask, no_key, new, (w, s) = _window_masks(valid, grid, spec)
    xw = _to_windows(x, grid, w, s)  # (B * nW, n, C)
    Bw, n, C = xw.shape
    q, k, v = attn.project_qkv(xw)  # (B * nW, h, n, d)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B * nW, h, n, d)
    out = attn.proj(out.transpose(1, 2).reshape(Bw, n, C))
    out = out.masked_fill(no_key[..., None], 0.0)  # no valid key: the attention adds nothing
    return _from_windows(out, grid, w, s), _from_windows(new[..., None], grid, w, s)[..., 0]
