"""The ``method`` part of a scaffold: a small learned method (a dilated conv net trained with
masked L1 through the shared engine) and its tests, which run the contract kit on it."""

from __future__ import annotations


#: What hooks.py imports from zoo for this part.
ZOO_IMPORTS = ("MethodSpec", "hookimpl")


def hook_imports(n: dict[str, str]) -> list[str]:
    """hooks.py's imports from the package itself (torch-free)."""
    return [f"from {n['package']}.config import PRESETS, {n['title']}Config"]


def hooks(n: dict[str, str]) -> str:
    pkg, title = n["package"], n["title"]
    return f'''METHOD = "{n['name']}"


@hookimpl
def zoo_register_methods():
    return [MethodSpec(METHOD, "A dilated conv net trained with masked L1 (template: replace with your method).", "regression",
                       {title}Config, PRESETS, paper="(your paper)", license="MIT", default_preset="tiny")]


# The zoo calls the method hooks below only for the methods this plugin registers, so they
# need no `if method != METHOD` check (with several methods, `method` says which one). They
# import the model code when called: `zoo list` and `zoo plugins` load only this file and
# config.py, and import no torch.
@hookimpl
def zoo_build_model(method, config):
    from {pkg}.model import {title}Net

    return {title}Net(config)


@hookimpl
def zoo_train(method, ctx):
    from zoo.train import fit

    from {pkg}.model import {title}Net
    from {pkg}.train import {title}Task

    return fit({title}Task({title}Net(ctx.config), ctx.config), ctx)


@hookimpl
def zoo_sample(method, model, config, images, masks, generator):
    from {pkg}.sample import sample

    return sample(model, images, masks)


@hookimpl
def zoo_score(method, model, config, images, masks, outputs):
    from {pkg}.sample import raw_hole_l1

    return {{"raw_hole_l1": raw_hole_l1(model, images, masks)}}
'''


def readme(n: dict[str, str]) -> str:
    name, pkg = n["name"], n["package"]
    return f"""The inpainting method `{name}`: a small dilated conv net trained with masked L1 (replace it
with your method).

```bash
zoo train {name} --data shapes --preset tiny --out runs/{name}
zoo sample {name} --checkpoint runs/{name}/model.safetensors --images IMAGES --masks MASKS --out filled/
zoo compare --metric psnr,l1-hole --data shapes --masks lama-medium --count 16 --size 32 \\
    --methods telea --checkpoint runs/{name}/model.safetensors --out reports/{name}
```

Files: `{pkg}/config.py` (config dataclass and presets), `model.py` (the network),
`train.py` (the loss, through the zoo's training engine), `sample.py` (inference and the
method's own score), `tests/test_contract.py` (the zoo's contract kit on the method, and a
check that it learns).
"""


def files(n: dict[str, str]) -> dict[str, str]:
    pkg, name, title, plugin = n["package"], n["name"], n["title"], n["plugin"]
    return {
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
        hole = (err.detach() * masks).sum() / (3 * masks.sum()).clamp(min=1)
        return loss, {{"l1_hole": float(hole)}}  # logged to RUN/log.jsonl (detached: a number, not part of the graph)
''',
        f"{pkg}/sample.py": '''"""Inference: one forward pass, composited; and the method's own score."""

from __future__ import annotations

import torch

from zoo import SampleOutput


@torch.no_grad()
def sample(model: torch.nn.Module, images: torch.Tensor, masks: torch.Tensor) -> SampleOutput:
    # the core has already erased the hole pixels of `images`; any H and W arrive here
    pred = model(images, masks)
    return SampleOutput(images * (1 - masks) + pred * masks, {"nfe": 1})


@torch.no_grad()
def raw_hole_l1(model: torch.nn.Module, images: torch.Tensor, masks: torch.Tensor) -> float:
    """How far the raw prediction is from the truth on the hole (`images` are the ground truth)."""
    raw = model(images * (1 - masks), masks)
    return float(((raw - images).abs() * masks).sum() / (3 * masks.sum()).clamp(min=1))
''',
        "tests/test_contract.py": f'''"""The zoo's contract kit on {name} (registration, hooks, presets, bad --set, training,
sampling, checkpoint round trip, score), and a check that it learns."""

import json

import numpy as np
import pytest

from zoo import MaskGeneratorSpec, TrainContext
from zoo.testing import CHECKS, example_batch, run_check
from zoo.train import TrainOptions, fit

from {pkg}.config import PRESETS, {title}Config
from {pkg}.model import {title}Net
from {pkg}.train import {title}Task


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("kit")


@pytest.mark.parametrize("check", CHECKS)
def test_contract(check, workdir):
    run_check("{name}", check, workdir, plugin="{plugin}")


def centre_box(height, width, rng):
    """A fixed hole in the middle: (H, W) float32, 1 = hole."""
    mask = np.zeros((height, width), np.float32)
    mask[height // 4 : 3 * height // 4, width // 4 : 3 * width // 4] = 1
    return mask


def test_the_loss_falls_on_a_tiny_batch(tmp_path):
    """Four fixed images and one fixed hole: a method that learns drives the hole error down."""
    cfg = {title}Config(**{{**PRESETS["tiny"], "lr": 3e-3}})
    cfg.validate()
    images, _ = example_batch(n=4)  # (4, 3, 32, 32) in [-1, 1]
    ctx = TrainContext("{name}", cfg, "tiny", data=[{{"image": image}} for image in images],
                       masks=MaskGeneratorSpec("centre", "a fixed centre box", centre_box), steps=60, batch_size=4, seed=0,
                       out_dir=tmp_path, options=TrainOptions(device="cpu", progress=False, tensorboard=False))
    fit({title}Task({title}Net(cfg), cfg), ctx)
    logs = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    errors = [r["l1_hole"] for r in logs if "l1_hole" in r]  # what the loss returned in its logs
    assert sum(errors[-5:]) < 0.7 * sum(errors[:5]), errors
''',
    }
