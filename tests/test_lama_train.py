"""lama training: learns a fixed batch, R1/HRF options, checkpoint round-trip, the CLI path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from zoo.checkpoint import load_model
from zoo.config import resolve_config
from zoo.data import open_data
from zoo.errors import ZooError
from zoo.masks import make_mask, mask_kind
from zoo.spec import TrainContext
from zoo.train import TrainOptions
from zoo_plugins.lama import losses
from zoo_plugins.lama.hooks import SPEC
from zoo_plugins.lama.model import LaMa
from zoo_plugins.lama.sample import inpaint
from zoo_plugins.lama.train import LamaTask, train


def tiny(**overrides):
    return resolve_config(SPEC, "tiny", overrides)[0]


def fixed_batch(n: int = 4, size: int = 32):
    """n shapes images with the centre mask: with batch size n every step sees this batch."""
    data = torch.utils.data.Subset(open_data("shapes", resolution=size, split="train", seed=0), range(n))
    images = torch.stack([data[i]["image"] for i in range(n)])
    masks = torch.stack([make_mask("center", size, size, 0, i) for i in range(n)])
    return data, images, masks


def context(config, data, out_dir: Path, steps: int, masks: str = "center", **options) -> TrainContext:
    return TrainContext(
        method="lama", config=config, preset="tiny", data=data, masks=mask_kind(masks), steps=steps,
        batch_size=4, seed=0, out_dir=out_dir, options=TrainOptions(progress=False, **options),
    )


def step_records(log_file: Path) -> list[dict]:
    """The per-step loss records of an engine log (other events may sit beside them)."""
    records = [json.loads(line) for line in log_file.read_text().splitlines()]
    return [r for r in records if "d_adv" in r]


def hole_l1(model: LaMa, images, masks) -> float:
    out = inpaint(model.eval(), images, masks).images
    return float(((out - images).abs() * masks).sum() / masks.sum() / 3)


def test_a_few_dozen_steps_halve_the_hole_error(tmp_path):
    config = tiny()
    data, images, masks = fixed_batch()
    torch.manual_seed(0)
    model = LaMa(config)
    before = hole_l1(model, images, masks)
    result = train(model, context(config, data, tmp_path, steps=60))
    trained = LaMa(config)
    trained.load_state_dict(result.state_dict)
    after = hole_l1(trained, images, masks)
    assert after <= 0.5 * before, (before, after)
    log = step_records(tmp_path / "log.jsonl")
    assert len(log) == 60
    assert {"d_adv", "d_r1", "g_l1", "g_adv", "g_fm", "l1_hole"} <= set(log[-1])
    # the discriminator was trained too (both phases ran): its weights left their init
    torch.manual_seed(0)
    init = LaMa(config).state_dict()
    assert not torch.equal(init["discriminator.model0.0.weight"], result.state_dict["discriminator.model0.0.weight"])


def test_r1_is_the_squared_gradient_norm():
    x = torch.randn(3, 3, 8, 8, requires_grad=True)
    logits = (x * 2.0).sum(dim=(1, 2, 3))  # dD/dx = 2 everywhere -> ||grad||^2 = 4 * 192
    assert float(losses.r1_penalty(logits, x)) == pytest.approx(4 * 192)


def test_discriminator_loss_uses_the_mask_as_fake_target():
    real = torch.full((1, 1, 4, 4), 10.0)  # D is sure the real image is real
    mask = torch.zeros(1, 1, 16, 16)
    mask[..., :8, :] = 1  # top half is hole
    fake = torch.full((1, 1, 4, 4), -10.0)
    fake[..., 2:, :] = 10.0  # D: top half fake, bottom half real -> exactly the target
    assert float(losses.discriminator_loss(real, fake, mask)) < 1e-3
    assert float(losses.discriminator_loss(real, -fake, mask)) > 5


def test_lazy_r1_runs_only_every_k_steps(tmp_path):
    config = tiny(r1_every=2)
    data, _, _ = fixed_batch()
    train(LaMa(config), context(config, data, tmp_path, steps=3))
    log = step_records(tmp_path / "log.jsonl")
    assert ["d_r1" in rec for rec in log] == [True, False, True]


def test_hrf_loss_without_weights_names_the_file(tmp_path, monkeypatch):
    monkeypatch.delenv("TORCH_HOME", raising=False)
    with pytest.raises(ZooError, match="ade20k-resnet50dilated-ppm_deepsup/encoder_epoch_20.pth"):
        LamaTask(LaMa(tiny(hrf_pl_weight=30.0)), tiny(hrf_pl_weight=30.0))
    with pytest.raises(ZooError, match="encoder_epoch_20.pth.*hrf_pl_weight=0"):
        LamaTask(LaMa(tiny()), tiny(hrf_pl_weight=30.0, hrf_pl_weights=str(tmp_path / "nowhere")))


def test_hrf_loss_loads_the_encoder_file_and_trains(tmp_path, monkeypatch):
    """A random-weight file in the published layout (TORCH_HOME/ade20k/...) is found and used."""
    torch.manual_seed(0)
    enc = losses.ResNet50Dilated()
    folder = tmp_path / "ade20k" / "ade20k-resnet50dilated-ppm_deepsup"
    folder.mkdir(parents=True)
    state = {k: v for k, v in enc.state_dict().items() if not k.endswith("num_batches_tracked")}  # old files lack them
    torch.save(state, folder / "encoder_epoch_20.pth")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    config = tiny(hrf_pl_weight=1.0)
    task = LamaTask(LaMa(config), config)
    assert torch.equal(task.hrf.encoder.layer4[2].conv3.weight, enc.layer4[2].conv3.weight)
    assert task.hrf.encoder.layer4[1].conv2.dilation == (4, 4) and task.hrf.encoder.layer3[0].conv2.stride == (1, 1)
    feats = task.hrf.encoder(torch.zeros(1, 3, 32, 32))
    assert [f.shape[1:] for f in feats] == [(256, 8, 8), (512, 4, 4), (1024, 4, 4), (2048, 4, 4)]
    data, _, _ = fixed_batch()
    train(LaMa(config), context(config, data, tmp_path / "run", steps=1))
    log = step_records(tmp_path / "run" / "log.jsonl")[-1]
    assert log["g_hrf_pl"] > 0  # computed, and the fill differs from the target in feature space
    # a file of another network is refused with its name
    torch.save({"conv1.weight": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(ZooError, match="other.pth is not the ADE20k"):
        losses.load_hrf_encoder(str(tmp_path / "other.pth"))


def test_imported_generator_without_discriminator_cannot_train():
    config = tiny(discriminator=False)
    with pytest.raises(ZooError, match="needs the discriminator"):
        LamaTask(LaMa(config), config)


def test_cli_train_sample_score(cli, image_folder, tmp_path):
    images, masks = image_folder
    run = tmp_path / "run"
    result = cli("train", "lama", "--data", "shapes", "--preset", "tiny", "--steps", "3", "--out", run)
    assert result.exit_code == 0, result.output
    ckpt = run / "model.safetensors"
    assert ckpt.is_file()

    # checkpoint round-trip: same weights, config and outputs from the file alone
    model, config, meta = load_model(ckpt, "lama")
    assert meta.preset == "tiny" and config.n_blocks == 2 and config.train_masks == "box"
    again, _, _ = load_model(ckpt)
    for k, v in model.state_dict().items():
        assert torch.equal(v, again.state_dict()[k])

    out = tmp_path / "out"
    result = cli("sample", "lama", "--checkpoint", ckpt, "--images", images, "--masks", masks, "--out", out)
    assert result.exit_code == 0, result.output
    assert "1 network call per image" in result.output
    from zoo.imageio import load_image, load_mask

    for name in ("img0", "img1", "img2"):
        src, mask, res = load_image(images / f"{name}.png"), load_mask(masks / f"{name}.png"), load_image(out / f"{name}.png")
        assert res.shape == src.shape == (3, 40, 48)
        known = mask.expand_as(src) == 0
        assert torch.equal(res[known], src[known])

    # `zoo score` is being built elsewhere; the score hook is exercised through the plugin manager
    from zoo.plugins import get_manager

    src = torch.stack([load_image(images / f"img{i}.png") for i in range(3)])
    msk = torch.stack([load_mask(masks / f"img{i}.png") for i in range(3)])
    res = torch.stack([load_image(out / f"img{i}.png") for i in range(3)])
    scores = get_manager().call("zoo_score", "lama", model=model, config=config, images=src, masks=msk, outputs=res)
    assert 0 < scores["d-realism-hole"] < 1
    assert get_manager().call("zoo_score", "conv-l1", model=model, config=config, images=src, masks=msk, outputs=res) is None


def test_cli_refuses_unknown_override(cli, tmp_path):
    result = cli("train", "lama", "--data", "shapes", "--preset", "tiny", "--set", "n_blockz=3", "--out", tmp_path)
    assert result.exit_code == 2


def test_cli_score_reports_the_realism_score(cli, tmp_path):
    """`zoo score lama ...` (from the metrics branch) lists the plugin's number; skipped while
    this tree's `zoo score` is the placeholder."""
    if cli("score", "--list-metrics").exit_code != 0:
        pytest.skip("`zoo score` is not available in this tree yet (the zoo_score hook is tested above)")
    run = tmp_path / "run"
    assert cli("train", "lama", "--data", "shapes", "--preset", "tiny", "--steps", "2", "--out", run).exit_code == 0
    result = cli("score", "lama", "--checkpoint", run / "model.safetensors", "--data", "shapes", "--masks", "box",
                 "--metric", "psnr", "--count", "4", "--size", "32", "--out", tmp_path / "score", "--json")
    assert result.exit_code == 0, result.output
    assert "d-realism-hole" in result.output
