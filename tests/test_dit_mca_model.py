"""dit-mca denoiser: adaLN-Zero identity at init, contextual attention through the denoiser
(invalid keys never contribute, the token mask grows), classifier-free guidance limits, and
initialisation from a DiT checkpoint equal to the official DiT forward for the null class."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from zoo.config import apply_overrides
from zoo.errors import ZooError
from zoo_plugins.dit_mca.config import PRESETS, DitMcaConfig
from zoo_plugins.dit_mca.convert import load_dit_init
from zoo_plugins.dit_mca.model import DiT, DiTBlock, DitMca, guided_output, sincos_2d


def tiny(**kw) -> DitMcaConfig:
    return apply_overrides(DitMcaConfig(), {**PRESETS["tiny"], **kw})


def randomize(module: torch.nn.Module, std: float = 0.2, seed: int = 0) -> None:
    """Every weight non-zero (adaLN modulation and output layer included)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * std)


def test_adaln_zero_blocks_are_identity_and_output_zero_at_init():
    torch.manual_seed(0)
    block = DiTBlock(64, 2, 4.0)
    block.adaLN_modulation[-1].weight.data.zero_()
    block.adaLN_modulation[-1].bias.data.zero_()
    dit = DiT(tiny(), 4)
    x, c = torch.randn(2, 16, 64), torch.randn(2, 64)
    valid = torch.ones(2, 16)
    for blk in dit.blocks:  # the model's own init
        out, _ = blk(x, c, valid)
        assert torch.equal(out, x)
    assert torch.equal(block(x, c, valid)[0], x)
    z, ctx = torch.randn(2, 4, 16, 16), torch.randn(2, 5, 16, 16)
    out = dit(z, torch.tensor([3, 700]), ctx, torch.ones(2, 64))
    assert out.shape == (2, 8, 16, 16) and torch.equal(out, torch.zeros_like(out))  # zero final layer
    # the context input channels start at zero: the context changes nothing at init
    w = dit.x_embedder.proj.weight
    assert torch.equal(w[:, 4:], torch.zeros_like(w[:, 4:])) and w[:, :4].abs().sum() > 0


@pytest.mark.parametrize("attention", ["contextual", "self"])
def test_invalid_keys_never_contribute_through_the_denoiser(attention):
    # one block: a token's output depends on the other tokens only through attention
    torch.manual_seed(0)
    cfg = tiny(depth=1, attention=attention)
    dit = DiT(cfg, 4)
    randomize(dit, std=0.05)  # small weights: no saturated softmax
    z, ctx, t = torch.randn(1, 4, 8, 8), torch.randn(1, 5, 8, 8), torch.tensor([100])
    valid = torch.ones(1, 16)  # 4 x 4 tokens of 2 x 2 latent pixels
    hidden = [0, 5, 6]  # invalid tokens
    if attention == "contextual":
        valid[0, hidden] = 0
    z2 = z.clone()
    z2[..., 2:4, 2:4] = torch.randn(1, 4, 2, 2) * 5  # new content in token 5 only (row 1, col 1)
    with torch.no_grad():
        a, b = dit(z, t, ctx, valid), dit(z2, t, ctx, valid)
    changed = (a - b).abs().amax(dim=1)[0]  # (8, 8)
    token_changed = changed.reshape(4, 2, 4, 2).amax(dim=(1, 3)).flatten() > 1e-7
    if attention == "contextual":
        assert token_changed.tolist() == [i == 5 for i in range(16)]  # only the token itself
    else:
        assert token_changed.all()  # plain attention: every token sees it (the test can fail)


def test_token_mask_from_the_hole_and_its_growth():
    torch.manual_seed(0)
    model = DitMca(tiny()).eval()  # VAE 2x, patch 2: a token covers 4 x 4 pixels
    images = torch.rand(1, 3, 16, 16) * 2 - 1
    holes = torch.zeros(1, 1, 16, 16)
    holes[..., 0:8, 0:8] = 1  # tokens (0,0) (0,1) (1,0) (1,1) entirely hole
    holes[..., 8:12, 8:11] = 1  # token (2,2) partly known: still valid
    with torch.no_grad():
        context, valid, latent_hole = model.context(images, holes)
    expected = torch.ones(4, 4)
    expected[:2, :2] = 0
    assert torch.equal(valid[0].reshape(4, 4), expected)
    assert latent_hole.shape == (1, 1, 8, 8) and latent_hole[0, 0, 4:6, 4:6].tolist() == [[1, 1], [1, 1]]
    assert torch.allclose(context[0, 4, 0, 0], torch.tensor(1.0)) and context[0, 4, 5, 5] == 0.5  # hole fraction
    # after a block every token has attended to a valid one: all valid; no valid token: stays invalid
    attn = model.dit.blocks[0].attn
    x = torch.randn(1, 16, 64)
    _, grown = attn(x, valid)
    assert torch.equal(grown, torch.ones_like(valid))
    _, none = attn(x, torch.zeros_like(valid))
    assert torch.equal(none, torch.zeros_like(valid))


