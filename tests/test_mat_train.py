"""mat training: learns a fixed batch, lazy R1, optimizer settings, checkpoint round-trip, CLI."""

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
from zoo_plugins.mat import losses
from zoo_plugins.mat.hooks import SPEC
from zoo_plugins.mat.model import MAT
from zoo_plugins.mat.sample import inpaint
from zoo_plugins.mat.train import MatTask, train


def tiny(**overrides):
    return resolve_config(SPEC, "tiny", overrides)[0]


def fixed_batch(n: int = 4, size: int = 32):
    data = torch.utils.data.Subset(open_data("shapes", resolution=size, split="train", seed=0), range(n))
    images = torch.stack([data[i]["image"] for i in range(n)])
    masks = torch.stack([make_mask("center", size, size, 0, i) for i in range(n)])
    return data, images, masks


def context(config, data, out_dir: Path, steps: int, batch_size: int = 4, **options) -> TrainContext:
    return TrainContext(
        method="mat", config=config, preset="tiny", data=data, masks=mask_kind("center"), steps=steps,
        batch_size=batch_size, seed=0, out_dir=out_dir, options=TrainOptions(progress=False, **options),
    )


def records(run: Path) -> list[dict]:
    return [r for r in map(json.loads, (run / "log.jsonl").read_text().splitlines()) if "g_adv" in r]


def hole_l1(model: MAT, images, masks) -> float:
    out = inpaint(model.eval(), images, masks, torch.Generator().manual_seed(0)).images
    return float(((out - images).abs() * masks).sum() / masks.sum() / 3)


def test_a_few_dozen_steps_lower_the_hole_error(tmp_path):
    config = tiny()
    data, images, masks = fixed_batch()
    torch.manual_seed(0)
    before = hole_l1(MAT(config), images, masks)
    result = train(context(config, data, tmp_path, steps=30))
    trained = MAT(config)
    trained.load_state_dict(result.state_dict)
    after = hole_l1(trained, images, masks)
    assert after <= 0.7 * before, (before, after)
    log = records(tmp_path)
    assert len(log) == 30
    assert {"g_adv", "g_fake_stg1", "g_l1", "d_adv", "l1_hole"} <= set(log[-1])
    assert sum(r["g_l1"] for r in log[-5:]) < sum(r["g_l1"] for r in log[:5])
    torch.manual_seed(0)
    init = MAT(config).state_dict()
    for key in ("discriminator.Dis.0.conv.weight", "discriminator.Dis_stg1.0.conv.weight"):  # both heads trained
        assert not torch.equal(init[key], result.state_dict[key])


def test_lazy_r1_every_k_steps_and_the_published_optimizer(tmp_path):
    config = tiny(r1_every=2)
    data, _, _ = fixed_batch()
    train(context(config, data, tmp_path, steps=3))
    assert ["d_r1" in r for r in records(tmp_path)] == [True, False, True]
    published = resolve_config(SPEC, "mat-512", {})[0]
    assert (published.r1_gamma, published.r1_every, published.batch_size, published.train_masks) == (10.0, 16, 32, "mat-train")
    with torch.device("meta"):
        task = MatTask(MAT(tiny(r1_every=16, g_reg_every=4, lr_g=1e-3, lr_d=1e-3)), tiny(r1_every=16, g_reg_every=4, lr_g=1e-3, lr_d=1e-3), 32)
        opts = task.optimizers()
    g, d = opts["generator"].param_groups[0], opts["discriminator"].param_groups[0]
    assert g["lr"] == pytest.approx(1e-3 * 4 / 5) and g["betas"] == pytest.approx((0.0, 0.99 ** 0.8))
    assert d["lr"] == pytest.approx(1e-3 * 16 / 17) and d["betas"][1] == pytest.approx(0.99 ** (16 / 17))
    assert MatTask(MAT(tiny()), tiny(ema_kimg=10.0), 32).ema_decay == pytest.approx(0.5 ** (32 / 10_000))


def test_r1_is_the_squared_gradient_norm_of_each_head():
    x = torch.randn(2, 3, 4, 4, requires_grad=True)
    x1 = torch.randn(2, 3, 4, 4, requires_grad=True)
    pen, pen1 = losses.r1_penalty((x * 2).sum(dim=(1, 2, 3)), (x1 * 3).sum(dim=(1, 2, 3)), x, x1)
    assert float(pen) == pytest.approx(4 * 48) and float(pen1) == pytest.approx(9 * 48)


