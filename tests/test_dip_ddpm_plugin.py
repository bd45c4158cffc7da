"""dip-ddpm plugin: DIP fits only the known pixels and its error falls, the batched DIP
networks are independent, the refinement from t0 makes exactly the stated number of network
calls, keeps known pixels and is seeded; priors from repaint checkpoints and diffusers
folders; CLI train -> sample -> score; one-line errors."""

from __future__ import annotations

import json

import pytest
import torch

from zoo.config import apply_overrides
from zoo.diffusion import count_steps, jump_points
from zoo.errors import ZooError
from zoo_plugins.dip_ddpm.config import PRESETS, DipDdpmConfig
from zoo_plugins.dip_ddpm.model import DipDdpm, SkipNet, refine_chain
from zoo_plugins.dip_ddpm.sample import expected_nfe, fit_dip, sample, score
from zoo_plugins.dip_ddpm.train import dip_loss


def tiny(**kw) -> DipDdpmConfig:
    cfg = apply_overrides(DipDdpmConfig(), {**PRESETS["tiny"], **kw})
    cfg.validate()
    return cfg


def shapes_batch(n: int = 4, size: int = 32) -> torch.Tensor:
    from zoo.data import open_data

    data = open_data("shapes", resolution=size, split="train", seed=0)
    return torch.stack([data[i]["image"] for i in range(n)])


def box_holes(n: int, size: int = 32) -> torch.Tensor:
    holes = torch.zeros(n, 1, size, size)
    holes[..., 8:22, 6:20] = 1
    return holes


def prior_model(cfg: DipDdpmConfig) -> DipDdpm:
    torch.manual_seed(0)
    model = DipDdpm(cfg).eval()
    torch.nn.init.normal_(model.prior.unet.out[2].weight, std=0.05)  # a non-zero output layer
    return model


def test_prior_task_loss_falls_on_shapes():
    from zoo.diffusion.losses import hole_denoising_loss
    from zoo_plugins.dip_ddpm.model import make_chain
    from zoo_plugins.dip_ddpm.train import PriorTask

    torch.manual_seed(0)
    cfg = tiny()
    task = PriorTask(DipDdpm(cfg), cfg)
    x = shapes_batch(4, size=8)  # the UNet is fully convolutional; 8 px keeps this fast
    everywhere, levels = torch.ones(4, 1, 8, 8), [50, 200, 400, 700]
    before = hole_denoising_loss(task.model, make_chain(cfg), x, everywhere, levels).mean()
    opt = task.optimizers()["prior"]
    for g in opt.param_groups:
        g["lr"] = 2e-3
    for step in range(30):
        loss, logs = task.loss({"image": x}, step)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = hole_denoising_loss(task.model, make_chain(cfg), x, everywhere, levels).mean()
    assert "vb" in logs and after < 0.5 * before, (before, after)


def test_dip_loss_and_fit_ignore_hole_pixels():
    cfg = tiny(dip_iters=6, dip_eval_every=3)
    x, holes = shapes_batch(2), box_holes(2)
    pred = torch.rand(2, 3, 32, 32, requires_grad=True)
    target = (x + 1) / 2
    dip_loss(pred, target, 1 - holes).backward()
    assert pred.grad[holes.expand_as(pred) > 0].abs().max() == 0  # no gradient reaches the hole
    other = x * (1 - holes) + torch.rand_like(x) * holes  # other hole content
    a = fit_dip(x, holes, cfg, torch.Generator().manual_seed(1))
    b = fit_dip(other, holes, cfg, torch.Generator().manual_seed(1))
    assert torch.equal(a.images, b.images) and torch.equal(a.heldout_mse, b.heldout_mse)


