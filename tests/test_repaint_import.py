"""`zoo import repaint`: guided-diffusion state dicts (published key names, random values)
and diffusers DDPM folders become the prior, strictly; other architectures get one line."""

from __future__ import annotations

import math

import pytest
import torch

from zoo.diffusion.guided_unet import AttentionBlock, GuidedUNet, GuidedUNetConfig
from zoo_plugins.repaint.convert import check_guided_architecture, infer_guided_settings, preset_config
from zoo_plugins.repaint.model import unet_config


def random_guided_file(path, cfg: GuidedUNetConfig, seed: int = 0) -> dict[str, torch.Tensor]:
    """A raw guided-diffusion state dict (as RePaint distributes it) with random values."""
    torch.manual_seed(seed)
    net = GuidedUNet(cfg)
    sd = {k: torch.randn_like(v) * 0.05 for k, v in net.state_dict().items()}
    torch.save(sd, path)
    return sd


def test_full_published_architecture_key_set_on_meta():
    cfg = preset_config("celebahq-256")
    with torch.device("meta"):
        sd = GuidedUNet(unet_config(cfg)).state_dict()
    # facts of the published 256x256 guided-diffusion UNet (RePaint's celeba256 / places256)
    assert len(sd) == 566
    assert sum(v.numel() for v in sd.values()) == 552_814_086
    shapes = {
        "time_embed.0.weight": (1024, 256),
        "input_blocks.0.0.weight": (256, 3, 3, 3),
        "input_blocks.3.0.emb_layers.1.weight": (512, 1024),  # down ResBlock, scale-shift doubles
        "input_blocks.10.1.qkv.weight": (1536, 512, 1),  # attention at 32x32 (ds 8), 8 heads of 64
        "input_blocks.17.1.proj_out.weight": (1024, 1024, 1),
        "middle_block.1.qkv.weight": (3072, 1024, 1),
        "output_blocks.2.2.in_layers.2.weight": (1024, 1024, 3, 3),  # up ResBlock
        "output_blocks.17.0.skip_connection.weight": (256, 512, 1, 1),
        "out.2.weight": (6, 256, 3, 3),  # learned variance: 2 x 3 channels
    }
    for key, shape in shapes.items():
        assert tuple(sd[key].shape) == shape, key
    assert not any(k.startswith("input_blocks.18") or k.startswith("output_blocks.18") for k in sd)
    found = infer_guided_settings(sd, 256)
    assert found["channel_mult"] == (1, 1, 2, 2, 4, 4) and found["attention_resolutions"] == (32, 16, 8)
    check_guided_architecture(sd, cfg, "celebahq-256")  # no error
    check_guided_architecture(sd, preset_config("places-256"), "places-256")


def test_attention_uses_the_legacy_head_order():
    # guided-diffusion's QKVAttentionLegacy: heads split first, then [q | k | v] per head,
    # weights softmax((q * d^-1/4) . (k * d^-1/4)) -- written out here with einsum
    torch.manual_seed(0)
    block = AttentionBlock(32, num_heads=1, num_head_channels=8)
    torch.nn.init.normal_(block.proj_out.weight, std=0.2)
    x = torch.randn(2, 32, 4, 5)
    b, c, n, heads, d = 2, 32, 20, 4, 8
    flat = x.reshape(b, c, n)
    qkv = block.qkv(block.norm(flat)).reshape(b * heads, 3 * d, n)
    q, k, v = qkv.split(d, dim=1)
    s = 1 / math.sqrt(math.sqrt(d))
    w = torch.einsum("bct,bcs->bts", q * s, k * s).softmax(-1)
    a = torch.einsum("bts,bcs->bct", w, v).reshape(b, c, n)
    ref = (flat + block.proj_out(a)).reshape(x.shape)
    torch.testing.assert_close(block(x), ref, atol=1e-5, rtol=1e-5)


