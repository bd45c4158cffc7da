"""Training augmentation that follows each preset: ``crop`` / ``flip`` config fields reach
the training dataset, every epoch sees other crops and flips (the same ones after a
resume), and validation / evaluation data stay fixed."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image

from zoo import runner
from zoo.data import Augmented, ImageFolderDataset, ShapesDataset, open_data, render
from zoo.errors import ZooError
from zoo.masks import mask_kind
from zoo.plugins import get_manager
from zoo.spec import TrainResult
from zoo.train import TrainOptions
from zoo.train.samples import TrainSamples


def _same(a: dict, b: dict) -> bool:
    return torch.equal(a["image"], b["image"])


@pytest.mark.parametrize("crop,flip", [("random", False), ("center", True), ("random", True)])
def test_shapes_draws_differ_by_key_and_repeat_for_the_same_key(crop, flip):
    data = ShapesDataset(resolution=32, seed=1, crop=crop, flip=flip)
    draws = [data.draw(3, key) for key in range(8)]
    assert not all(_same(draws[0], d) for d in draws[1:])  # other positions, other crops / flips
    assert _same(data.draw(3, 5), draws[5])  # same key, same pixels (a resume sees the same)
    assert torch.equal(data[3]["image"], ShapesDataset(resolution=32, seed=1)[3]["image"])  # indexing stays fixed


def test_shapes_without_augmentation_is_unchanged():
    data = ShapesDataset(resolution=32, seed=1)
    assert all(_same(data.draw(2, key), data[2]) for key in range(4))
    expected = torch.from_numpy(render(2, 1, 32)).permute(2, 0, 1).float() / 127.5 - 1
    assert torch.allclose(data[2]["image"], expected, atol=1e-6)


def test_image_folder_draws_crops_along_the_long_side_and_flips(tmp_path):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (32, 64, 3), dtype=np.uint8)).save(tmp_path / "wide.png")
    data = ImageFolderDataset(tmp_path, resolution=32, crop="random", flip=True, seed=2)
    draws = [data.draw(0, key)["image"] for key in range(8)]
    assert len({d.numpy().tobytes() for d in draws}) > 2
    assert torch.equal(data.draw(0, 3)["image"], draws[3])
    fixed = ImageFolderDataset(tmp_path, resolution=32, seed=2)
    assert all(torch.equal(fixed.draw(0, key)["image"], fixed[0]["image"]) for key in range(3))


def test_augmented_wrapper_for_datasets_without_their_own():
    base = ShapesDataset(resolution=32, seed=4)
    data = Augmented(base, "random", True, seed=0)
    draws = [data.draw(1, key)["image"] for key in range(8)]
    assert all(d.shape == (3, 32, 32) and d.min() >= -1 and d.max() <= 1 for d in draws)
    assert len({d.numpy().tobytes() for d in draws}) > 2
    assert torch.equal(data[1]["image"], base[1]["image"])


def test_two_epochs_see_different_crops_and_flips_of_the_same_image():
    data = ShapesDataset(resolution=32, seed=0, length=6, crop="random", flip=True)
    samples = TrainSamples(data, mask_kind("box"), seed=3)
    first = {samples._index(p): p for p in range(6)}  # epoch 0: image index -> position
    second = {samples._index(p): p for p in range(6, 12)}  # epoch 1
    differ = [not torch.equal(samples[first[i]]["image"], samples[second[i]]["image"]) for i in range(6)]
    assert sum(differ) >= 4  # (a crop and flip may repeat by chance for one image)
    assert torch.equal(samples[7]["image"], TrainSamples(data, mask_kind("box"), seed=3)[7]["image"])  # resumable


def test_open_data_refuses_an_unknown_crop():
    with pytest.raises(ZooError, match="unknown crop 'corner'; valid choices: center, random"):
        open_data("shapes", resolution=32, crop="corner")


def test_every_learned_method_has_crop_and_flip_with_published_values_and_tiny_off():
    manager = get_manager()
    learned = [spec for spec, _ in manager.methods().values() if spec.needs_training]
    assert {m.name for m in learned} >= {"lama", "mat", "repaint", "maskgit", "dit-mca", "dip-ddpm", "conv-l1"}
    for spec in learned:
        published = spec.config()
        assert published.crop in ("center", "random") and published.flip is True, spec.name  # all published recipes flip
        tiny = dataclasses.replace(published, **spec.presets["tiny"])
        assert (tiny.crop, tiny.flip) == ("center", False), spec.name
    crops = {m.name: m.config().crop for m in learned}
    assert crops["lama"] == crops["mat"] == crops["maskgit"] == "random"
    assert crops["repaint"] == crops["dit-mca"] == crops["dip-ddpm"] == "center"


def test_runner_gives_training_the_augmented_data_and_validation_fixed_crops(monkeypatch, tmp_path):
    seen = {}

    def fake_fit(task, ctx):
        seen["ctx"] = ctx
        return TrainResult(state_dict=task.model.state_dict(), step=1)

    import zoo_plugins.baselines.train as conv_train

    monkeypatch.setattr(conv_train, "fit", fake_fit)
    runner.train("conv-l1", "shapes", preset="tiny", overrides={"crop": "random", "flip": "true"}, steps=1,
                 out_dir=tmp_path / "run", options=TrainOptions(device="cpu", progress=False, tensorboard=False))
    ctx = seen["ctx"]
    assert (ctx.data.crop, ctx.data.flip) == ("random", True)
    assert (ctx.val_data.crop, ctx.val_data.flip) == ("center", False)
    assert all(_same(ctx.val_data.draw(0, key), ctx.val_data[0]) for key in range(3))
    assert not all(_same(ctx.data.draw(0, key), ctx.data.draw(0, 0)) for key in range(1, 6))