def test_dip_fit_error_falls_and_early_stopping_keeps_best():
    x, holes = shapes_batch(4), box_holes(4)
    one = fit_dip(x, holes, tiny(dip_iters=1), torch.Generator().manual_seed(0))
    many = fit_dip(x, holes, tiny(dip_iters=60, dip_patience=100), torch.Generator().manual_seed(0))
    assert (many.fit_mse < 0.3 * one.fit_mse).all(), (one.fit_mse, many.fit_mse)
    assert (many.heldout_mse < one.heldout_mse).all()
    # a patience of 1 stops every image at its first non-improving evaluation
    early = fit_dip(x, holes, tiny(dip_iters=400, dip_patience=1, dip_eval_every=10), torch.Generator().manual_seed(0))
    assert early.iters < 400 and (early.best_iter <= early.iters).all()


def test_batched_dip_networks_are_independent():
    cfg = tiny(dip_iters=8, dip_eval_every=4)
    x, holes = shapes_batch(3), box_holes(3)
    a = fit_dip(x, holes, cfg, torch.Generator().manual_seed(0))
    y = x.clone()
    y[2] = -y[2]  # another image in slot 2 only
    b = fit_dip(y, holes, cfg, torch.Generator().manual_seed(0))
    assert torch.allclose(a.images[:2], b.images[:2], atol=1e-6)
    assert not torch.allclose(a.images[2], b.images[2])
    # one network per image: parameters grouped G times
    net = SkipNet(3, cfg)
    assert net.head.weight.shape == (3 * 3, cfg.dip_channels_up[0], 1, 1)


@pytest.mark.parametrize("t0,steps,jump,resample", [(100, 5, 1, 1), (50, 10, 1, 1), (200, 8, 2, 3), (999, 3, 1, 1)])
def test_refinement_makes_exactly_the_stated_network_calls(t0, steps, jump, resample):
    stages = "ddpm" if t0 == 999 else "dip+ddpm"
    cfg = tiny(t0=t0, refine_steps=steps, jump_length=jump, jump_n_sample=resample, dip_iters=2, stages=stages)
    chain = refine_chain(cfg)
    assert len(chain) == steps and int(chain.timesteps[-1]) == t0 and int(chain.timesteps[0]) == 0
    model = prior_model(cfg)
    calls = []
    model.prior.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    x, holes = shapes_batch(2), box_holes(2)
    out = sample(model, cfg, x, holes, torch.Generator().manual_seed(0), progress=False)
    want = count_steps(jump_points(steps, jump, resample)).down
    assert len(calls) == out.info["nfe"] == expected_nfe(cfg) == want
    assert (want == steps) == (resample == 1)
    assert out.info["time_ddpm_s"] > 0 and (out.info["time_dip_s"] > 0) == (stages != "ddpm")


def test_sample_keeps_known_pixels_is_seeded_and_never_reads_the_hole():
    cfg = tiny(dip_iters=10)
    model = prior_model(cfg)
    x, holes = shapes_batch(2), box_holes(2)
    a = sample(model, cfg, x, holes, torch.Generator().manual_seed(3), progress=False)
    b = sample(model, cfg, x * (1 - holes) + 0.7 * holes, holes, torch.Generator().manual_seed(3), progress=False)
    c = sample(model, cfg, x, holes, torch.Generator().manual_seed(4), progress=False)
    assert torch.equal(a.images * (1 - holes), x * (1 - holes))
    assert torch.equal(a.images, b.images)
    assert (a.images - c.images).abs().max() > 1e-3
    dip_only = sample(model, tiny(dip_iters=10, stages="dip"), x, holes, torch.Generator().manual_seed(3), progress=False)
    assert dip_only.info["nfe"] == 0 and torch.equal(dip_only.images * (1 - holes), x * (1 - holes))
    # sizes the networks cannot halve enough times: padded, sampled, cropped back
    odd = torch.rand(1, 3, 30, 34) * 2 - 1
    hole = torch.zeros(1, 1, 30, 34)
    hole[..., 5:20, 7:25] = 1
    out = sample(model, tiny(dip_iters=3, refine_steps=2), odd, hole, torch.Generator().manual_seed(0), progress=False)
    assert out.images.shape == odd.shape and torch.equal(out.images * (1 - hole), odd * (1 - hole))


