"""Shared fixtures: a fresh plugin manager per test, small image/mask folders, a CLI runner."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from zoo.plugins import reset_manager


@pytest.fixture(autouse=True)
def fresh_plugins(monkeypatch):
    """Every test starts with freshly discovered plugins and no allow-list."""
    monkeypatch.delenv("ZOO_LOAD_PLUGINS", raising=False)
    reset_manager()
    yield
    reset_manager()


@pytest.fixture(autouse=True)
def one_thread():
    """Tests run tiny models: on one thread they are several times faster than on two, and
    do not contend with a second process (CLI subprocesses, gloo ranks) for the 2 cores."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def cli():
    """Invoke the ``zoo`` app in-process: ``cli("list", "--json")`` -> click Result."""
    from zoo_cli.main import app

    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)

    return invoke


@pytest.fixture
def image_folder(tmp_path) -> tuple[Path, Path]:
    """Three 40x48 shapes images and box masks (white = hole) with matching names."""
    from zoo.data import render

    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    for i in range(3):
        Image.fromarray(render(i, 7, 48)[:40]).save(images / f"img{i}.png")
        m = np.zeros((40, 48), np.uint8)
        m[8 + i : 24 + i, 10:30] = 255
        Image.fromarray(m).save(masks / f"img{i}.png")
    return images, masks


ON_REQUEST = ("fuzz", "scaleout", "multiprocess")  # markers of tests that run only when asked for with -m


def pytest_configure(config):
    config.addinivalue_line("markers", "fuzz: the fuzzer's long profile; runs only with `pytest -m fuzz` (for $ZOO_FUZZ_SECONDS seconds)")
    config.addinivalue_line("markers", "scaleout: two-machine accelerate launches killed mid-run (minutes on 2 cores); only with `pytest -m scaleout`")
    config.addinivalue_line("markers", "multiprocess: more two-process launches (accelerate, --devices 2) beyond the ones the suite keeps; "
                            "about 4 minutes on 2 cores; only with `pytest -m multiprocess`")


def pytest_collection_modifyitems(config, items):
    """Tests marked with one of :data:`ON_REQUEST` run only when asked for with ``-m``; the
    normal suite leaves them out."""
    if config.getoption("markexpr"):
        return
    asked = [item for item in items if not any(item.get_closest_marker(m) for m in ON_REQUEST)]
    if len(asked) != len(items):
        config.hook.pytest_deselected(items=[item for item in items if item not in asked])
        items[:] = asked
