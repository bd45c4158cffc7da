"""Training the prior: one phase, the eps MSE (+ the VLB term when the variance is learned:
guided-diffusion's "hybrid" loss), EMA weights exported."""

from __future__ import annotations

import torch

from zoo.diffusion.losses import diffusion_loss
from zoo.spec import TrainContext, TrainResult
from zoo.train import Phase, TrainTask, fit
from zoo_plugins.repaint.model import RepaintPrior, make_chain


class PriorTask(TrainTask):
    """Unconditional prior: the batch's masks are ignored."""

    def __init__(self, model: RepaintPrior, config) -> None:
        self.model, self.config = model, config
        self.ema_decay = config.ema_decay
        self.chain = make_chain(config)

    def optimizers(self):
        return {"prior": torch.optim.AdamW(self.model.parameters(), lr=self.config.lr, weight_decay=self.config.weight_decay)}

    def phases(self):
        return [Phase("prior", self.loss)]

    def loss(self, batch: dict, step: int):
        return diffusion_loss(self.model, self.chain, batch["image"], learn_sigma=self.config.learn_sigma)


def train(model: RepaintPrior, ctx: TrainContext) -> TrainResult:
    if ctx.options is not None and getattr(ctx.options, "grad_checkpointing", False):
        model.set_grad_checkpointing(True)
    result = fit(PriorTask(model, ctx.config), ctx)
    model.set_grad_checkpointing(False)
    return result