def test_score_hook_is_deterministic():
    cfg = tiny(dip_iters=10)
    model = prior_model(cfg)
    x, holes = shapes_batch(2), box_holes(2)
    s1, s2 = score(model, cfg, x, holes), score(model, cfg, x, holes)
    assert s1 == s2 and set(s1) == {"dip_fit_mse", "dip_heldout_mse", "hole_denoise_mse"}
    assert all(v > 0 for v in s1.values())


def test_checkpoint_round_trip(tmp_path):
    from zoo.checkpoint import load_model, save_checkpoint
    from zoo.runner import checkpoint_meta

    cfg = tiny(learn_sigma=False, channel_mult=(1, 2, 2))
    model = prior_model(cfg)
    path = save_checkpoint(tmp_path / "p.safetensors", model.state_dict(), checkpoint_meta("dip-ddpm", cfg, "tiny", 7, {"kind": "test"}))
    loaded, cfg2, meta = load_model(path, "dip-ddpm")
    assert cfg2 == cfg and meta.step == 7
    x, t = torch.randn(2, 3, 32, 32), torch.tensor([3, 900])
    with torch.no_grad():
        assert torch.equal(model(x, t), loaded(x, t)) and model(x, t).shape == (2, 3, 32, 32)


def test_cli_train_sample_score(cli, tmp_path, image_folder):
    from zoo.imageio import load_image, load_mask

    images, masks = image_folder
    run = tmp_path / "run"
    r = cli("train", "dip-ddpm", "--data", "shapes", "--preset", "tiny", "--steps", "3", "--batch-size", "2", "--out", run)
    assert r.exit_code == 0, r.output
    ckpt = run / "model.safetensors"
    out = tmp_path / "out"
    r = cli("sample", "dip-ddpm", "--checkpoint", ckpt, "--images", images, "--masks", masks, "--out", out,
            "--set", "refine_steps=4", "--set", "dip_iters=10")
    assert r.exit_code == 0, r.output
    assert "4 network calls per image" in r.output
    pred = load_image(out / "img0.png")
    gt, hole = load_image(images / "img0.png"), load_mask(masks / "img0.png")
    assert torch.equal((pred - gt).abs() * (1 - hole), torch.zeros_like(pred))  # known pixels exact (8-bit PNGs)
    r = cli("score", "dip-ddpm", "--checkpoint", ckpt, "--data", "shapes", "--masks", "box", "--metric", "psnr",
            "--count", "2", "--size", "32", "--set", "dip_iters=10", "--out", tmp_path / "score", "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.output[r.output.index("{"):])
    assert data["count"] == 2 and data["metrics"]["psnr"]["value"] > 0
    assert {"dip-ddpm/dip_heldout_mse", "dip-ddpm/hole_denoise_mse"} <= set(data["method_scores"])


def test_prior_from_a_repaint_checkpoint(cli, tmp_path):
    from zoo.checkpoint import load_checkpoint

    rp = tmp_path / "rp"
    r = cli("train", "repaint", "--data", "shapes", "--preset", "tiny", "--steps", "2", "--batch-size", "2", "--out", rp, "--set", "learn_sigma=false")
    assert r.exit_code == 0, r.output
    run = tmp_path / "dd"
    r = cli("train", "dip-ddpm", "--data", "shapes", "--preset", "tiny", "--out", run, "--set", f"prior={rp / 'model.safetensors'}")
    assert r.exit_code == 0, r.output
    _, theirs = load_checkpoint(rp / "model.safetensors", "repaint")
    meta, ours = load_checkpoint(run / "model.safetensors", "dip-ddpm")
    assert set(ours) == {f"prior.{k}" for k in theirs}
    assert all(torch.equal(ours[f"prior.{k}"], v) for k, v in theirs.items())
    assert meta.config["learn_sigma"] is False  # the prior's settings, not the preset's
    imported = tmp_path / "imp.safetensors"
    r = cli("import", "dip-ddpm", rp / "model.safetensors", "--out", imported, "--preset", "tiny")
    assert r.exit_code == 0, r.output
    assert torch.equal(load_checkpoint(imported, "dip-ddpm")[1]["prior.unet.out.2.weight"], theirs["unet.out.2.weight"])


def test_prior_from_a_diffusers_folder(cli, tmp_path, monkeypatch):
    """Read by the core's importer, so it works with the repaint plugin disabled."""
    from diffusers import DDPMScheduler, UNet2DModel

    from zoo.checkpoint import load_model
    from zoo.plugins import reset_manager

    monkeypatch.setenv("ZOO_DISABLE_PLUGINS", "repaint")
    reset_manager()

    root = tmp_path / "ddpm-tiny"
    unet = UNet2DModel(sample_size=16, block_out_channels=(16, 32), down_block_types=("DownBlock2D", "AttnDownBlock2D"),
                       up_block_types=("AttnUpBlock2D", "UpBlock2D"), layers_per_block=1, norm_num_groups=8)
    unet.save_pretrained(root / "unet")
    DDPMScheduler(num_train_timesteps=1000).save_config(root / "scheduler")
    (root / "model_index.json").write_text(json.dumps({"_class_name": "DDPMPipeline", "unet": ["diffusers", "UNet2DModel"], "scheduler": ["diffusers", "DDPMScheduler"]}))
    out = tmp_path / "dd"
    r = cli("train", "dip-ddpm", "--data", "shapes", "--preset", "tiny", "--out", out, "--set", f"prior={root}")
    assert r.exit_code == 0, r.output
    model, cfg, _ = load_model(out / "model.safetensors", "dip-ddpm")
    assert cfg.backbone == "diffusers" and cfg.resolution == 16
    x, holes = shapes_batch(1, 16), box_holes(1, 16)
    res = sample(model, apply_overrides(cfg, {"dip_iters": 2, "refine_steps": 2, "dip_channels_down": [8, 8], "dip_channels_up": [8, 8], "dip_channels_skip": [2, 2]}),
                 x, holes, torch.Generator().manual_seed(0), progress=False)
    assert res.info["nfe"] == 2 and torch.equal(res.images * (1 - holes), x * (1 - holes))
    monkeypatch.delenv("ZOO_DISABLE_PLUGINS")
    reset_manager()


def test_bad_settings_are_one_line_errors(cli, tmp_path):
    def error(*args) -> str:
        r = cli("train", "dip-ddpm", "--data", "shapes", "--preset", "tiny", "--out", tmp_path / "r", *args)
        lines = [ln for ln in r.output.splitlines() if ln.startswith("Error:")]
        assert r.exit_code == 2 and len(lines) == 1, r.output
        return lines[0]

    assert "valid choices: ddpm, ddim" in error("--set", "sampler=euler")
    assert "t0: 1000; valid: 1 to 999" in error("--set", "t0=1000")
    assert "refine_steps: 200; valid: 1 to 101" in error("--set", "refine_steps=200")
    assert "dip_channels_up: 2 entries" in error("--set", "dip_channels_up=[8,8]")
    assert "stages=ddpm starts from pure noise" in error("--set", "stages=ddpm")
    model = prior_model(tiny())
    with pytest.raises(ZooError, match="dip_channels_down: 4 scales need images of at least 32 px"):
        sample(model, tiny(dip_channels_down=[8] * 4, dip_channels_up=[8] * 4, dip_channels_skip=[0] * 4), torch.zeros(1, 3, 16, 16), torch.ones(1, 1, 16, 16), torch.Generator(), progress=False)
    assert "prior" in error("--set", f"prior={tmp_path / 'missing.pt'}") and not (tmp_path / "r" / "model.safetensors").exists()
