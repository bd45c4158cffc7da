"""``zoo new-plugin NAME``: a pip-installable plugin package that works as generated.

``--kind method`` writes a small learned method (a dilated conv net trained with masked L1
through the shared engine: config with a ``tiny`` preset and field help, model, train,
sample, score) and tests that run the contract kit (:mod:`zoo.testing`) on it; ``--kind
metric`` writes a per-image metric and its tests. Both install offline with
``pip install --no-build-isolation -e DIR`` where the zoo is installed.
"""

from __future__ import annotations

import re
from pathlib import Path

from zoo.errors import ZooError
from zoo.fsutil import check_output_dir, removed_on_failure, write_text

KINDS = ("method", "metric")
_NAME = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")


def names(name: str) -> dict[str, str]:
    """``my-fill`` -> method ``my-fill``, plugin (entry-point key) ``my_fill``, package
    ``zoo_my_fill``, distribution ``zoo-my-fill``."""
    if not _NAME.match(name):
        raise ZooError(f"plugin name {name!r}: use lowercase letters, digits and single dashes, starting with a letter (e.g. my-fill)")
    snake = name.replace("-", "_")
    return {"name": name, "plugin": snake, "package": f"zoo_{snake}", "dist": f"zoo-{name}", "title": name.replace("-", " ").title().replace(" ", "")}


def new_plugin(name: str, out: str | Path | None = None, kind: str = "method") -> Path:
    """Write the package for plugin ``name`` into ``out`` (default ``./zoo-NAME``); returns it."""
    if kind not in KINDS:
        raise ZooError(f"unknown plugin kind {kind!r}; valid choices: {', '.join(KINDS)}")
    n = names(name)
    from zoo.plugins import get_manager

    manager = get_manager()
    if kind == "method" and name in manager.methods():
        raise ZooError(f"a method named {name!r} exists already (plugin {manager.methods()[name][1]}); choose another name")
    if n["plugin"] in manager.infos:
        raise ZooError(f"a plugin named {n['plugin']!r} is installed already; choose another name")
    root = check_output_dir(out or f"zoo-{name}", {})
    files = (_METHOD if kind == "method" else _METRIC)(n)
    with removed_on_failure(root):
        for rel, text in files.items():
            write_text(root / rel, text)
    return root


def _pyproject(n: dict[str, str], what: str) -> str:
    return f'''[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "{n['dist']}"
version = "0.1.0"
description = "{what} for inpaint-zoo"
readme = "README.md"
requires-python = ">=3.10"
dependencies = ["inpaint-zoo"]

[project.optional-dependencies]
test = ["pytest"]

# the key ({n['plugin']}) is the plugin's name: `zoo plugins` shows it, ZOO_LOAD_PLUGINS /
# ZOO_DISABLE_PLUGINS take it, and checkpoints record it
[project.entry-points."zoo.plugins"]
{n['plugin']} = "{n['package']}.hooks"

[tool.setuptools]
packages = ["{n['package']}"]

[tool.pytest.ini_options]
testpaths = ["tests"]
'''


