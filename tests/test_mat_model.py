"""mat model: shapes at several sizes, known pixels, z diversity, determinism, the mask machinery."""

from __future__ import annotations

import pytest
import torch

from zoo.config import resolve_config
from zoo.errors import ZooError
from zoo_plugins.mat.hooks import SPEC
from zoo_plugins.mat.layers import Draws, ReplayDraws, conv2d_resample, fir_filter
from zoo_plugins.mat.model import MAT, PartialConv, SwinTransformerBlock
from zoo_plugins.mat.sample import inpaint


def tiny(**overrides):
    return resolve_config(SPEC, "tiny", overrides)[0]


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return MAT(tiny()).eval()


def batch(b=2, h=32, w=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(b, 3, h, w, generator=g) * 2 - 1
    masks = torch.zeros(b, 1, h, w)
    masks[..., h // 4 : h * 3 // 4, w // 8 : w * 5 // 8] = 1
    return images, masks


@pytest.mark.parametrize("size", [(32, 32), (64, 64), (40, 48), (17, 70)])
def test_any_size_pads_crops_and_keeps_known_pixels(model, size):
    images, masks = batch(2, *size)
    out = inpaint(model, images, masks, torch.Generator().manual_seed(0))
    assert out.images.shape == images.shape and out.info["nfe"] == 1
    known = masks.expand_as(images) == 0
    assert torch.equal(out.images[known], images[known])
    assert torch.isfinite(out.images).all()
    assert not torch.equal(out.images[~known], images[~known])  # the hole was filled


def test_forward_shapes_of_both_stages(model):
    images, masks = batch(3, 64, 96)
    z = torch.randn(3, 32)
    with torch.no_grad():
        out, stg1 = model(images * (1 - masks), masks, z)
    assert out.shape == stg1.shape == (3, 3, 64, 96)
    known = masks.expand_as(images) == 0
    # both stages are composited with the (masked) input
    assert torch.equal(out[known], images[known]) and torch.equal(stg1[known], images[known])


def test_hole_content_is_never_seen(model):
    images, masks = batch()
    other = images + masks * torch.randn_like(images) * 5
    a = inpaint(model, images, masks, torch.Generator().manual_seed(3)).images
    b = inpaint(model, other, masks, torch.Generator().manual_seed(3)).images
    known = masks.expand_as(images) == 0
    assert torch.equal(a[~known], b[~known])


def test_same_seed_same_fill_other_z_other_fill(model):
    images, masks = batch()
    a = inpaint(model, images, masks, torch.Generator().manual_seed(1)).images
    b = inpaint(model, images, masks, torch.Generator().manual_seed(1)).images
    c = inpaint(model, images, masks, torch.Generator().manual_seed(2)).images
    assert torch.equal(a, b)
    hole = masks.expand_as(images) == 1
    assert (a[hole] - c[hole]).abs().mean() > 1e-3


def test_z_alone_changes_the_fill(model):
    """Same feature-mixing and noise draws, different z: the style path makes the difference."""
    images, masks = batch()
    x = images * (1 - masks)
    rec = Draws(torch.Generator().manual_seed(0), record=True)
    with torch.no_grad():
        a, _ = model(x, masks, torch.randn(2, 32, generator=torch.Generator().manual_seed(5)), draws=rec)
        b, _ = model(x, masks, torch.randn(2, 32, generator=torch.Generator().manual_seed(6)), draws=ReplayDraws(rec.log))
        a2, _ = model(x, masks, torch.randn(2, 32, generator=torch.Generator().manual_seed(5)), draws=ReplayDraws(rec.log))
    hole = masks.expand_as(images) == 1
    assert torch.equal(a, a2)
    assert (a[hole] - b[hole]).abs().mean() > 1e-3
    assert len(rec.log) == 2 + (len(model.generator.synthesis.dec._modules) * 2 - 1)  # 2 mixes + decoder noise


def test_replay_refuses_a_wrong_draw():
    with pytest.raises(ValueError, match="shape"):
        ReplayDraws([torch.zeros(2, 2)]).mix((3, 3), torch.zeros(3, 3))


def test_noise_modes(model):
    images, masks = batch()
    x, z = images * (1 - masks), torch.randn(2, 32)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("noise_strength"):
                p.fill_(0.5)
        const = [model(x, masks, z, noise_mode="const", draws=Draws(torch.Generator().manual_seed(0)))[0] for _ in range(2)]
        none = model(x, masks, z, noise_mode="none", draws=Draws(torch.Generator().manual_seed(0)))[0]
        for name, p in model.named_parameters():
            if name.endswith("noise_strength"):
                p.zero_()
    assert torch.equal(const[0], const[1]) and not torch.equal(const[0], none)
    with pytest.raises(ZooError, match="noise_mode=const.*40x32"):
        inpaint(MAT(tiny(noise_mode="const")).eval(), *batch(1, 32, 40), torch.Generator())


def test_truncation_psi_zero_gives_the_mean_style(model):
    images, masks = batch()
    x = images * (1 - masks)
    d = Draws(torch.Generator().manual_seed(0), record=True)
    with torch.no_grad():
        a, _ = model(x, masks, torch.randn(2, 32), truncation_psi=0.0, draws=d)
        b, _ = model(x, masks, torch.randn(2, 32), truncation_psi=0.0, draws=ReplayDraws(d.log))
    assert torch.allclose(a, b, atol=1e-6)


def test_partial_conv_rescales_and_grows_the_mask():
    torch.manual_seed(0)
    pc = PartialConv(1, 1, 3, activation="linear")
    with torch.no_grad():
        pc.conv.weight.fill_(1.0)
        pc.conv.bias.zero_()
    mask = torch.zeros(1, 1, 5, 5)
    mask[..., 2, 2] = 1  # one valid pixel
    x = torch.ones(1, 1, 5, 5) * mask
    y, new = pc(x, mask)
    assert torch.equal(new[0, 0], torch.nn.functional.pad(torch.ones(3, 3), (1, 1, 1, 1)))  # valid wherever one input was
    # each 3x3 window holds one valid pixel of value 1: conv = 1/3 (weight gain 1/sqrt(9)), x 9/1 -> 3
    assert torch.allclose(y[0, 0][new[0, 0] == 1], torch.full((9,), 3.0), atol=1e-5)
    assert torch.all(y[0, 0][new[0, 0] == 0] == 0)


def test_dynamic_mask_fills_windows_that_had_a_valid_token():
    torch.manual_seed(0)
    blk = SwinTransformerBlock(8, (8, 8), 2, window_size=4, shift_size=0, mlp_ratio=2)
    mask = torch.zeros(1, 8, 8, 1)
    mask[0, 1, 1] = 1  # one valid token in the top-left window
    x, new = blk(torch.randn(1, 64, 8), (8, 8), mask.view(1, 64, 1))
    new = new.view(8, 8)
    assert torch.equal(new[:4, :4], torch.ones(4, 4)) and new.sum() == 16
    # shifted block: windows are taken on the image rolled by 2
    shifted = SwinTransformerBlock(8, (8, 8), 2, window_size=4, shift_size=2, mlp_ratio=2)
    _, new = shifted(torch.randn(1, 64, 8), (8, 8), mask.view(1, 64, 1))
    assert new.view(8, 8)[1, 1] == 1 and new.sum() == 16
    assert shifted.attn_mask.shape == (4, 16, 16) and set(shifted.attn_mask.unique().tolist()) == {-100.0, 0.0}


def test_hole_token_values_do_not_reach_valid_windows():
    """A window with valid tokens draws context only from them: a hole token's value in it
    changes nothing in that window's output rows of the attention."""
    torch.manual_seed(0)
    blk = SwinTransformerBlock(8, (4, 4), 2, window_size=4, shift_size=0, mlp_ratio=2)
    mask = torch.ones(1, 16, 1)
    mask[0, 5] = 0
    x = torch.randn(1, 16, 8)
    y = x.clone()
    y[0, 5] += 10
    a, _ = blk.attn(x, mask[..., 0], None)
    b, _ = blk.attn(y, mask[..., 0], None)
    # queries see the same keys and values (token 5 excluded); only the query row of token 5 differs
    rows = torch.arange(16) != 5
    assert torch.allclose(a[0, rows], b[0, rows], atol=1e-5)


def test_resampling_convolutions_match_reference_shapes():
    x = torch.randn(2, 4, 8, 8)
    w = torch.randn(6, 4, 3, 3)
    f = fir_filter()
    assert conv2d_resample(x, w, f, down=2, padding=1).shape == (2, 6, 4, 4)
    assert conv2d_resample(x, w, f, up=2, padding=1).shape == (2, 6, 16, 16)
    assert conv2d_resample(x, torch.randn(6, 4, 1, 1), f, down=2).shape == (2, 6, 4, 4)
    # a constant image stays constant through the blur of a down conv (away from the border)
    const = conv2d_resample(torch.ones(1, 1, 16, 16), torch.ones(1, 1, 1, 1), f, down=2)
    assert torch.allclose(const[..., 1:-1, 1:-1], torch.ones(1, 1, 6, 6))


@pytest.mark.parametrize("preset,params,keys", [("mat-512", 61_562_518, 487), ("mat-256", 59_779_834, 442)])
def test_published_layouts(preset, params, keys):
    """Parameter count and key count of the official generators (counted on the official code)."""
    config = resolve_config(SPEC, preset, {"discriminator": False})[0]
    with torch.device("meta"):
        m = MAT(config)
    assert sum(p.numel() for p in m.parameters()) == params
    assert len(m.state_dict()) == keys
    assert config.multiple == config.resolution  # mid-stage windows of 16 tokens at /32 of the image


@pytest.mark.parametrize(
    "override,match",
    [
        ({"resolution": 48}, "resolution=48"),
        ({"num_heads": 5}, "num_heads=5.*divisible"),
        ({"token_res": 32}, "token_res=32"),
        ({"window_sizes": (4, 3, 4, 4, 4)}, "window_sizes"),
        ({"noise_mode": "loud"}, "noise_mode='loud'.*random, const, none"),
        ({"truncation_psi": 1.5}, "truncation_psi"),
        ({"depths": (1, 1, 1)}, "depths"),
    ],
)
def test_bad_config_is_one_line(override, match):
    with pytest.raises(ZooError, match=match) as exc:
        tiny(**override).validate()
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize("convs", [False, True])
def test_grad_checkpointing_gives_the_same_gradients(convs):
    """Transformer blocks (and, with checkpoint_convs, the conv blocks, whose noise is drawn
    again from the restored global RNG in the recomputation) give the same gradients."""
    torch.manual_seed(0)
    a = MAT(tiny(checkpoint_convs=convs))
    with torch.no_grad():
        for name, p in a.named_parameters():
            if name.endswith("noise_strength"):
                p.fill_(0.3)
    b = MAT(tiny(checkpoint_convs=convs))
    b.load_state_dict(a.state_dict())
    b.enable_grad_checkpointing()
    assert b.generator.synthesis.dec.checkpoint_convs is convs
    images, masks = batch()
    z = torch.randn(2, 32)
    for m in (a, b):
        torch.manual_seed(1)  # training draws come from the global RNG
        out, stg1 = m(images * (1 - masks), masks, z, draws=Draws())
        (out.square().mean() + stg1.square().mean()).backward()
    for name in ("generator.synthesis.first_stage.tran.0.blocks.1.attn.q.weight", "generator.synthesis.dec.Dec_32x32.conv0.conv.weight",
                 "generator.synthesis.first_stage.conv_first.conv.weight"):
        ga, gb = dict(a.named_parameters())[name].grad, dict(b.named_parameters())[name].grad
        assert ga is not None and ga.abs().sum() > 0
        assert torch.allclose(ga, gb, atol=1e-6), name


def test_style_mixing_takes_the_later_styles_from_the_second_z(model):
    images, masks = batch()
    x = images * (1 - masks)
    z, z2 = torch.randn(2, 32), torch.randn(2, 32)
    rec = Draws(torch.Generator().manual_seed(0), record=True)
    with torch.no_grad():
        a = model(x, masks, z, draws=rec)[0]
        same = model(x, masks, z, z_mix=z2, mix_cutoff=model.config.num_ws, draws=ReplayDraws(rec.log))[0]
        mixed = model(x, masks, z, z_mix=z2, mix_cutoff=1, draws=ReplayDraws(rec.log))[0]
    assert torch.equal(a, same) and not torch.equal(a, mixed)
