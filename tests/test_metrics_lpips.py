"""LPIPS equals calling the lpips package directly, with a (random) AlexNet backbone placed
in a temporary torch hub cache; a missing backbone gives the file and the folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from test_metrics_support import fill_lpips_hub, write_pairs
from zoo import ZooError
from zoo.metrics import parse_metric_list
from zoo.metrics.perceptual import lpips_model
from zoo.metrics.scoring import score_folders


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    lpips_model.cache_clear()
    yield
    lpips_model.cache_clear()


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_lpips_equals_the_lpips_package(tmp_path):
    import lpips

    from zoo.imageio import load_image

    fill_lpips_hub(Path(os.environ["TORCH_HOME"]), ["alex"])
    pred, gt, masks = write_pairs(tmp_path / "p", n=3, size=32, noise=50)
    ours = score_folders(pred, gt, parse_metric_list("lpips"), masks, progress=False)
    torch.manual_seed(123)  # the direct model must load the same files, not depend on the seed
    direct = lpips.LPIPS(net="alex", verbose=False).eval()
    for i, name in enumerate(ours.names):
        x = load_image(pred / f"{name}.png")[None]
        y = load_image(gt / f"{name}.png")[None]
        want = direct(x, y).item()
        assert ours.per_image["lpips"][i] == pytest.approx(want, rel=1e-5, abs=1e-7)
    assert max(ours.per_image["lpips"]) > 0  # noise in the hole is seen


def test_missing_backbone_names_the_file_and_folder():
    with pytest.raises(ZooError) as err:
        lpips_model("vgg")
    msg = str(err.value)
    hub = Path(os.environ["TORCH_HOME"]) / "hub" / "checkpoints"
    assert "vgg16-397923af.pth" in msg and str(hub) in msg and "download.pytorch.org" in msg
    with pytest.raises(ZooError, match="alexnet-owt-7be5be79.pth"):
        lpips_model("alex")
