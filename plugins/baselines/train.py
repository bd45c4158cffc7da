"""conv-l1 training: one phase, masked L1 (hole pixels weighted by ``hole_weight``)."""

from __future__ import annotations

import torch

from zoo.spec import TrainContext, TrainResult
from zoo.train import Phase, TrainTask, fit
from zoo_plugins.baselines.model import ConvL1Net


def masked_l1(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, hole_weight: float) -> torch.Tensor:
    weight = 1.0 + (hole_weight - 1.0) * mask  # (B, 1, H, W)
    return ((pred - target).abs() * weight).mean()


class ConvL1Task(TrainTask):
    def __init__(self, model: ConvL1Net, config) -> None:
        self.model, self.config = model, config

    def optimizers(self):
        return {"net": torch.optim.Adam(self.model.parameters(), lr=self.config.lr, betas=(0.5, 0.999))}

    def phases(self):
        return [Phase("net", self.loss)]

    def loss(self, batch: dict, step: int):
        image, mask = batch["image"], batch["mask"]
        pred = self.model(image, mask)
        loss = masked_l1(pred, image, mask, self.config.hole_weight)
        hole = ((pred - image).abs() * mask).sum() / mask.sum().clamp_min(1) / 3
        return loss, {"loss": loss.item(), "l1_hole": hole.item()}


def train(model: ConvL1Net, ctx: TrainContext) -> TrainResult:
    return fit(ConvL1Task(model, ctx.config), ctx)
