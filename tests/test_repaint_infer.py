"""`zoo import repaint FILE.pt` with no preset: the file describes itself (issue 17).

Three guided-diffusion architectures that no preset has (random values, the published key
layout written by guided-diffusion's own module structure) import with only the heads given
by --set, compute the same function as the UNet they were written from, and sample; one of
them is then fine-tuned with --init. What the shapes cannot tell is one line asking for it."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from zoo.checkpoint import load_model
from zoo.diffusion.guided_unet import GuidedUNet, GuidedUNetConfig
from zoo_plugins.repaint.convert import PRESETS, preset_config
from zoo_plugins.repaint.model import unet_config

ARCHS = {
    # the 64-channel model users train when 256 does not fit (scaled down to test size)
    "c64-heads-by-channels": (
        GuidedUNetConfig(image_size=32, model_channels=64, channel_mult=(1, 2), num_res_blocks=1, attention_resolutions=(16,), num_head_channels=32, out_channels=6),
        ["--set", "num_head_channels=32", "--set", "resolution=32"],
    ),
    # guided-diffusion's script defaults: fixed head count, no scale-shift, conv resampling, eps only
    "c32-fixed-heads-plain": (
        GuidedUNetConfig(image_size=256, model_channels=32, channel_mult=(1, 2, 2), num_res_blocks=2, attention_resolutions=(), num_heads=4,
                         num_head_channels=-1, use_scale_shift_norm=False, resblock_updown=False, out_channels=3),
        ["--set", "num_head_channels=none", "--set", "num_heads=4"],
    ),
    # attention at two levels, scale-shift with conv resampling
    "c32-two-attention-levels": (
        GuidedUNetConfig(image_size=32, model_channels=32, channel_mult=(1, 1, 2), num_res_blocks=1, attention_resolutions=(16, 8), num_head_channels=16,
                         use_scale_shift_norm=True, resblock_updown=False, out_channels=6),
        ["--set", "num_head_channels=16", "--set", "resolution=32"],
    ),
}


def write_guided(path, cfg: GuidedUNetConfig, seed: int = 0) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    sd = {k: torch.randn_like(v) * 0.05 for k, v in GuidedUNet(cfg).state_dict().items()}
    torch.save(sd, path)
    return sd


def _is_preset(ucfg: GuidedUNetConfig) -> bool:
    for name in PRESETS:
        p = unet_config(preset_config(name))
        same = all(getattr(p, f) == getattr(ucfg, f) for f in ("model_channels", "channel_mult", "num_res_blocks", "use_scale_shift_norm", "resblock_updown", "out_channels"))
        if same:
            return True
    return False


@pytest.mark.parametrize("name", list(ARCHS))
def test_non_preset_architecture_imports_computes_the_same_function_and_samples(name, cli, tmp_path, image_folder):
    ucfg, flags = ARCHS[name]
    assert not _is_preset(ucfg)
    sd = write_guided(tmp_path / "model.pt", ucfg)
    out = tmp_path / "p.safetensors"
    r = cli("import", "repaint", tmp_path / "model.pt", "--out", out, *flags)
    assert r.exit_code == 0, r.output
    assert "Note: read from the file: channels=" in r.output
    model, cfg, meta = load_model(out, "repaint")
    assert meta.preset == "custom" and cfg.channels == ucfg.model_channels and tuple(cfg.channel_mult) == ucfg.channel_mult
    assert cfg.num_res_blocks == ucfg.num_res_blocks and cfg.learn_sigma == (ucfg.out_channels == 6)
    assert cfg.use_scale_shift_norm == ucfg.use_scale_shift_norm and cfg.resblock_updown == ucfg.resblock_updown
    ref = GuidedUNet(ucfg)
    ref.load_state_dict(sd, strict=True)
    x, t = torch.randn(2, 3, 32, 32), torch.tensor([5, 900])
    with torch.no_grad():
        torch.testing.assert_close(model(x, t), ref.eval()(x, t), atol=0, rtol=0)
    images, masks = image_folder
    r = cli("sample", "repaint", "--checkpoint", out, "--images", images, "--masks", masks, "--out", tmp_path / "pred", "--set", "sampling=custom", "--set", "t_T=2", "--set", "jump_n_sample=1")
    assert r.exit_code == 0, r.output
    assert len(list((tmp_path / "pred").iterdir())) == 3


def test_imported_64_channel_file_fine_tunes_with_init(cli, tmp_path):
    ucfg, flags = ARCHS["c64-heads-by-channels"]
    write_guided(tmp_path / "model.pt", ucfg)
    r = cli("import", "repaint", tmp_path / "model.pt", "--out", tmp_path / "p.safetensors", *flags)
    assert r.exit_code == 0, r.output
    r = cli("train", "repaint", "--init", tmp_path / "p.safetensors", "--data", "shapes", "--steps", "1", "--batch-size", "1", "--out", tmp_path / "ft", "--device", "cpu")
    assert r.exit_code == 0, r.output
    _, cfg, meta = load_model(tmp_path / "ft" / "model.safetensors", "repaint")
    assert cfg.channels == 64 and meta.provenance["kind"] == "fine-tuned" and meta.provenance["init"]["source"]["format"] == "guided-diffusion"


def test_what_the_shapes_cannot_tell_is_asked_for(cli, tmp_path):
    ucfg, _ = ARCHS["c64-heads-by-channels"]
    write_guided(tmp_path / "model.pt", ucfg)
    r = cli("import", "repaint", tmp_path / "model.pt", "--out", tmp_path / "p.safetensors")
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1
    assert "channels=64, channel_mult=1,2" in r.output and "--set num_head_channels=" in r.output
    # heads that do not divide the attention width are one line too
    r = cli("import", "repaint", tmp_path / "model.pt", "--out", tmp_path / "p.safetensors", "--set", "num_head_channels=48")
    assert r.exit_code == 2 and "num_head_channels=48" in r.output
    r = cli("import", "repaint", tmp_path / "model.pt", "--out", tmp_path / "p.safetensors", "--set", "bogus=1")
    assert r.exit_code == 2 and "unknown config key for repaint 'bogus'" in r.output
    assert not (tmp_path / "p.safetensors").exists()


def test_a_file_with_a_presets_architecture_takes_the_preset(cli, tmp_path):
    ucfg = dataclasses.replace(unet_config(preset_config("tiny")))
    write_guided(tmp_path / "tiny.pt", ucfg)
    r = cli("import", "repaint", tmp_path / "tiny.pt", "--out", tmp_path / "p.safetensors")
    assert r.exit_code == 0, r.output
    _, cfg, meta = load_model(tmp_path / "p.safetensors", "repaint")
    assert meta.preset == "tiny" and cfg.num_head_channels == 16
