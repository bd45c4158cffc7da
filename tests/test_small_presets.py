"""Every learned method has a ``small`` preset: its own architecture at 64 px with 1-5 M
parameters, and a training step runs with it."""

from __future__ import annotations

import json

import pytest

from zoo import runner
from zoo.config import resolve_config
from zoo.plugins import get_manager
from zoo.train import TrainOptions

LEARNED = ["conv-l1", "lama", "mat", "repaint", "maskgit", "dit-mca", "dip-ddpm"]


def test_every_learned_method_has_a_small_preset():
    learned = sorted(name for name, (spec, _) in get_manager().methods().items() if spec.needs_training)
    assert learned == sorted(LEARNED)
    for name in learned:
        assert "small" in get_manager().method(name).presets, name


@pytest.mark.parametrize("method", LEARNED)
def test_small_preset_builds_at_64_px_with_1_to_5_million_parameters(method):
    manager = get_manager()
    config, preset = resolve_config(manager.method(method), "small")
    assert preset == "small" and config.resolution == 64
    model = manager.call("zoo_build_model", method, config=config)
    params = sum(p.numel() for p in model.parameters())
    assert 1_000_000 <= params <= 5_000_000, f"{method}: {params:,} parameters"


#: one step per stage; a two-stage method's first stage shortened to one step
ONE_STEP = {"maskgit": ({}, 2), "dit-mca": ({"vae_steps": "1", "latent_scale": "1.0"}, 1)}  # (latent scale given: not measured over 256 images)


@pytest.mark.parametrize("method", LEARNED)
def test_one_training_step_runs_with_the_small_preset(method, tmp_path):
    overrides, steps = ONE_STEP.get(method, ({}, 1))
    path = runner.train(method, "shapes", preset="small", overrides=overrides, steps=steps, batch_size=2, out_dir=tmp_path / "run",
                        options=TrainOptions(device="cpu", progress=False, tensorboard=False))
    assert path.is_file()
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["preset"] == "small" and info["budget"]["steps_reached"] >= 1
    assert all(stage["steps"] == 1 for stage in info["budget"]["stages"])
