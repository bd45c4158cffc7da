"""The training task of an unconditional diffusion prior, shared by every method that trains
one (``repaint``, ``dip-ddpm``): one phase, the eps MSE plus the VLB term when the variance is
learned (guided-diffusion's "hybrid" loss, its VLB term on the unclipped x0 estimate unless
the config has ``vlb_clip_denoised=True``), EMA weights exported. The batch's masks are
ignored."""

from __future__ import annotations

from typing import Any

import torch

from zoo.diffusion import Chain
from zoo.diffusion.losses import diffusion_loss
from zoo.train.task import Phase, TrainTask


class DiffusionPriorTask(TrainTask):
    """``model(x_t, t)`` -> eps (or [eps | v]); ``config`` has ``lr``, ``weight_decay``,
    ``ema_decay`` and ``learn_sigma``; ``chain`` is the training noise chain."""

    def __init__(self, model: torch.nn.Module, config: Any, chain: Chain) -> None:
        self.model, self.config, self.chain = model, config, chain
        self.ema_decay = config.ema_decay

    def optimizers(self):
        return {"prior": torch.optim.AdamW(self.model.parameters(), lr=self.config.lr, weight_decay=self.config.weight_decay)}

    def phases(self):
        return [Phase("prior", self.loss)]

    def loss(self, batch: dict, step: int):
        clip = getattr(self.config, "vlb_clip_denoised", False)  # guided-diffusion: unclipped x0 in the VLB term
        return diffusion_loss(self.model, self.chain, batch["image"], learn_sigma=self.config.learn_sigma, clip=clip)
