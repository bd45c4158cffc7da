"""LaMa from published weights to a fine-tuned model (issue 17): the `big-lama-with-discr`
Lightning checkpoint (generator.*, discriminator.*, loss_* networks, optimizer states; random
values in the published layout) imports with both networks and `zoo train lama --init`
starts from both; a generator-only file fine-tunes with a fresh discriminator, announced."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from zoo.checkpoint import load_checkpoint, load_model
from zoo.data import open_data
from zoo.masks import mask_kind
from zoo.train.samples import TrainSamples

from test_lama_import import OTHER_SHAPES, TrainingConfig, published_generator_shapes, random_tensors


def published_discriminator_shapes(ndf: int = 64, n_layers: int = 4) -> dict[str, tuple[int, ...]]:
    """pix2pixhd_nlayer (saicinpainting/training/modules/pix2pixhd.py NLayerDiscriminator):
    model0 = conv 4x4 stride 2 + LeakyReLU; model1..n-1 = conv stride 2 + BN + LeakyReLU
    (channels doubling up to 512); model{n} = conv stride 1 + BN; model{n+1} = conv to 1."""
    shapes: dict[str, tuple[int, ...]] = {}
    d = "discriminator."
    shapes[d + "model0.0.weight"], shapes[d + "model0.0.bias"] = (ndf, 3, 4, 4), (ndf,)
    nf = ndf
    for n in range(1, n_layers + 1):
        prev, nf = nf, min(nf * 2, 512)
        shapes[f"{d}model{n}.0.weight"], shapes[f"{d}model{n}.0.bias"] = (nf, prev, 4, 4), (nf,)
        for s in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{d}model{n}.1.{s}"] = (nf,)
        shapes[f"{d}model{n}.1.num_batches_tracked"] = ()
    shapes[f"{d}model{n_layers + 1}.0.weight"], shapes[f"{d}model{n_layers + 1}.0.bias"] = (1, nf, 4, 4), (1,)
    return shapes


def lightning_file(path, n_blocks: int, with_discriminator: bool) -> dict[str, torch.Tensor]:
    state = random_tensors(published_generator_shapes(n_blocks))
    if with_discriminator:
        state.update(random_tensors(published_discriminator_shapes(), seed=2))
    state.update(random_tensors(OTHER_SHAPES, seed=1))  # loss networks: dropped
    ckpt = {
        "epoch": 39,
        "global_step": 1_000_000,
        "state_dict": state,
        "hyper_parameters": TrainingConfig(),
        "optimizer_states": [{"state": {0: {"exp_avg": torch.zeros(3)}}, "param_groups": [{"lr": 1e-3}]}],  # dropped
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, path)
    return state


def test_published_discriminator_layout_matches_the_zoo_model():
    from zoo.config import resolve_config
    from zoo_plugins.lama.hooks import SPEC
    from zoo_plugins.lama.model import LaMa

    config, _ = resolve_config(SPEC, "big-lama", None)
    with torch.device("meta"):
        own = {k: tuple(v.shape) for k, v in LaMa(config).state_dict().items() if k.startswith("discriminator.")}
    assert own == published_discriminator_shapes()


FT = ["--data", "shapes", "--steps", "1", "--batch-size", "1", "--set", "resolution=32", "--set", "hrf_pl_weight=0", "--device", "cpu", "--seed", "2"]


def test_big_lama_with_discr_imports_both_networks_and_fine_tunes_from_them(cli, tmp_path):
    from zoo_plugins.lama.train import LamaTask

    state = lightning_file(tmp_path / "big-lama-with-discr" / "models" / "best.ckpt", 9, with_discriminator=True)
    out = tmp_path / "lama.safetensors"
    r = cli("import", "lama", tmp_path / "big-lama-with-discr", "--out", out)
    assert r.exit_code == 0, r.output
    meta, tensors = load_checkpoint(out, "lama")
    assert meta.config["discriminator"] is True and meta.preset == "lama-fourier"
    assert meta.provenance["discriminator_tensors"] == len(published_discriminator_shapes())
    assert meta.provenance["ignored_tensors"] == len(OTHER_SHAPES)
    assert set(tensors) == {k for k in state if k.startswith(("generator.", "discriminator."))}
    for k in published_discriminator_shapes():
        assert torch.equal(tensors[k], state[k].float() if state[k].is_floating_point() else state[k]), k

    run = tmp_path / "ft"
    r = cli("train", "lama", "--init", out, "--out", run, *FT)
    assert r.exit_code == 0, r.output
    assert "Note:" not in r.output  # nothing freshly initialised
    logged = next(json.loads(x) for x in (run / "log.jsonl").read_text().splitlines() if '"d_adv"' in x)
    model, config, _ = load_model(out, "lama")
    config = type(config)(**{**config.__dict__, "resolution": 32, "hrf_pl_weight": 0.0})
    samples = TrainSamples(open_data("shapes", resolution=32, split="train", seed=2, crop=config.crop, flip=config.flip), mask_kind(config.train_masks), 2)
    batch = torch.utils.data.default_collate([samples[0]])
    _, ours = LamaTask(model.train(), config).d_loss(batch, 0)
    assert logged["d_adv"] == pytest.approx(ours["d_adv"], rel=1e-5)  # both networks are the file's
    final, _ = load_checkpoint(run / "model.safetensors", "lama")
    assert final.provenance["init"]["source"]["format"] == "lightning-ckpt"


def test_generator_only_import_fine_tunes_with_a_fresh_discriminator(cli, tmp_path, image_folder):
    lightning_file(tmp_path / "best.ckpt", 9, with_discriminator=False)
    out = tmp_path / "gen.safetensors"
    r = cli("import", "lama", tmp_path / "best.ckpt", "--out", out)
    assert r.exit_code == 0, r.output
    assert load_checkpoint(out, "lama")[0].config["discriminator"] is False
    run = tmp_path / "ft"
    r = cli("train", "lama", "--init", out, "--out", run, *FT)
    assert r.exit_code == 0, r.output
    assert "Note: gen.safetensors has no discriminator (a generator-only checkpoint): fine-tuning with a freshly initialised" in r.output
    images, masks = image_folder
    r = cli("sample", "lama", "--checkpoint", run / "model.safetensors", "--images", images, "--masks", masks, "--out", tmp_path / "pred")
    assert r.exit_code == 0, r.output
    assert len(list((tmp_path / "pred").iterdir())) == 3


def test_an_incomplete_discriminator_is_one_line(cli, tmp_path):
    state = lightning_file(tmp_path / "best.ckpt", 9, with_discriminator=True)
    obj = torch.load(tmp_path / "best.ckpt", weights_only=False)
    del obj["state_dict"]["discriminator.model3.1.running_var"]
    torch.save(obj, tmp_path / "best.ckpt")
    r = cli("import", "lama", tmp_path / "best.ckpt", "--out", tmp_path / "x.safetensors")
    assert r.exit_code == 2 and "1 missing (e.g. discriminator.model3.1.running_var)" in r.output and len(state) > 0
    assert np.all([not (tmp_path / "x.safetensors").exists()])
