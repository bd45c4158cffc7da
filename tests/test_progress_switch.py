"""--no-progress reaches the bars a sampler draws inside a command's own bar (zoo.progress)."""

from __future__ import annotations

import os

import torch

from zoo import progress
from zoo.diffusion import jump_points, repaint
from zoo.diffusion.schedule import Chain


def _run_chain(capsys, bars_on: bool) -> str:
    chain = Chain(torch.linspace(1e-4, 0.2, 10, dtype=torch.float64), torch.arange(10))
    x = torch.zeros(1, 3, 8, 8)
    hole = torch.ones(1, 1, 8, 8)
    points = jump_points(10, 1, 1)
    gen = torch.Generator().manual_seed(0)
    repaint(lambda z, t: torch.zeros_like(z), x, hole, chain, points, gen, "ddpm", 0.0, True, progress=bars_on, desc="inner-bar")
    return capsys.readouterr().err


def test_silenced_turns_inner_bars_off_and_restores(capsys, monkeypatch):
    monkeypatch.delenv(progress.ENV, raising=False)
    assert progress.enabled() and not progress.enabled(False)
    with progress.silenced():
        assert not progress.enabled() and os.environ[progress.ENV] == "1"
        assert "inner-bar" not in _run_chain(capsys, True)
    assert progress.ENV not in os.environ and progress.enabled()
    with progress.silenced(False):
        assert progress.enabled()
    assert "inner-bar" in _run_chain(capsys, True)  # the bar is drawn when not silenced


def test_sampling_without_progress_draws_no_sampler_bar(capsys, tmp_path, image_folder):
    from zoo import runner
    from zoo.sampling import sample_folder
    from zoo.train import TrainOptions

    ckpt = runner.train("repaint", "shapes", preset="tiny", steps=1, batch_size=2, out_dir=tmp_path / "run",
                        options=TrainOptions(progress=False, device="cpu", tensorboard=False))
    images, masks = image_folder
    capsys.readouterr()
    sample_folder("repaint", ckpt, images, masks, tmp_path / "quiet", progress=False, device="cpu")
    assert "repaint" not in capsys.readouterr().err  # neither the command's bar nor the sampler's own
    sample_folder("repaint", ckpt, images, masks, tmp_path / "loud", progress=True, device="cpu")
    assert "repaint" in capsys.readouterr().err