def test_classifier_free_guidance_limits_and_calls():
    torch.manual_seed(0)
    model = DitMca(tiny()).eval()
    randomize(model.dit, std=0.1)
    calls = []
    model.dit.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    z, t = torch.randn(2, 4, 8, 8), torch.tensor([10, 500])
    holes = torch.zeros(2, 1, 16, 16)
    holes[..., 4:12, 4:12] = 1
    with torch.no_grad():
        context, valid, _ = model.context(torch.rand(2, 3, 16, 16) * 2 - 1, holes)
        empty = model.empty_context(z)
        cond, uncond = model(z, t, context, valid), model(z, t, *empty)
        calls.clear()
        assert torch.equal(guided_output(model, z, t, (context, valid), empty, 0.0), uncond)
        assert torch.equal(guided_output(model, z, t, (context, valid), empty, 1.0), cond)
        assert calls == [2, 2]  # one call each (batch 2)
        g = guided_output(model, z, t, (context, valid), empty, 3.0)
    assert calls[-1] == 4  # both branches in one batch: two network calls per image
    assert torch.allclose(g[:, :4], uncond[:, :4] + 3.0 * (cond[:, :4] - uncond[:, :4]), atol=1e-5)
    assert torch.allclose(g[:, 4:], cond[:, 4:], atol=1e-6)  # variance from the conditional call
    assert not torch.allclose(cond, uncond)


