"""lama: shapes at several sizes, exact known pixels, padding, batching, parameter counts,
the realism score. (The FFC layers are checked against an independent re-statement of the
official code in test_lama_import.py.)"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from zoo.config import resolve_config
from zoo_plugins.lama.hooks import SPEC
from zoo_plugins.lama.model import LaMa
from zoo_plugins.lama.sample import inpaint, realism_score, symmetric_pad


def tiny_model(**overrides) -> LaMa:
    config, _ = resolve_config(SPEC, "tiny", overrides)
    torch.manual_seed(0)
    return LaMa(config).eval()


def batch(b: int, h: int, w: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(b, 3, h, w, generator=g) * 2 - 1
    masks = (torch.rand(b, 1, h, w, generator=g) > 0.6).float()
    return images, masks


@pytest.mark.parametrize("size", [(32, 32), (40, 48), (37, 45), (13, 70)])
def test_any_size_keeps_known_pixels_exactly(size):
    model = tiny_model()
    images, masks = batch(2, *size)
    out = inpaint(model, images, masks)
    assert out.images.shape == images.shape
    assert out.info["nfe"] == 1
    known = masks.expand_as(images) == 0
    assert torch.equal(out.images[known], images[known])
    hole = ~known
    assert not torch.allclose(out.images[hole], images[hole])  # the hole was filled
    assert out.images.abs().max() <= 1


def test_batched_equals_one_by_one_and_deterministic():
    model = tiny_model()
    images, masks = batch(3, 24, 40)
    together = inpaint(model, images, masks).images
    alone = torch.cat([inpaint(model, images[i : i + 1], masks[i : i + 1]).images for i in range(3)])
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-5)
    assert torch.equal(together, inpaint(model, images, masks).images)


def test_generator_sees_only_known_pixels():
    """Changing the content of the hole does not change the result (input is masked)."""
    model = tiny_model()
    images, masks = batch(2, 32, 32)
    other = images * (1 - masks) + torch.rand_like(images) * masks
    torch.testing.assert_close(inpaint(model, images, masks).images, inpaint(model, other, masks).images)


def test_forward_refuses_unpadded_sizes():
    model = tiny_model()
    images, masks = batch(1, 30, 32)
    with pytest.raises(ValueError, match="multiple of 8"):
        model(images, masks)


@pytest.mark.parametrize("pad", [(0, 3), (5, 7), (7, 0), (12, 2)])
def test_symmetric_pad_matches_numpy(pad):
    x = torch.arange(2 * 5 * 6, dtype=torch.float32).view(1, 2, 5, 6)
    ours = symmetric_pad(x, *pad)
    ref = np.pad(x.numpy(), ((0, 0), (0, 0), (0, pad[0]), (0, pad[1])), mode="symmetric")
    np.testing.assert_array_equal(ours.numpy(), ref)


def test_preset_sizes_match_the_published_models():
    counts = {}
    for preset in ("big-lama", "lama-fourier"):
        config, _ = resolve_config(SPEC, preset, None)
        with torch.device("meta"):
            model = LaMa(config)
        counts[preset] = sum(p.numel() for p in model.generator.parameters())
        assert config.n_downsampling == 3 and config.ratio_g == 0.75 and config.ngf == 64
    # LaMa paper, Table 1 / README: big-lama 51M parameters, lama-fourier 27M
    assert 50.5e6 < counts["big-lama"] < 51.5e6
    assert 26.5e6 < counts["lama-fourier"] < 27.5e6
    assert resolve_config(SPEC, "big-lama", None)[0].n_blocks == 18
    assert resolve_config(SPEC, "lama-fourier", None)[0].n_blocks == 9


def test_realism_score_is_a_probability_on_the_hole():
    model = tiny_model()
    images, masks = batch(2, 32, 32)
    out = inpaint(model, images, masks).images
    score = realism_score(model, masks, out)
    assert set(score) == {"d-realism-hole", "d-logit-hole"}
    assert 0 < score["d-realism-hole"] < 1
    assert score["d-realism-hole"] == pytest.approx(float(torch.sigmoid(torch.tensor(score["d-logit-hole"]))), abs=0.2)
    assert realism_score(model, torch.zeros_like(masks), out) is None  # no hole, no score
    assert realism_score(tiny_model(discriminator=False), masks, out) is None


def test_local_fourier_unit_option_runs_and_adds_weights():
    plain, lfu = tiny_model(), tiny_model(enable_lfu=True)
    extra = set(lfu.state_dict()) - set(plain.state_dict())
    assert extra and all(".convg2g.lfu." in k for k in extra)
    images, masks = batch(1, 32, 32)
    out = inpaint(lfu, images, masks).images
    assert out.shape == images.shape and torch.isfinite(out).all()


def test_grad_checkpointing_gives_the_same_gradients():
    torch.manual_seed(0)
    plain = tiny_model().train()
    ckpt = tiny_model().train()
    ckpt.load_state_dict(plain.state_dict())
    ckpt.generator.enable_grad_checkpointing()
    images, masks = batch(2, 32, 32)
    for model in (plain, ckpt):
        model(images, masks).square().mean().backward()
    grads = [(n, p.grad, dict(ckpt.generator.named_parameters())[n].grad) for n, p in plain.generator.named_parameters()]
    assert all(g2 is not None for _, _, g2 in grads)
    for name, g1, g2 in grads:
        torch.testing.assert_close(g1, g2, atol=1e-6, rtol=1e-5, msg=name)
