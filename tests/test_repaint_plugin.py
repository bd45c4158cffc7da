"""repaint plugin: the prior learns, sampling keeps known pixels and counts network calls,
checkpoints round-trip, CLI train -> sample -> score."""

from __future__ import annotations

import torch

from zoo.config import apply_overrides
from zoo.diffusion import count_steps, jump_points
from zoo.diffusion.losses import diffusion_loss, hole_denoising_loss
from zoo_plugins.repaint.config import PRESETS, RepaintConfig
from zoo_plugins.repaint.model import RepaintPrior, make_chain
from zoo_plugins.repaint.sample import expected_nfe, sample, score


def tiny_config(**kw) -> RepaintConfig:
    return apply_overrides(RepaintConfig(), {**PRESETS["tiny"], **kw})


def shapes_batch(n: int = 8, size: int = 32) -> torch.Tensor:
    from zoo.data import open_data

    data = open_data("shapes", resolution=size, split="train", seed=0)
    return torch.stack([data[i]["image"] for i in range(n)])


def box_holes(n: int, size: int = 32) -> torch.Tensor:
    holes = torch.zeros(n, 1, size, size)
    holes[..., 8:22, 6:20] = 1
    return holes


def test_tiny_prior_loss_falls_on_shapes():
    torch.manual_seed(0)
    cfg = tiny_config()
    model = RepaintPrior(cfg)
    chain = make_chain(cfg)
    x = shapes_batch(4, size=16)  # the UNet is fully convolutional; 16 px keeps this fast
    everywhere = torch.ones(4, 1, 16, 16)
    levels = [50, 200, 400, 700]
    before = hole_denoising_loss(model, chain, x, everywhere, levels).mean()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(40):
        loss, logs = diffusion_loss(model, chain, x, generator=g, learn_sigma=True)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = hole_denoising_loss(model, chain, x, everywhere, levels).mean()
    assert "vb" in logs  # the hybrid loss trains the variance channels too
    assert after < 0.5 * before, (before, after)


def test_sample_keeps_known_pixels_counts_nfe_and_is_seeded():
    torch.manual_seed(0)
    cfg = tiny_config()
    model = RepaintPrior(cfg).eval()
    torch.nn.init.normal_(model.unet.out[2].weight, std=0.05)  # a non-zero output layer
    x, holes = shapes_batch(2), box_holes(2)
    a = sample(model, cfg, x, holes, torch.Generator().manual_seed(3), progress=False)
    b = sample(model, cfg, x, holes, torch.Generator().manual_seed(3), progress=False)
    c = sample(model, cfg, x, holes, torch.Generator().manual_seed(4), progress=False)
    assert torch.equal(a.images * (1 - holes), x * (1 - holes))
    assert torch.equal(a.images, b.images)
    assert (a.images - c.images).abs().max() > 1e-3
    assert a.info["nfe"] == count_steps(jump_points(cfg.t_T, cfg.jump_length, cfg.jump_n_sample)).down == expected_nfe(cfg)
    assert (a.images * holes).abs().sum() > 0


def test_sampling_modes_and_odd_sizes():
    cfg = tiny_config(sampling="published")
    assert expected_nfe(cfg) == 2410
    fast = tiny_config(sampling="fast")
    assert expected_nfe(fast) <= 241  # one tenth of the published schedule's calls or fewer
    # 31x33 is not a multiple of 2 (the tiny UNet halves once): padded, sampled, cropped back
    model = RepaintPrior(tiny_config()).eval()
    x = torch.rand(1, 3, 31, 33) * 2 - 1
    holes = torch.zeros(1, 1, 31, 33)
    holes[..., 5:20, 7:25] = 1
    out = sample(model, tiny_config(t_T=3, jump_n_sample=1), x, holes, torch.Generator().manual_seed(0), progress=False)
    assert out.images.shape == x.shape
    assert torch.equal(out.images * (1 - holes), x * (1 - holes))


def test_score_is_hole_only_and_deterministic():
    torch.manual_seed(0)
    cfg = tiny_config()
    model = RepaintPrior(cfg).eval()
    torch.nn.init.normal_(model.unet.out[2].weight, std=0.05)
    x, holes = shapes_batch(2), box_holes(2)
    s1 = score(model, cfg, x, holes)["hole_denoise_mse"]
    assert s1 == score(model, cfg, x, holes)["hole_denoise_mse"]
    # changing pixels outside the hole changes the context, changing only the weights of
    # known pixels (a second, disjoint hole) changes which errors count
    other = torch.zeros_like(holes)
    other[..., 0:6, 0:6] = 1
    assert s1 != score(model, cfg, x, other)["hole_denoise_mse"]
    assert s1 > 0


def test_checkpoint_round_trip(tmp_path):
    from zoo.checkpoint import load_model, save_checkpoint
    from zoo.runner import checkpoint_meta

    torch.manual_seed(0)
    cfg = tiny_config(learn_sigma=False, channel_mult=(1, 2, 2))
    model = RepaintPrior(cfg).eval()
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.02)
    path = save_checkpoint(tmp_path / "p.safetensors", model.state_dict(), checkpoint_meta("repaint", cfg, "tiny", 7, {"kind": "test"}))
    loaded, cfg2, meta = load_model(path, "repaint")
    assert cfg2 == cfg and meta.step == 7
    x, t = torch.randn(2, 3, 32, 32), torch.tensor([3, 900])
    with torch.no_grad():
        assert torch.equal(model(x, t), loaded(x, t))
        assert model(x, t).shape == (2, 3, 32, 32)


def test_cli_train_sample_score(cli, tmp_path, image_folder):
    from zoo.checkpoint import load_model
    from zoo.imageio import load_image, load_mask
    from zoo.plugins import get_manager

    images, masks = image_folder
    run = tmp_path / "run"
    r = cli("train", "repaint", "--data", "shapes", "--preset", "tiny", "--steps", "3", "--batch-size", "2", "--out", run)
    assert r.exit_code == 0, r.output
    ckpt = run / "model.safetensors"
    out = tmp_path / "out"
    r = cli("sample", "repaint", "--checkpoint", ckpt, "--images", images, "--masks", masks, "--out", out, "--set", "t_T=4", "--set", "jump_n_sample=2")
    assert r.exit_code == 0, r.output
    nfe = count_steps(jump_points(4, 2, 2)).down
    assert f"{nfe} network calls per image" in r.output
    pred = load_image(out / "img0.png")
    gt, hole = load_image(images / "img0.png"), load_mask(masks / "img0.png")
    assert torch.equal((pred - gt).abs() * (1 - hole), torch.zeros_like(pred))  # known pixels exact (8-bit PNGs)
    # `zoo score` is built by another helper; here the plugin's zoo_score hook is called directly
    model, cfg, _ = load_model(ckpt, "repaint")
    result = get_manager().call("zoo_score", "repaint", model=model, config=cfg, images=gt[None], masks=hole[None], outputs=pred[None])
    assert set(result) == {"hole_denoise_mse"} and 0 < result["hole_denoise_mse"] < 10


def test_bad_settings_are_one_line_errors(cli, tmp_path):
    r = cli("train", "repaint", "--data", "shapes", "--preset", "tiny", "--set", "sampler=euler", "--out", tmp_path / "r")
    assert r.exit_code == 2 and "valid choices: ddpm, ddim" in r.output
    r = cli("train", "repaint", "--data", "shapes", "--preset", "tiny", "--set", "t_T=2000", "--out", tmp_path / "r")
    assert r.exit_code == 2 and "t_T (2000) cannot exceed diffusion_steps (1000)" in r.output
