"""dit-mca plugin: the denoiser learns on shapes, sampling keeps known pixels, is seeded and
counts network calls (guidance = 2), checkpoints round-trip, one `zoo train` runs both
stages, the stage option, vae=PATH and init=PATH, CLI train -> sample -> score."""

from __future__ import annotations

import json

import pytest
import torch

from zoo.config import apply_overrides
from zoo.errors import ZooError
from zoo_plugins.dit_mca.config import PRESETS, DitMcaConfig
from zoo_plugins.dit_mca.model import DitMca, make_chain
from zoo_plugins.dit_mca.sample import expected_nfe, sample
from zoo_plugins.dit_mca.train import DenoiserTask, measure_latent_scale


def tiny(**kw) -> DitMcaConfig:
    return apply_overrides(DitMcaConfig(), {**PRESETS["tiny"], **kw})


def shapes(n: int = 4, size: int = 32):
    from zoo.data import open_data

    data = open_data("shapes", resolution=size, split="train", seed=0)
    return data, torch.stack([data[i]["image"] for i in range(n)])


def box_holes(n: int, size: int = 32) -> torch.Tensor:
    holes = torch.zeros(n, 1, size, size)
    holes[..., 8:22, 6:20] = 1
    return holes


def nonzero(model: DitMca) -> DitMca:
    torch.nn.init.normal_(model.dit.final_layer.linear.weight, std=0.05)
    torch.nn.init.normal_(model.dit.final_layer.adaLN_modulation[-1].weight, std=0.05)
    return model


@torch.no_grad()
def eval_mse(task: DenoiserTask, x: torch.Tensor, holes: torch.Tensor) -> float:
    g = torch.Generator().manual_seed(0)
    z0 = task.model.encode(x)
    context, valid, _ = task.model.context(x, holes)
    total = 0.0
    for k in (50, 200, 500, 800):
        noise = torch.randn(z0.shape, generator=g)
        t = torch.full((x.shape[0],), k)
        eps = task.model(task.chain.q_sample(z0, t, noise), t, context, valid)[:, : z0.shape[1]]
        total += (eps - noise).pow(2).mean().item()
    return total / 4


def test_denoiser_loss_falls_on_shapes():
    torch.manual_seed(0)
    cfg = tiny()
    model = DitMca(cfg)
    data, x = shapes(4)
    model.latent_scale.fill_(measure_latent_scale(model, data, 4, max_images=8))
    holes = box_holes(4)
    task = DenoiserTask(model, cfg)
    opt = task.optimizers()["dit"]
    before = eval_mse(task, x, holes)
    for step in range(60):
        loss, logs = task.loss({"image": x, "mask": holes}, step)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = eval_mse(task, x, holes)
    assert "vb" in logs and all(p.grad is None for p in model.vae.parameters())  # VAE frozen
    assert after < 0.6 * before, (before, after)


def test_sample_keeps_known_pixels_is_seeded_and_counts_calls():
    torch.manual_seed(0)
    cfg = tiny()
    model = nonzero(DitMca(cfg)).eval()
    _, x = shapes(2)
    holes = box_holes(2)
    a = sample(model, cfg, x, holes, torch.Generator().manual_seed(3), progress=False)
    b = sample(model, cfg, x * (1 - holes) + holes * torch.rand_like(x), holes, torch.Generator().manual_seed(3), progress=False)
    c = sample(model, cfg, x, holes, torch.Generator().manual_seed(4), progress=False)
    assert torch.equal(a.images * (1 - holes), x * (1 - holes))  # known pixels exact
    assert torch.equal(a.images, b.images)  # hole content is never read; same seed, same result
    assert (a.images - c.images).abs().max() > 1e-3
    assert a.info["nfe"] == expected_nfe(cfg) == 10 + 4 * 2  # 10 levels; jump points 0, 2, 4, 6 redo 2 levels once
    guided = tiny(guidance=2.0, jump_n_sample=1)
    d = sample(model, guided, x, holes, torch.Generator().manual_seed(3), progress=False)
    assert d.info["nfe"] == 2 * 10 == expected_nfe(guided)
    # odd sizes: padded to a multiple of 4 (VAE 2x, patch 2) and cropped back
    y = torch.rand(1, 3, 29, 35) * 2 - 1
    hy = torch.zeros(1, 1, 29, 35)
    hy[..., 5:20, 7:25] = 1
    e = sample(model, tiny(num_steps=3, jump_n_sample=1), y, hy, torch.Generator().manual_seed(0), progress=False)
    assert e.images.shape == y.shape and torch.equal(e.images * (1 - hy), y * (1 - hy))


def test_checkpoint_round_trip(tmp_path):
    from zoo.checkpoint import load_model, save_checkpoint
    from zoo.runner import checkpoint_meta

    torch.manual_seed(0)
    cfg = tiny(latent_scale=0.7)
    model = nonzero(DitMca(cfg)).eval()
    path = save_checkpoint(tmp_path / "m.safetensors", model.state_dict(), checkpoint_meta("dit-mca", cfg, "tiny", 5, {"kind": "test"}))
    loaded, cfg2, meta = load_model(path, "dit-mca")
    assert cfg2 == cfg and meta.step == 5 and float(loaded.latent_scale) == pytest.approx(0.7)
    z, t, ctx, valid = torch.randn(2, 4, 8, 8), torch.tensor([1, 900]), torch.randn(2, 5, 8, 8), torch.ones(2, 16)
    with torch.no_grad():
        assert torch.equal(model(z, t, ctx, valid), loaded(z, t, ctx, valid))