def test_import_guided_file_is_strict_and_computes_the_same_function(cli, tmp_path):
    from zoo.checkpoint import load_model

    cfg = preset_config("tiny")
    ucfg = unet_config(cfg)
    sd = random_guided_file(tmp_path / "celeba_tiny.pt", ucfg)
    r = cli("import", "repaint", tmp_path / "celeba_tiny.pt", "--preset", "tiny", "--out", tmp_path / "p.safetensors")
    assert r.exit_code == 0, r.output
    model, _, meta = load_model(tmp_path / "p.safetensors", "repaint")
    assert meta.provenance["format"] == "guided-diffusion" and len(meta.provenance["sha256"]) == 64
    ref = GuidedUNet(ucfg)
    ref.load_state_dict(sd, strict=True)
    x, t = torch.randn(2, 3, 32, 32), torch.tensor([10, 999])
    with torch.no_grad():
        torch.testing.assert_close(model(x, t), ref(x, t), atol=0, rtol=0)

    # a missing key and an extra key are both refused
    del sd["out.2.bias"]
    torch.save(sd, tmp_path / "missing.pt")
    r = cli("import", "repaint", tmp_path / "missing.pt", "--preset", "tiny", "--out", tmp_path / "q.safetensors")
    assert r.exit_code == 2 and "1 missing (e.g. unet.out.2.bias)" in r.output
    sd["out.2.bias"] = torch.zeros(6)
    sd["middle_block.3.weight"] = torch.zeros(10, 128)
    torch.save(sd, tmp_path / "extra.pt")
    r = cli("import", "repaint", tmp_path / "extra.pt", "--preset", "tiny", "--out", tmp_path / "q.safetensors")
    assert r.exit_code == 2 and "unexpected (e.g. unet.middle_block.3.weight)" in r.output
    # a class embedding is read (issue 26): the preset's num_classes must match the file's
    del sd["middle_block.3.weight"]
    sd["label_emb.weight"] = torch.zeros(10, 128)
    torch.save(sd, tmp_path / "classes.pt")
    r = cli("import", "repaint", tmp_path / "classes.pt", "--preset", "tiny", "--out", tmp_path / "q.safetensors")
    assert r.exit_code == 2 and "num_classes: file has 10, preset tiny has none" in r.output
    r = cli("import", "repaint", tmp_path / "classes.pt", "--preset", "tiny", "--set", "num_classes=10", "--out", tmp_path / "q.safetensors")
    assert r.exit_code == 0, r.output
    assert load_model(tmp_path / "q.safetensors", "repaint")[1].num_classes == 10


@pytest.mark.parametrize(
    "change, message",
    [
        ({"model_channels": 64}, "num_channels: file has 64, preset tiny has 32"),
        ({"out_channels": 3}, "learn_sigma: file has false, preset tiny has true"),
        ({"num_res_blocks": 2}, "num_res_blocks: file has 2, preset tiny has 1"),
        ({"channel_mult": (1, 2, 2)}, "channel_mult: file has 1,2,2, preset tiny has 1,2"),
        ({"use_scale_shift_norm": False}, "use_scale_shift_norm: file has false, preset tiny has true"),
        ({"resblock_updown": False}, "resblock_updown: file has false, preset tiny has true"),
        ({"attention_resolutions": ()}, "attention_resolutions: file has , preset tiny has 16"),
    ],
)
def test_other_architectures_get_one_line_naming_the_setting(cli, tmp_path, change, message):
    import dataclasses

    ucfg = dataclasses.replace(unet_config(preset_config("tiny")), **change)
    random_guided_file(tmp_path / "other.pt", ucfg)
    r = cli("import", "repaint", tmp_path / "other.pt", "--preset", "tiny", "--out", tmp_path / "o.safetensors")
    assert r.exit_code == 2
    assert message in r.output and len(r.output.strip().splitlines()) == 1, r.output


def test_not_a_unet_file(cli, tmp_path):
    torch.save({"weight": torch.zeros(3)}, tmp_path / "x.pt")
    r = cli("import", "repaint", tmp_path / "x.pt", "--out", tmp_path / "o.safetensors")
    assert r.exit_code == 2 and "not a guided-diffusion UNet state dict" in r.output


def test_import_diffusers_folder(cli, tmp_path):
    from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel

    from zoo.checkpoint import load_model

    torch.manual_seed(0)
    unet = UNet2DModel(sample_size=16, in_channels=3, out_channels=3, layers_per_block=1, block_out_channels=(16, 32),
                       down_block_types=("DownBlock2D", "AttnDownBlock2D"), up_block_types=("AttnUpBlock2D", "UpBlock2D"), norm_num_groups=8)
    for p in unet.parameters():
        torch.nn.init.normal_(p, std=0.05)
    DDPMPipeline(unet=unet, scheduler=DDPMScheduler(num_train_timesteps=500, beta_start=2e-4, beta_end=0.04)).save_pretrained(tmp_path / "ddpm")
    r = cli("import", "repaint", tmp_path / "ddpm", "--out", tmp_path / "p.safetensors")
    assert r.exit_code == 0, r.output
    model, cfg, _ = load_model(tmp_path / "p.safetensors", "repaint")
    assert cfg.backbone == "diffusers" and cfg.diffusion_steps == 500 and not cfg.learn_sigma
    from zoo_plugins.repaint.model import make_chain

    torch.testing.assert_close(make_chain(cfg).betas.float(), DDPMScheduler(num_train_timesteps=500, beta_start=2e-4, beta_end=0.04).betas)
    x, t = torch.randn(2, 3, 16, 16), torch.tensor([3, 400])
    with torch.no_grad():
        torch.testing.assert_close(model(x, t), unet.eval()(x, t).sample, atol=0, rtol=0)
    (tmp_path / "ddpm" / "model_index.json").unlink()
    r = cli("import", "repaint", tmp_path / "ddpm", "--out", tmp_path / "p.safetensors", "--overwrite")
    assert r.exit_code == 2 and "not a diffusers pipeline folder" in r.output
