"""zoo.diffusion: RePaint's jump schedule, respacing, the loop against diffusers' RePaint."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from zoo.diffusion import Chain, count_steps, diffusers_points, jump_points, make_betas, repaint


def test_published_schedule_counts():
    # the numbers of the paper's setting (t_T=250, jump 10, 10 resamplings), as issue 7 states them
    points = jump_points(250, 10, 10)
    counts = count_steps(points)
    assert (counts.points, counts.down, counts.up) == (4571, 2410, 2160)
    assert points[0] == 249 and points[-1] == -1
    assert all(abs(a - b) == 1 for a, b in zip(points, points[1:]))


def test_schedule_without_jumps_is_a_straight_walk():
    assert jump_points(5, 10, 10) == [4, 3, 2, 1, 0, -1]
    assert jump_points(6, 2, 1) == [5, 4, 3, 2, 1, 0, -1]
    # one resampling at jump points 0 and 2 of a 5-level chain, jumps of 2
    assert jump_points(5, 2, 2) == [4, 3, 2, 3, 4, 3, 2, 1, 0, 1, 2, 1, 0, -1]


def test_diffusers_walk_matches_its_scheduler():
    from diffusers import RePaintScheduler

    sched = RePaintScheduler(num_train_timesteps=250)
    sched.set_timesteps(250, jump_length=10, jump_n_sample=10)
    levels = diffusers_points(250, 10, 10)
    # diffusers' element t leaves the sample at level t - 1
    assert levels[1:] == [int(t) - 1 for t in sched.timesteps]
    assert count_steps(levels) == count_steps(jump_points(250, 10, 10))


def test_respacing_keeps_alphas_cumprod():
    chain = Chain.from_betas(make_betas("linear", 1000))
    short = chain.respace(250)
    assert len(short) == 250
    assert short.timesteps[0] == 0 and short.timesteps[-1] == 999
    assert torch.allclose(short.alphas_cumprod, chain.alphas_cumprod[short.timesteps])
    with pytest.raises(Exception, match="cannot respace"):
        chain.respace(2000)


def _tiny_unet():
    from diffusers import UNet2DModel

    torch.manual_seed(0)
    return UNet2DModel(
        sample_size=16,
        in_channels=3,
        out_channels=3,
        layers_per_block=1,
        block_out_channels=(16, 32),
        down_block_types=("DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "UpBlock2D"),
        norm_num_groups=8,
    ).eval()


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_repaint_equals_diffusers_pipeline(eta):
    from diffusers import RePaintPipeline, RePaintScheduler

    unet = _tiny_unet()
    T, jump, n = 20, 3, 3
    sched = RePaintScheduler(num_train_timesteps=T, beta_start=0.001, beta_end=0.2)
    pipe = RePaintPipeline(unet=unet, scheduler=sched)
    pipe.set_progress_bar_config(disable=True)
    g = torch.Generator().manual_seed(0)
    image = torch.rand(2, 3, 16, 16, generator=g) * 2 - 1
    hole = torch.zeros(2, 1, 16, 16)
    hole[:, :, 4:12, 3:10] = 1
    ref = pipe(image, 1 - hole, num_inference_steps=T, eta=eta, jump_length=jump, jump_n_sample=n,
               generator=torch.Generator().manual_seed(7), output_type="np").images  # (B, H, W, 3) in [0, 1]

    chain = Chain.from_betas(sched.betas)
    out = repaint(lambda x, t: unet(x, t).sample, image, hole, chain, diffusers_points(T, jump, n),
                  generator=torch.Generator().manual_seed(7), sampler="ddim", eta=eta)
    ours = (out.images / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(ours, ref, atol=2e-5)
    assert out.nfe == count_steps(diffusers_points(T, jump, n)).down
    # a different seed gives a different fill: the comparison is not vacuous
    other = repaint(lambda x, t: unet(x, t).sample, image, hole, chain, diffusers_points(T, jump, n),
                    generator=torch.Generator().manual_seed(8), sampler="ddim", eta=eta)
    assert (other.images - out.images).abs().max() > 1e-3


def test_known_pixels_are_exact_and_ddpm_equals_ddim_eta1():
    unet = _tiny_unet()
    chain = Chain.from_betas(torch.linspace(1e-3, 0.2, 10))
    image = torch.rand(1, 3, 16, 16) * 2 - 1
    hole = torch.zeros(1, 1, 16, 16)
    hole[..., 2:9, 5:14] = 1
    pts = jump_points(10, 2, 2)
    a = repaint(lambda x, t: unet(x, t).sample, image, hole, chain, pts, torch.Generator().manual_seed(1), "ddpm", clip=False)
    b = repaint(lambda x, t: unet(x, t).sample, image, hole, chain, pts, torch.Generator().manual_seed(1), "ddim", eta=1.0, clip=False)
    assert torch.equal(a.images * (1 - hole), image * (1 - hole))
    # on consecutive levels DDIM with eta = 1 is the DDPM posterior step (without x0 clipping,
    # which DDIM's direction term, using the raw eps, does not see)
    torch.testing.assert_close(a.images, b.images, atol=1e-4, rtol=0)


def test_vlb_term_vanishes_for_the_true_posterior():
    from zoo.diffusion.losses import vlb_term

    chain = Chain.from_betas(make_betas("linear", 1000))
    x0 = torch.rand(3, 3, 8, 8) * 1.8 - 0.9
    noise = torch.randn_like(x0)
    t = torch.tensor([5, 300, 999])
    x_t = chain.q_sample(x0, t, noise)
    v_true = -torch.ones_like(x0)  # frac 0: the (clipped) posterior variance
    kl = vlb_term(chain, x0, x_t, t, noise, v_true)
    assert kl.abs().max() < 1e-3
    wrong = vlb_term(chain, x0, x_t, t, noise + 0.5, torch.ones_like(x0))
    assert (wrong > kl).all() and (wrong[:2] > 1e-3).all()  # at t=999 the mean barely depends on eps


def test_fresh_known_noise_redraws_the_known_region_before_every_call():
    """known_noise="fresh" (official RePaint): every network input's known part is the image
    noised to that level with its own draw; known pixels exact, same NFE, seeded."""
    chain = Chain.from_betas(torch.linspace(1e-3, 0.2, 12))
    image = torch.rand(2, 3, 8, 8) * 2 - 1
    hole = torch.zeros(2, 1, 8, 8)
    hole[..., 1:5, 2:7] = 1
    pts = jump_points(12, 3, 3)
    seen = []

    def model(x, t):  # records its inputs; a fixed, non-trivial "eps" prediction
        seen.append(x.clone())
        return 0.3 * x

    out = repaint(model, image, hole, chain, pts, torch.Generator().manual_seed(5), known_noise="fresh")
    assert out.nfe == count_steps(pts).down == len(seen)
    assert torch.equal(out.images * (1 - hole), image * (1 - hole))
    # replay the generator in the loop's order: start, then per step down (known draw, step
    # noise), per undo one draw; each input's known part must be q(x_a | image) with its draw
    g = torch.Generator().manual_seed(5)
    torch.randn(image.shape, generator=g)
    calls = 0
    for a, b in zip(pts, pts[1:]):
        if b < a:
            eps = torch.randn(image.shape, generator=g)
            expect = chain.q_sample(image, a, eps)
            torch.testing.assert_close(seen[calls] * (1 - hole), expect * (1 - hole), atol=1e-6, rtol=0)
            calls += 1
        torch.randn(image.shape, generator=g)
    again = repaint(model, image, hole, chain, pts, torch.Generator().manual_seed(5), known_noise="fresh")
    assert torch.equal(again.images, out.images)
    shared = repaint(model, image, hole, chain, pts, torch.Generator().manual_seed(5))
    assert (shared.images - out.images).abs().max() > 1e-3  # the option changes the sampler
    with pytest.raises(ValueError, match="known_noise"):
        repaint(model, image, hole, chain, pts, known_noise="official")
