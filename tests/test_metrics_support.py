"""Helpers for the metrics / score / compare tests: random-weight files in the published
layouts (nothing is downloaded), and small prediction / ground-truth folders.

Imported by tests/test_metrics_*.py, test_score_*.py and test_compare_*.py; holds no tests.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path
from unittest import mock

import numpy as np
import torch
from PIL import Image


@functools.lru_cache(maxsize=1)
def inception_weights_file() -> Path:
    """A randomly initialised torch-fidelity FeatureExtractorInceptionV3 state dict saved
    with torch.save under the published file name (built once per test process).

    Convolutions get Kaiming-normal weights so the 2048-d features are O(1) rather than
    vanishing (the library's default init shrinks them to ~1e-8), and the classifier
    N(0, 1) weights so the Inception Score is not trivially 1."""
    import torch_fidelity.feature_extractor_inceptionv3 as fe

    torch.manual_seed(0)
    with mock.patch.object(fe, "load_state_dict_from_url", lambda *a, **k: {}), mock.patch.object(
        fe.FeatureExtractorInceptionV3, "load_state_dict", lambda self, sd, *a, **k: None
    ):
        model = fe.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    torch.nn.init.normal_(model.fc.weight, std=1.0)  # logits that differ between images: IS > 1
    folder = Path(tempfile.mkdtemp(prefix="zoo-test-incep-"))
    atexit.register(shutil.rmtree, folder, True)  # 95 MB: gone when the test process ends
    path = folder / "weights-inception-2015-12-05-6726825d.pth"
    torch.save(model.state_dict(), path)
    return path


def _tv_state(builder) -> dict[str, torch.Tensor]:
    """A torchvision model's state dict with random conv weights; the big linear layers are
    stride-0 views of one value so the file stays small (torch.save keeps the view)."""
    torch.manual_seed(0)
    model = builder(weights=None)
    out = {}
    for k, v in model.state_dict().items():
        out[k] = v if k.startswith("features") else torch.full((1,), 0.01).expand(v.shape)
    return out


def fill_lpips_hub(torch_home: Path, nets=("alex",)) -> None:
    """Random AlexNet / VGG16 backbones in ``TORCH_HOME/hub/checkpoints`` under torchvision's
    published file names, as if the torch hub cache had been filled."""
    import torchvision

    names = {"alex": (torchvision.models.alexnet, "alexnet-owt-7be5be79.pth"), "vgg": (torchvision.models.vgg16, "vgg16-397923af.pth")}
    ckpt = Path(torch_home) / "hub" / "checkpoints"
    ckpt.mkdir(parents=True, exist_ok=True)
    for net in nets:
        builder, name = names[net]
        torch.save(_tv_state(builder), ckpt / name)


def write_pairs(root: Path, n: int = 6, size: int = 32, noise: float = 30.0, seed: int = 0) -> tuple[Path, Path, Path]:
    """``root/gt``: shapes images; ``root/pred``: the same with noise inside a box hole;
    ``root/masks``: the boxes (white = hole). Hole ratios differ so several bins appear."""
    from zoo.data import render

    rng = np.random.default_rng(seed)
    gt_dir, pred_dir, mask_dir = root / "gt", root / "pred", root / "masks"
    for d in (gt_dir, pred_dir, mask_dir):
        d.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        img = render(i, 3, size)
        side = int(size * (0.3 + 0.6 * i / max(n - 1, 1)))
        mask = np.zeros((size, size), np.uint8)
        mask[:side, :side] = 255
        noisy = np.clip(img.astype(np.float64) + rng.normal(0, noise, img.shape), 0, 255).astype(np.uint8)
        pred = np.where(mask[..., None] > 0, noisy, img)
        Image.fromarray(img).save(gt_dir / f"{i:03d}.png")
        Image.fromarray(pred).save(pred_dir / f"{i:03d}.png")
        Image.fromarray(mask).save(mask_dir / f"{i:03d}.png")
    return pred_dir, gt_dir, mask_dir