def test_grad_accumulation_and_checkpointing_run_the_same_step(tmp_path):
    """Global batch 4 as 2 micro-batches of 2, with the transformer blocks checkpointed."""
    config = tiny(r1_every=1)
    data, _, _ = fixed_batch()
    result = train(context(config, data, tmp_path, steps=1, micro_batch=2, grad_checkpointing=True))
    assert all(torch.isfinite(v).all() for v in result.state_dict.values() if v.is_floating_point())


def test_micro_batch_auto_reaches_the_global_batch_by_accumulation(tmp_path):
    """A device whose memory holds two samples' activations: global batch 4 = 2 passes of 2
    (the published 32 = 16 passes of 2 the same way: benchmarks/mat)."""
    from zoo.train.memory import count_saved_bytes

    config = tiny()
    data, images, masks = fixed_batch()
    task = MatTask(MAT(config), config, 1)
    with count_saved_bytes() as saved:
        loss, _ = task.g_loss({"image": images[:1], "mask": masks[:1]}, 1)
    del loss
    train(context(config, data, tmp_path, steps=1, batch_size=4, micro_batch="auto", simulated_memory_limit=int(2.5 * saved[0])))
    start = next(r for r in map(json.loads, (tmp_path / "events.jsonl").read_text().splitlines()) if r.get("event") == "start")
    assert (start["micro_batch"], start["accum"], start["batch_size"]) == (2, 2, 4)


def test_perceptual_loss_without_weights_names_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(ZooError, match="vgg19-dcbb9e9d.pth.*pcp_weight=0"):
        MatTask(MAT(tiny()), tiny(pcp_weight=0.1), 4)
    with pytest.raises(ZooError, match="pcp_weights='nowhere.pth' is not a file"):
        MatTask(MAT(tiny()), tiny(pcp_weight=0.1, pcp_weights="nowhere.pth"), 4)


def test_imported_generator_cannot_train():
    with pytest.raises(ZooError, match="needs the discriminator"):
        MatTask(MAT(tiny(discriminator=False)), tiny(discriminator=False), 4)


def test_cli_train_sample_score(cli, image_folder, tmp_path):
    images, masks = image_folder
    run = tmp_path / "run"
    result = cli("train", "mat", "--data", "shapes", "--preset", "tiny", "--steps", "2", "--out", run)
    assert result.exit_code == 0, result.output
    ckpt = run / "model.safetensors"
    model, config, meta = load_model(ckpt, "mat")
    assert meta.preset == "tiny" and config.dim == 24 and config.train_masks == "box"
    again, _, _ = load_model(ckpt)
    for k, v in model.state_dict().items():
        assert torch.equal(v, again.state_dict()[k])

    out = tmp_path / "out"
    result = cli("sample", "mat", "--checkpoint", ckpt, "--images", images, "--masks", masks, "--out", out, "--num-samples", "2")
    assert result.exit_code == 0, result.output
    from zoo.imageio import load_image, load_mask

    for name in ("img0", "img1", "img2"):
        src, mask = load_image(images / f"{name}.png"), load_mask(masks / f"{name}.png")
        a, b = load_image(out / f"{name}_s0.png"), load_image(out / f"{name}_s1.png")
        assert a.shape == src.shape == (3, 40, 48)
        known = mask.expand_as(src) == 0
        assert torch.equal(a[known], src[known]) and torch.equal(b[known], src[known])
        assert not torch.equal(a[~known], b[~known])  # two diverse completions

    result = cli("score", "mat", "--checkpoint", ckpt, "--data", "shapes", "--masks", "box",
                 "--metric", "psnr", "--count", "4", "--size", "32", "--out", tmp_path / "score", "--json")
    assert result.exit_code == 0, result.output
    scores = json.loads(result.output[result.output.index("{"):])["method_scores"]
    assert 0 < scores["mat/d-realism"] < 1
    assert scores.get("mat/diversity-lpips", scores.get("mat/diversity-l1-hole", 0)) > 0


def test_cli_refuses_a_bad_config(cli, tmp_path):
    result = cli("train", "mat", "--data", "shapes", "--preset", "tiny", "--set", "num_heads=5", "--out", tmp_path / "r")
    assert result.exit_code == 2
    assert "num_heads=5" in result.output