def test_bad_config_is_one_line():
    for change, text in [({"hidden_size": 66, "num_heads": 4}, "hidden_size=66 is not divisible by num_heads=4"),
                         ({"resolution": 30}, "resolution=30 must be a multiple of 4"),
                         ({"num_steps": 2000}, "num_steps=2000 cannot exceed diffusion_steps=1000"),
                         ({"stage": "denoiser"}, "stage=denoiser needs vae=PATH"),
                         ({"vae_channels": (32, 48)}, "multiples of 32")]:
        with pytest.raises(ZooError, match=text.replace("(", r"\(").replace(")", r"\)")):
            tiny(**change).validate()


def test_cli_train_both_stages_sample_score(cli, tmp_path, image_folder):
    from zoo.checkpoint import read_meta
    from zoo.imageio import load_image, load_mask

    images, masks = image_folder
    run = tmp_path / "run"
    r = cli("train", "dit-mca", "--data", "shapes", "--preset", "tiny", "--steps", "3", "--batch-size", "2",
            "--set", "vae_steps=3", "--save-every", "3", "--out", run)
    assert r.exit_code == 0, r.output
    assert "stage 1/2, VAE" in r.output and "stage 2/2, denoiser" in r.output
    assert (run / "vae" / "log.jsonl").is_file() and (run / "model.safetensors").is_file()
    meta = read_meta(run / "model.safetensors")
    assert meta.config["latent_scale"] > 0
    out = tmp_path / "out"
    r = cli("sample", "dit-mca", "--checkpoint", run / "model.safetensors", "--images", images, "--masks", masks, "--out", out,
            "--set", "num_steps=4", "--set", "jump_n_sample=1", "--set", "guidance=1.5")
    assert r.exit_code == 0, r.output
    assert "8 network calls per image" in r.output  # 4 steps x 2 (guidance)
    pred, gt, hole = load_image(out / "img0.png"), load_image(images / "img0.png"), load_mask(masks / "img0.png")
    assert torch.equal((pred - gt).abs() * (1 - hole), torch.zeros_like(pred))  # known pixels exact (8-bit PNGs)
    r = cli("score", "--pred", out, "--gt", images, "--masks", masks, "--metric", "psnr,l1-hole", "--json")
    assert r.exit_code == 0, r.output
    assert "psnr" in r.output and "l1-hole" in r.output
    # resume continues the denoiser stage; the VAE stage is not run again
    r = cli("train", "dit-mca", "--data", "shapes", "--resume", run, "--steps", "4")
    assert r.exit_code == 0, r.output
    assert "stage 1/2" not in r.output and read_meta(run / "model.safetensors").step == 4


def test_cli_stages_vae_folder_and_init(cli, tmp_path):
    from diffusers import AutoencoderKL

    from zoo.checkpoint import load_checkpoint
    from test_dit_mca_model import s2_state_dict

    # stage vae alone, then stage denoiser from that checkpoint
    vae_run = tmp_path / "vae_run"
    r = cli("train", "dit-mca", "--data", "shapes", "--preset", "tiny", "--steps", "2", "--batch-size", "2", "--set", "stage=vae", "--out", vae_run)
    assert r.exit_code == 0, r.output
    _, vae_sd = load_checkpoint(vae_run / "model.safetensors")
    # a diffusers VAE folder (the layout of stabilityai/sd-vae-ft-ema), random weights
    folder = tmp_path / "vae_folder"
    vae = AutoencoderKL(block_out_channels=(32, 32), down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                        latent_channels=4, layers_per_block=1, scaling_factor=0.25)
    vae.save_pretrained(folder)
    dit_file = tmp_path / "dit.pt"
    torch.save(s2_state_dict(depth=2, D=64, gs=8), dit_file)
    for source, scale in [(vae_run / "model.safetensors", None), (folder, 0.25)]:
        run = tmp_path / f"den_{source.stem}"
        r = cli("train", "dit-mca", "--data", "shapes", "--preset", "tiny", "--steps", "2", "--batch-size", "2",
                "--set", "stage=denoiser", "--set", f"vae={source}", "--set", f"init={dit_file}", "--out", run)
        assert r.exit_code == 0, r.output
        assert "stage 1/2" not in r.output and "init from" in r.output and "skipped pos_embed" in r.output
        _, sd = load_checkpoint(run / "model.safetensors")
        ref = vae_sd if scale is None else {"vae." + k: v for k, v in vae.state_dict().items()}
        assert all(torch.equal(sd[k], ref[k]) for k in ref if k.startswith("vae."))  # the VAE is the given one, frozen
        config = json.loads((run / "run.json").read_text())["config"]
        assert config["vae"] == str(source)
        if scale is not None:
            assert float(sd["latent_scale"]) == 0.25
    r = cli("train", "dit-mca", "--data", "shapes", "--preset", "tiny", "--set", "stage=denoiser", "--out", tmp_path / "x")
    assert r.exit_code == 2 and "needs vae=PATH" in r.output