# -- initialisation from DiT --------------------------------------------------------------------
def official_pos_embed(dim: int, gs: int) -> np.ndarray:
    """DiT's get_2d_sincos_pos_embed (MAE), written out: grid = meshgrid(w, h)."""
    grid = np.stack(np.meshgrid(np.arange(gs, dtype=np.float32), np.arange(gs, dtype=np.float32)), axis=0).reshape(2, 1, gs, gs)

    def one_d(d, pos):
        omega = 1.0 / 10000 ** (np.arange(d // 2, dtype=np.float64) / (d / 2.0))
        out = np.einsum("m,d->md", pos.reshape(-1), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)

    return np.concatenate([one_d(dim // 2, grid[0]), one_d(dim // 2, grid[1])], axis=1)


def s2_state_dict(seed: int = 0, depth: int = 12, D: int = 384, p: int = 2, C: int = 4, gs: int = 16) -> dict[str, torch.Tensor]:
    """A random state dict in the key layout and shapes of DiT-S/2 (DiT-S-2-256x256.pt)."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g) * 0.05  # noqa: E731
    sd = {
        "pos_embed": torch.from_numpy(official_pos_embed(D, gs)).float()[None],
        "x_embedder.proj.weight": r(D, C, p, p), "x_embedder.proj.bias": r(D),
        "t_embedder.mlp.0.weight": r(D, 256), "t_embedder.mlp.0.bias": r(D),
        "t_embedder.mlp.2.weight": r(D, D), "t_embedder.mlp.2.bias": r(D),
        "y_embedder.embedding_table.weight": r(1001, D),
        "final_layer.linear.weight": r(p * p * 2 * C, D), "final_layer.linear.bias": r(p * p * 2 * C),
        "final_layer.adaLN_modulation.1.weight": r(2 * D, D), "final_layer.adaLN_modulation.1.bias": r(2 * D),
    }
    for i in range(depth):
        b = f"blocks.{i}."
        sd |= {
            b + "attn.qkv.weight": r(3 * D, D), b + "attn.qkv.bias": r(3 * D),
            b + "attn.proj.weight": r(D, D), b + "attn.proj.bias": r(D),
            b + "mlp.fc1.weight": r(4 * D, D), b + "mlp.fc1.bias": r(4 * D),
            b + "mlp.fc2.weight": r(D, 4 * D), b + "mlp.fc2.bias": r(D),
            b + "adaLN_modulation.1.weight": r(6 * D, D), b + "adaLN_modulation.1.bias": r(6 * D),
        }
    return sd


def official_dit_forward(sd: dict, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor, heads: int, depth: int, p: int = 2) -> torch.Tensor:
    """DiT.forward of facebookresearch/DiT models.py, written from the paper's equations with
    explicit softmax attention (no shared code with the plugin)."""
    lin = lambda h, k: h @ sd[k + ".weight"].T + sd[k + ".bias"]  # noqa: E731
    ln = lambda h: F.layer_norm(h, h.shape[-1:], eps=1e-6)  # noqa: E731
    mod = lambda h, shift, scale: h * (1 + scale[:, None]) + shift[:, None]  # noqa: E731
    B, C, H, W = x.shape
    D = sd["x_embedder.proj.bias"].shape[0]
    h = F.conv2d(x, sd["x_embedder.proj.weight"], sd["x_embedder.proj.bias"], stride=p).flatten(2).transpose(1, 2)
    h = h + sd["pos_embed"]
    half = 128
    freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32) / half)
    args = t[:, None].float() * freqs[None]
    temb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    temb = lin(F.silu(lin(temb, "t_embedder.mlp.0")), "t_embedder.mlp.2")
    c = temb + sd["y_embedder.embedding_table.weight"][y]
    N, d = h.shape[1], D // heads
    for i in range(depth):
        b = f"blocks.{i}."
        s_a, sc_a, g_a, s_m, sc_m, g_m = lin(F.silu(c), b + "adaLN_modulation.1").chunk(6, dim=1)
        q, k, v = lin(mod(ln(h), s_a, sc_a), b + "attn.qkv").reshape(B, N, 3, heads, d).permute(2, 0, 3, 1, 4)
        att = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(d), dim=-1)
        h = h + g_a[:, None] * lin((att @ v).transpose(1, 2).reshape(B, N, D), b + "attn.proj")
        m = lin(mod(ln(h), s_m, sc_m), b + "mlp.fc1")
        h = h + g_m[:, None] * lin(F.gelu(m, approximate="tanh"), b + "mlp.fc2")
    shift, scale = lin(F.silu(c), "final_layer.adaLN_modulation.1").chunk(2, dim=1)
    h = lin(mod(ln(h), shift, scale), "final_layer.linear")  # (B, N, p*p*2C)
    gs = H // p
    h = h.reshape(B, gs, gs, p, p, 2 * C)
    return torch.einsum("nhwpqc->nchpwq", h).reshape(B, 2 * C, H, W)


def test_init_from_dit_s2_with_self_attention_equals_official_dit_for_the_null_class(tmp_path, capsys):
    sd = s2_state_dict()
    path = tmp_path / "DiT-S-2-256x256.pt"
    torch.save(sd, path)  # a raw state dict, as the published files
    cfg = apply_overrides(DitMcaConfig(), {**PRESETS["S/2"], "attention": "self"})
    dit = DiT(cfg, 4).eval()
    loaded, skipped = load_dit_init(dit, path)
    printed = capsys.readouterr().out
    assert "loaded" in printed and "skipped pos_embed" in printed and "null_class" in printed
    assert len(loaded) == len(sd) - 1 and [s.split()[0] for s in skipped] == ["pos_embed"]
    assert torch.equal(dit.null_class, sd["y_embedder.embedding_table.weight"][1000])
    assert torch.allclose(sincos_2d(384, 16, 16), sd["pos_embed"][0], atol=1e-6)  # recomputed = DiT's
    g = torch.Generator().manual_seed(1)
    z = torch.randn(2, 4, 32, 32, generator=g)
    t = torch.tensor([17, 803])
    context = torch.randn(2, 5, 32, 32, generator=g)  # any context: its input channels are zero
    with torch.no_grad():
        ours = dit(z, t, context, torch.ones(2, 256))
        ref = official_dit_forward(sd, z, t, torch.tensor([1000, 1000]), heads=6, depth=12)
    assert ours.shape == ref.shape == (2, 8, 32, 32)
    assert (ours - ref).abs().max() < 1e-4 * ref.abs().max()
    assert ref.abs().max() > 0.1  # a non-trivial output


def test_init_errors_are_one_line(tmp_path):
    dit = DiT(tiny(), 4)
    bad = tmp_path / "other.pt"
    torch.save({"conv.weight": torch.zeros(3)}, bad)
    with pytest.raises(ZooError, match="not a DiT checkpoint"):
        load_dit_init(dit, bad)
    s2 = tmp_path / "s2.pt"
    torch.save(s2_state_dict(depth=1), s2)
    with pytest.raises(ZooError, match="shares no block weights"):
        load_dit_init(dit, s2, verbose=False)  # width 384 into a width-64 model
