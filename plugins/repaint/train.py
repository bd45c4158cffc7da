"""Training the prior: one phase, the eps MSE (+ the VLB term when the variance is learned:
guided-diffusion's "hybrid" loss), EMA weights exported."""

from __future__ import annotations

from zoo.errors import ZooError
from zoo.spec import TrainContext, TrainResult
from zoo.train import fit
from zoo.train.prior import DiffusionPriorTask
from zoo_plugins.repaint.model import RepaintPrior, make_chain


class PriorTask(DiffusionPriorTask):
    """The shared diffusion-prior task (zoo.train.prior) on repaint's chain."""

    def __init__(self, model: RepaintPrior, config) -> None:
        super().__init__(model, config, make_chain(config))


def train(model: RepaintPrior, ctx: TrainContext) -> TrainResult:
    if getattr(ctx.config, "num_classes", None) is not None:
        raise ZooError(f"repaint trains unconditional priors only; this config is class-conditional (num_classes={ctx.config.num_classes}) and the training data has no labels")
    if ctx.options is not None and getattr(ctx.options, "grad_checkpointing", False):
        model.set_grad_checkpointing(True)
    result = fit(PriorTask(model, ctx.config), ctx)
    model.set_grad_checkpointing(False)
    return result
