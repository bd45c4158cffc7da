"""Plugin discovery: a pip-installed third-party plugin, a broken plugin, the allow-list."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """Install the throwaway plugin packages with pip, offline, into a private folder."""
    target = tmp_path_factory.mktemp("site")
    for name in ("mean_fill_plugin", "broken_plugin", "unguarded_plugin"):
        src = tmp_path_factory.mktemp("src") / name
        shutil.copytree(FIXTURES / name, src)
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--no-index", "--no-deps", "--no-build-isolation", "--quiet", "--target", str(target), str(src)],
            check=True,
            capture_output=True,
        )
    return target


def zoo(site: Path, *args, env: dict | None = None) -> subprocess.CompletedProcess:
    environ = {**os.environ, "PYTHONPATH": str(site), **(env or {})}
    environ.pop("ZOO_LOAD_PLUGINS", None) if "ZOO_LOAD_PLUGINS" not in (env or {}) else None
    return subprocess.run([sys.executable, "-m", "zoo_cli.main", *map(str, args)], capture_output=True, text=True, env=environ)


def test_third_party_plugin_listed_trained_and_sampled(site, tmp_path, image_folder):
    res = zoo(site, "list", "--json")
    assert res.returncode == 0, res.stderr
    rows = {r["name"]: r for r in json.loads(res.stdout)}
    assert rows["mean-fill"]["plugin"] == "mean_fill"
    assert rows["mean-fill"]["in_registry"] is False
    assert "telea" in rows  # the registry's methods are listed beside it

    plugins = {p["name"]: p for p in json.loads(zoo(site, "plugins", "--json").stdout)}
    assert plugins["mean_fill"]["version"] == "0.3.0"
    assert plugins["mean_fill"]["source"] == "zoo-mean-fill"
    assert plugins["mean_fill"]["status"] == "ok"

    run = tmp_path / "run"
    res = zoo(site, "train", "mean-fill", "--data", "shapes", "--steps", "30", "--batch-size", "4", "--out", run)
    assert res.returncode == 0, res.stderr
    images, masks = image_folder
    res = zoo(site, "sample", "mean-fill", "--checkpoint", run / "model.safetensors", "--images", images, "--masks", masks, "--out", tmp_path / "out")
    assert res.returncode == 0, res.stderr
    out = np.asarray(Image.open(tmp_path / "out" / "img0.png")).astype(int)
    src = np.asarray(Image.open(images / "img0.png").convert("RGB")).astype(int)
    hole = np.asarray(Image.open(masks / "img0.png")) > 127
    assert np.array_equal(out[~hole], src[~hole])
    fill = out[hole]
    assert (fill == fill[0]).all(), "a single learned color fills the hole"
    # The fill is the trained color of the checkpoint, not the zero init (uint8 128 gray), and
    # training moved it to the mean color of the data it saw.
    from safetensors.torch import load_file

    from zoo.data import ShapesDataset
    from zoo.imageio import tensor_to_uint8

    color = load_file(str(run / "model.safetensors"))["color"]
    assert not torch.equal(color, torch.zeros(3)), "the color was never trained"
    expected = tensor_to_uint8(color.view(3, 1, 1))[0, 0].astype(int)
    assert np.array_equal(fill[0], expected), (fill[0], expected)
    data_mean = torch.stack([ShapesDataset(resolution=32, length=120)[i]["image"].mean(dim=(1, 2)) for i in range(120)]).mean(0)
    assert (color - data_mean).abs().max() < 0.25, (color, data_mean)


def test_broken_plugin_is_listed_and_cli_keeps_working(site):
    res = zoo(site, "plugins", "--json")
    assert res.returncode == 0, res.stderr
    rows = {p["name"]: p for p in json.loads(res.stdout)}
    assert rows["broken"]["status"] == "broken"
    assert "deliberately broken" in rows["broken"]["error"]
    assert rows["baselines"]["status"] == "ok"
    table = zoo(site, "plugins")
    assert "broken" in table.stdout and "deliberately broken" in table.stdout
    res = zoo(site, "list")
    assert res.returncode == 0 and "conv-l1" in res.stdout and "mean-fill" in res.stdout


def test_allow_list_loads_only_named_plugins(site):
    res = zoo(site, "plugins", "--json", env={"ZOO_LOAD_PLUGINS": "baselines"})
    rows = {p["name"]: p for p in json.loads(res.stdout)}
    assert rows["baselines"]["status"] == "ok"
    assert rows["broken"]["status"] == "disabled"
    assert rows["mean_fill"]["status"] == "disabled"
    listed = json.loads(zoo(site, "list", "--json", env={"ZOO_LOAD_PLUGINS": "baselines"}).stdout)
    assert "mean-fill" not in {r["name"] for r in listed}


def test_plugin_failing_at_registration_is_broken_not_fatal():
    from zoo import hookimpl
    from zoo.plugins import get_manager

    class Bad:
        @hookimpl
        def zoo_register_methods(self):
            raise ValueError("bad spec")

    manager = get_manager()
    manager.register(Bad(), name="bad")
    assert "conv-l1" in manager.methods()
    info = {p.name: p for p in manager.plugins()}["bad"]
    assert info.status == "broken" and "bad spec" in info.error


def test_a_plugin_without_method_guards_leaves_every_other_method_working(site, tmp_path, image_folder):
    """levels-fill's hooks never check the method name and break on any other config: the
    core calls them for levels-fill only, so telea, conv-l1 and the guarded mean-fill work."""
    images, masks = image_folder
    plugins = {p["name"]: p for p in json.loads(zoo(site, "plugins", "--json").stdout)}
    assert plugins["levels_fill"]["status"] == "ok" and plugins["levels_fill"]["methods"] == ["levels-fill"]
    for method in ("telea", "levels-fill"):
        res = zoo(site, "sample", method, "--images", images, "--masks", masks, "--out", tmp_path / method)
        assert res.returncode == 0, res.stderr
        assert sorted(p.name for p in (tmp_path / method).glob("*.png")) == ["img0.png", "img1.png", "img2.png"]
    res = zoo(site, "train", "conv-l1", "--data", "shapes", "--preset", "tiny", "--steps", "2", "--out", tmp_path / "conv")
    assert res.returncode == 0, res.stderr
    res = zoo(site, "sample", "conv-l1", "--checkpoint", tmp_path / "conv" / "model.safetensors", "--images", images, "--masks", masks, "--out", tmp_path / "conv-out")
    assert res.returncode == 0, res.stderr
    res = zoo(site, "score", "levels-fill", "--data", "shapes", "--masks", "box", "--count", "2", "--size", "32", "--metric", "psnr",
              "--out", tmp_path / "score", "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["method_scores"] == {"levels-fill/levels": 4.0}