def _method(n: dict[str, str]) -> dict[str, str]:
    pkg, name, title = n["package"], n["name"], n["title"]
    return {
        "pyproject.toml": _pyproject(n, f"The inpainting method {name}"),
        "README.md": f"""# {n['dist']}

The inpainting method `{name}` as an [inpaint-zoo](https://pypi.org/project/inpaint-zoo/) plugin:
a small dilated conv net trained with masked L1 (replace it with your method).

```bash
pip install --no-build-isolation -e .          # where inpaint-zoo is installed; no network needed
zoo plugins                                    # {n['plugin']} ... ok
zoo train {name} --data shapes --preset tiny --out runs/{name}
zoo sample {name} --checkpoint runs/{name}/model.safetensors --images IMAGES --masks MASKS --out filled/
zoo compare --metric psnr,l1-hole --data shapes --masks lama-medium --count 16 --size 32 \\
    --methods telea --checkpoint runs/{name}/model.safetensors --out reports/{name}
python -m pytest                               # the zoo's contract kit on this method
```

Files: `{pkg}/config.py` (config dataclass and presets), `model.py` (the network),
`train.py` (the loss, through the zoo's training engine), `sample.py` (inference),
`hooks.py` (the hook implementations that wire them to the zoo).
""",
        f"{pkg}/__init__.py": f'"""The inpainting method {name} for inpaint-zoo."""\n\n__version__ = "0.1.0"\n',
        f"{pkg}/config.py": f'''"""Config and presets of {name}. The core reads `resolution`, `steps`, `batch_size` and
`train_masks` when they exist (defaults: 64, 1000, 8, "box"); `--set key=value` sets any field."""

from __future__ import annotations

from dataclasses import dataclass, field

from zoo.config import require


@dataclass
class {title}Config:
    resolution: int = field(default=64, metadata={{"help": "training crop size (px)"}})
    channels: int = field(default=32, metadata={{"help": "width of every conv layer"}})
    dilations: tuple[int, ...] = field(default=(1, 2, 4, 1), metadata={{"help": "one 3x3 conv per entry, with this dilation"}})
    lr: float = field(default=1e-3, metadata={{"help": "Adam learning rate"}})
    hole_weight: float = field(default=6.0, metadata={{"help": "weight of hole pixels in the L1 loss (known pixels weigh 1)"}})
    steps: int = field(default=2000, metadata={{"help": "default length of `zoo train`"}})
    batch_size: int = field(default=8, metadata={{"help": "default global batch of `zoo train`"}})
    train_masks: str = field(default="box", metadata={{"help": "mask kind drawn for training (`zoo masks list`)"}})

    def validate(self) -> None:
        """One line per bad value; the core calls it after presets and --set are applied."""
        require(len(self.dilations) > 0 and all(d >= 1 for d in self.dilations), "dilations", self.dilations, "needs entries of at least 1")
        require(self.lr > 0, "lr", self.lr, "must be > 0")
        require(self.hole_weight >= 0, "hole_weight", self.hole_weight, "must be 0 or more")


PRESETS = {{
    "tiny": {{"resolution": 32, "channels": 16, "dilations": (1, 2), "steps": 50, "batch_size": 4}},  # seconds on a CPU
    "base": {{}},
}}
''',
        f"{pkg}/model.py": f'''"""The network of {name}: erased image + mask in, RGB fill out."""

from __future__ import annotations

import torch
import torch.nn as nn

from {pkg}.config import {title}Config


class {title}Net(nn.Module):
    def __init__(self, cfg: {title}Config) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(4, cfg.channels, 3, padding=1), nn.GELU()]
        for d in cfg.dilations:
            layers += [nn.Conv2d(cfg.channels, cfg.channels, 3, padding=d, dilation=d), nn.GELU()]
        layers += [nn.Conv2d(cfg.channels, 3, 3, padding=1)]
        self.body = nn.Sequential(*layers)

    def forward(self, images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        x = torch.cat([images * (1 - masks), masks], dim=1)  # (B, 4, H, W)
        return torch.tanh(self.body(x))  # (B, 3, H, W) in [-1, 1]
''',
        f"{pkg}/train.py": f'''"""Training: one phase, masked L1, through the zoo's engine (batches, devices, precision,
checkpoints, resume and logging come from `zoo.train`)."""

from __future__ import annotations

import torch

from zoo.train import Phase, TrainTask

from {pkg}.config import {title}Config


class {title}Task(TrainTask):
    def __init__(self, model: torch.nn.Module, cfg: {title}Config) -> None:
        self.model, self.cfg = model, cfg
        self.ema_decay = 0.0  # > 0 keeps an EMA of the weights, which the checkpoint then holds

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {{"net": torch.optim.Adam(self.model.parameters(), lr=self.cfg.lr)}}

    def phases(self) -> list[Phase]:
        return [Phase("net", self.loss)]

    def loss(self, batch: dict, step: int):
        # batch["image"] (B, 3, H, W) in [-1, 1] and batch["mask"] (B, 1, H, W), 1 = hole,
        # already on the training device; step counts from 0
        images, masks = batch["image"], batch["mask"]
        pred = self.model(images, masks)
        err = (pred - images).abs()
        weight = 1 + (self.cfg.hole_weight - 1) * masks
        loss = (err * weight).mean()
        hole = (err * masks).sum() / (3 * masks.sum()).clamp(min=1)
        return loss, {{"l1_hole": float(hole)}}  # logged to RUN/log.jsonl
''',
        f"{pkg}/sample.py": f'''"""Inference: one forward pass, composited."""

from __future__ import annotations

import torch

from zoo import SampleOutput


@torch.no_grad()
def sample(model: torch.nn.Module, images: torch.Tensor, masks: torch.Tensor) -> SampleOutput:
    # the core has already erased the hole pixels of `images`; any H and W arrive here
    pred = model(images, masks)
    return SampleOutput(images * (1 - masks) + pred * masks, {{"nfe": 1}})
''',
        f"{pkg}/hooks.py": f'''"""Hook implementations: wiring only (the logic lives in the files beside this one)."""

from __future__ import annotations

from zoo import MethodSpec, hookimpl
from zoo.train import fit

from {pkg}.config import PRESETS, {title}Config
from {pkg}.model import {title}Net

NAME = "{name}"


@hookimpl
def zoo_register_methods():
    return [MethodSpec(NAME, "A dilated conv net trained with masked L1 (template: replace with your method).", "regression",
                       {title}Config, PRESETS, paper="(your paper)", license="MIT", default_preset="tiny")]


@hookimpl
def zoo_build_model(method, config):
    if method != NAME:
        return None
    return {title}Net(config)


@hookimpl
def zoo_train(method, ctx):
    if method != NAME:
        return None
    from {pkg}.train import {title}Task

    return fit({title}Task({title}Net(ctx.config), ctx.config), ctx)


@hookimpl
def zoo_sample(method, model, config, images, masks, generator):
    if method != NAME:
        return None
    from {pkg}.sample import sample

    return sample(model, images, masks)


@hookimpl
def zoo_score(method, model, config, images, masks, outputs):
    if method != NAME:
        return None
    import torch

    with torch.no_grad():  # how far the raw prediction is from the truth on the hole
        raw = model(images * (1 - masks), masks)
    err = ((raw - images).abs() * masks).sum() / (3 * masks.sum()).clamp(min=1)
    return {{"raw_hole_l1": float(err)}}
''',
        "tests/test_contract.py": f'''"""The zoo's contract kit on {name}: registration, presets, bad --set, training, sampling
(known pixels, hole pixels never read, seeds, odd sizes), checkpoint round trip, score."""

import pytest

from zoo.testing import CHECKS, run_check


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("kit")


@pytest.mark.parametrize("check", CHECKS)
def test_contract(check, workdir):
    run_check("{name}", check, workdir)


def test_the_loss_falls_on_a_tiny_batch(tmp_path):
    """Four fixed images and one fixed hole: a method that learns drives the hole error down."""
    import json

    from zoo import TrainContext
    from zoo.config import resolve_config
    from zoo.data import ShapesDataset
    from zoo.masks import mask_kind
    from zoo.plugins import get_manager
    from zoo.train import TrainOptions, fit

    from {pkg}.model import {title}Net
    from {pkg}.train import {title}Task

    cfg, _ = resolve_config(get_manager().method("{name}"), "tiny", {{"lr": 3e-3}})
    ctx = TrainContext("{name}", cfg, "tiny", ShapesDataset(resolution=32, length=4), mask_kind("center"), steps=60, batch_size=4,
                       seed=0, out_dir=tmp_path, options=TrainOptions(progress=False, device="cpu"))
    fit({title}Task({title}Net(cfg), cfg), ctx)
    logs = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    errors = [r["l1_hole"] for r in logs if "l1_hole" in r]  # what the loss returned in its logs
    assert sum(errors[-5:]) < 0.7 * sum(errors[:5]), errors
''',
    }


