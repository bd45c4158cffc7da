"""Configs and presets of the two baselines."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from zoo.config import require


@dataclass
class TeleaConfig:
    algorithm: Literal["telea", "ns"] = "telea"  # OpenCV INPAINT_TELEA or INPAINT_NS
    radius: int = 3  # neighbourhood radius in pixels

    def validate(self) -> None:
        require(self.radius >= 1, "radius", self.radius, "must be at least 1")


TELEA_PRESETS = {
    "default": {},
    "navier-stokes": {"algorithm": "ns"},
}


@dataclass
class ConvL1Config:
    resolution: int = 64  # training crop size
    # training augmentation: the zoo's own baseline has no published recipe; random crop and flip, like LaMa.
    # Validation and evaluation always use fixed centre crops (docs/training.md, Augmentation)
    crop: str = "random"  # random | center: where the training crop is taken (zoo.data)
    flip: bool = True  # random horizontal flip of training images
    channels: int = 32  # width after the stem; doubles at each downsampling
    downsamplings: int = 2  # stride-2 stages (input sizes are padded to 2**downsamplings)
    dilations: tuple[int, ...] = (1, 2, 4, 8)  # one residual block per entry in the middle
    lr: float = 2e-4  # Adam learning rate
    hole_weight: float = 6.0  # masked L1: weight of hole pixels (known pixels weigh 1)
    steps: int = 2000  # default training length
    batch_size: int = 8  # default global batch
    train_masks: str = "box"  # mask kind drawn for training

    def validate(self) -> None:
        require(self.downsamplings >= 0, "downsamplings", self.downsamplings, "must be 0 or more")
        require(len(self.dilations) > 0 and all(d >= 1 for d in self.dilations), "dilations", self.dilations, "needs at least one entry, each at least 1")
        require(self.lr > 0, "lr", self.lr, "must be > 0")
        require(self.hole_weight >= 0, "hole_weight", self.hole_weight, "must be 0 or more")


CONV_L1_PRESETS = {
    "tiny": {"resolution": 32, "channels": 16, "dilations": (1, 2), "steps": 50, "batch_size": 4, "lr": 2e-3, "crop": "center", "flip": False},
    # 64 px on a CPU, 1.4 M parameters (table in zoo_plugins/baselines/README.md)
    "small": {"resolution": 64, "channels": 32, "downsamplings": 2, "dilations": (1, 2, 4, 8), "lr": 5e-4, "steps": 20_000, "batch_size": 8},
    "base": {"resolution": 256, "channels": 64, "downsamplings": 3, "dilations": (1, 2, 4, 8, 16), "steps": 100_000, "batch_size": 16},
}
