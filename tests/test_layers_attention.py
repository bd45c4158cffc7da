"""Multi-head contextual attention (zoo.layers): constructed cases."""

from __future__ import annotations

import pytest
import torch

from zoo.layers import MultiHeadContextualAttention, contextual_attention, contextual_mask, update_validity


def _mat_reference(q, k, v, valid, allowed=None, scale=None):
    """MAT's formula (networks/mat.py WindowAttention): additive -100 logits for invalid keys
    and for keys outside the shifted-window mask, then a plain softmax."""
    scale = scale or q.shape[-1] ** -0.5
    attn = (q @ k.transpose(-2, -1)) * scale
    if allowed is not None:
        attn = attn + (~allowed).float() * -100.0
    attn = attn + (1 - valid.float())[:, None, None, :] * -100.0
    return attn.softmax(-1) @ v


def _qkv(B=2, h=2, N=6, d=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(B, h, N, d, generator=g) for _ in range(3)]


def test_invalid_values_never_reach_the_output():
    q, k, v = _qkv()
    valid = torch.tensor([[1, 0, 1, 0, 0, 0], [0, 0, 0, 0, 0, 1]], dtype=torch.float32)
    out, _ = contextual_attention(q, k, v, valid)
    v2, k2 = v.clone(), k.clone()
    v2[:, :, valid[0] == 0] = 0  # row 0's invalid tokens (row 1 differs, change per row)
    v2[0, :, valid[0] == 0] = 1e3
    v2[1, :, valid[1] == 0] = -1e3
    k2[0, :, valid[0] == 0] = 50.0
    k2[1, :, valid[1] == 0] = -50.0
    v2[0, :, valid[0] == 1] = v[0, :, valid[0] == 1]
    v2[1, :, valid[1] == 1] = v[1, :, valid[1] == 1]
    out2, _ = contextual_attention(q, k2, v2, valid)
    assert torch.equal(out, out2)
    # and changing a valid value does change the output
    v3 = v.clone()
    v3[0, :, 0] += 1
    assert not torch.allclose(contextual_attention(q, k, v3, valid)[0], out)


def test_matches_mats_additive_formula_including_empty_rows_and_shift_masks():
    q, k, v = _qkv(B=3, N=8)
    valid = torch.tensor([[1, 1, 0, 0, 0, 0, 0, 1], [0] * 8, [0, 0, 0, 0, 0, 0, 1, 0]], dtype=torch.float32)
    allowed = torch.zeros(8, 8, dtype=torch.bool)
    allowed[:4, :4] = True
    allowed[4:, 4:] = True  # two shift regions; batch 2's only valid key is outside region 1
    for a in (None, allowed):
        out, _ = contextual_attention(q, k, v, valid, a)
        ref = _mat_reference(q, k, v, valid, a)
        # MAT adds -100 in float32, which rounds logits to ~8e-6: agree to that
        assert torch.allclose(out, ref, atol=2e-5), (out - ref).abs().max()


def test_empty_window_is_defined():
    q, k, v = _qkv()
    valid = torch.zeros(2, 6)
    out, new = contextual_attention(q, k, v, valid)
    assert torch.isfinite(out).all()
    assert torch.allclose(out, torch.nn.functional.scaled_dot_product_attention(q, k, v), atol=1e-6)
    assert new.sum() == 0
    zero, _ = contextual_attention(q, k, v, valid, empty="zero")
    assert torch.equal(zero, torch.zeros_like(zero))
    _, no_key = contextual_mask(valid)
    assert no_key.all()


def test_validity_grows_exactly_as_specified():
    valid = torch.tensor([[0, 0, 1, 0], [0, 0, 0, 0], [1, 1, 1, 1]], dtype=torch.float32)
    assert update_validity(valid).tolist() == [[1, 1, 1, 1], [0, 0, 0, 0], [1, 1, 1, 1]]
    q, k, v = _qkv(B=3, N=4)
    assert torch.equal(contextual_attention(q, k, v, valid)[1], update_validity(valid))


@pytest.mark.parametrize("normalize_qk", [False, True])
def test_module_shapes_and_hole_independence(normalize_qk):
    torch.manual_seed(0)
    layer = MultiHeadContextualAttention(16, 4, normalize_qk=normalize_qk).eval()
    x = torch.randn(2, 10, 16)
    valid = (torch.arange(10) % 3 == 0).float().expand(2, 10)
    y, new = layer(x, valid)
    assert y.shape == (2, 10, 16) and new.shape == (2, 10) and new.eq(1).all()
    x2 = x.clone()
    x2[:, valid[0] == 0] = torch.randn_like(x2[:, valid[0] == 0]) * 10
    y2, _ = layer(x2, valid)
    # outputs of every query whose own input is unchanged are identical
    keep = valid[0] == 1
    assert torch.equal(y[:, keep], y2[:, keep])
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadContextualAttention(10, 4)
