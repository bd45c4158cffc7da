"""Multi-head contextual attention (MCA): attention that draws context only from valid tokens.

MAT (Li et al., CVPR 2022, Sec. 3.2) and the zoo's ``dit-mca`` share this layer. Tokens carry a
validity flag (1 = the token holds information from known pixels, 0 = it lies in the hole):

1. keys of invalid tokens are left out of every query's softmax, so the values of hole tokens
   never reach the output (hole tokens still attend, as queries, to the valid ones);
2. an optional structural mask (``allowed``, for example Swin's shifted-window mask) restricts
   keys further;
3. after the attention every token of the set becomes valid if any token of the set was valid
   (MAT's dynamic mask update: ``mask = clamp(sum(mask over the window), 0, 1)``).

Rows with no key that is both valid and allowed get a defined result, the same one MAT's
additive ``-100`` logits give: the softmax then runs over the keys with the fewest violations
(invalid, or outside ``allowed``). An all-invalid window therefore attends like plain attention
and never yields NaN; ``empty="zero"`` returns zeros for such rows instead.

Attention runs on :func:`torch.nn.functional.scaled_dot_product_attention` with a boolean mask.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

EMPTY_MODES = ("fewest-violations", "zero")


def contextual_mask(valid: torch.Tensor, allowed: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Boolean attention mask from token validity.

    ``valid``: (B, N) bool/float, 1 = valid key. ``allowed``: None or bool of shape (N, N),
    (B, N, N) or (B, heads, N, N), True = the query may see the key.
    Returns ``(mask, empty)``: ``mask`` (B, 1 or heads, N, N) bool for SDPA (True = attend) and
    ``empty`` (B, 1 or heads, N) bool, True where a query had no valid and allowed key (its
    row then holds the keys with the fewest violations, as MAT's -100 logits give).
    """
    valid = valid.bool()
    B, N = valid.shape
    violations = (~valid).to(torch.int8)[:, None, None, :].expand(B, 1, N, N)  # (B, 1, Nq, Nk)
    if allowed is not None:
        if allowed.dim() == 2:
            allowed = allowed[None, None]
        elif allowed.dim() == 3:
            allowed = allowed[:, None]
        violations = violations + (~allowed.bool()).to(torch.int8)  # (B, 1|h, Nq, Nk)
    best = violations.amin(dim=-1, keepdim=True)  # (B, 1|h, Nq, 1)
    return violations == best, best[..., 0] > 0


def update_validity(valid: torch.Tensor) -> torch.Tensor:
    """MAT's dynamic mask update: every token of a set becomes valid if any token was.

    ``valid`` (B, N) -> (B, N), same dtype."""
    return valid.amax(dim=1, keepdim=True).expand_as(valid).clone()


def contextual_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    valid: torch.Tensor,
    allowed: torch.Tensor | None = None,
    scale: float | None = None,
    empty: str = "fewest-violations",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention over valid keys only.

    ``q, k, v``: (B, heads, N, d). ``valid``: (B, N), 1 = valid token. ``allowed``: see
    :func:`contextual_mask`. Returns ``(out (B, heads, N, d), new_valid (B, N))``.
    """
    if empty not in EMPTY_MODES:
        raise ValueError(f"empty must be one of {', '.join(EMPTY_MODES)}, not {empty!r}")
    mask, no_key = contextual_mask(valid, allowed)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)  # (B, h, N, d)
    if empty == "zero":
        out = out.masked_fill(no_key[..., None], 0.0)
    return out, update_validity(valid)


class MultiHeadContextualAttention(nn.Module):
    """Multi-head contextual attention over a set of tokens (a window, or a whole image).

    Parameters follow timm's ``Attention`` (one fused ``qkv`` linear and ``proj``), so DiT and
    ViT state dicts load into it. ``normalize_qk=True`` computes queries and keys from the
    L2-normalised input as MAT does (values always from the raw input); MAT itself keeps
    separate q/k/v layers and calls :func:`contextual_attention` directly.

    forward(x (B, N, C), valid (B, N), allowed=None) -> (x (B, N, C), valid (B, N)): one
    attention set; :func:`zoo.layers.window_contextual_attention` runs the same weights in
    (shifted) windows of a token grid.
    """

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True, normalize_qk: bool = False, empty: str = "fewest-violations"):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        if empty not in EMPTY_MODES:
            raise ValueError(f"empty must be one of {', '.join(EMPTY_MODES)}, not {empty!r}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.normalize_qk = normalize_qk
        self.empty = empty
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def project_qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x (B, N, C) -> q, k, v, each (B, heads, N, d)."""
        B, N, C = x.shape
        w_q, w_k, w_v = self.qkv.weight.chunk(3, dim=0)
        b_q, b_k, b_v = self.qkv.bias.chunk(3) if self.qkv.bias is not None else (None, None, None)
        qk_in = F.normalize(x, dim=-1) if self.normalize_qk else x
        heads = lambda t: t.view(B, N, self.num_heads, self.head_dim).transpose(1, 2)  # noqa: E731  (B, h, N, d)
        return heads(F.linear(qk_in, w_q, b_q)), heads(F.linear(qk_in, w_k, b_k)), heads(F.linear(x, w_v, b_v))

    def forward(self, x: torch.Tensor, valid: torch.Tensor, allowed: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        B, N, C = x.shape
        q, k, v = self.project_qkv(x)
        out, valid = contextual_attention(q, k, v, valid, allowed, empty=self.empty)
        out = out.transpose(1, 2).reshape(B, N, C)  # (B, N, C)
        return self.proj(out), valid