def _metric(n: dict[str, str]) -> dict[str, str]:
    pkg, name = n["package"], n["name"]
    return {
        "pyproject.toml": _pyproject(n, f"The metric {name}"),
        "README.md": f"""# {n['dist']}

The metric `{name}` as an [inpaint-zoo](https://pypi.org/project/inpaint-zoo/) plugin: the mean
absolute error on a 3-pixel ring around the hole, where seams show (replace it with yours).

```bash
pip install --no-build-isolation -e .     # where inpaint-zoo is installed
zoo score --pred filled/ --gt images/ --masks masks/ --metric {name},psnr
python -m pytest
```
""",
        f"{pkg}/__init__.py": f'"""The metric {name} for inpaint-zoo."""\n\n__version__ = "0.1.0"\n',
        f"{pkg}/metric.py": f'''"""{name}: mean absolute error (on [0, 1]) over a ring of RING pixels around each hole."""

from __future__ import annotations

import torch
import torch.nn.functional as F

RING = 3


def ring(masks: torch.Tensor, width: int = RING) -> torch.Tensor:
    """(B, 1, H, W) holes -> the known pixels within `width` of a hole."""
    grown = F.max_pool2d(masks, 2 * width + 1, stride=1, padding=width)
    return grown * (1 - masks)


def seam_error(pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per image (B,): images in [-1, 1], mask (B, 1, H, W) with 1 = hole."""
    r = ring(mask)
    err = ((pred - gt).abs() / 2) * r  # [0, 1] scale
    return err.flatten(1).sum(1) / (3 * r.flatten(1).sum(1)).clamp(min=1)
''',
        f"{pkg}/hooks.py": f'''"""Hook implementations: wiring only."""

from __future__ import annotations

from zoo import MetricSpec, hookimpl

from {pkg}.metric import seam_error


@hookimpl
def zoo_register_metrics():
    return [MetricSpec("{name}", "mean absolute error on a 3-pixel ring around the hole", False, seam_error,
                       needs_mask=True, value_range=(0.0, 1.0))]
''',
        "tests/test_metric.py": f'''"""{name}: zero for a perfect prediction, larger when the seam is worse, registered."""

import torch

from {pkg}.metric import ring, seam_error


def test_values():
    gt = torch.zeros(2, 3, 16, 16)
    mask = torch.zeros(2, 1, 16, 16)
    mask[..., 6:10, 6:10] = 1
    assert torch.equal(seam_error(gt, gt, mask), torch.zeros(2))
    bad = gt.clone()
    bad[0] += 1.0  # a shift everywhere: the ring sees it
    out = seam_error(bad, gt, mask)
    assert out[0] > 0.4 and out[1] == 0
    assert ring(mask)[0, 0, 6:10, 6:10].sum() == 0  # the ring lies outside the hole


def test_registered():
    from zoo.metrics import metric

    assert metric("{name}").needs_mask
''',
    }


_METHOD = _method
_METRIC = _metric
