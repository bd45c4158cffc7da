"""Losses of ``dip-ddpm``: DIP's masked reconstruction loss (stage 1, fitted per image at
sample time, see :mod:`.sample`) and the prior's training task (one phase, the eps MSE +
the VLB term with a learned variance, EMA weights exported) through the shared engine."""

from __future__ import annotations

import torch

from zoo.spec import TrainContext, TrainResult
from zoo.train import fit
from zoo.train.prior import DiffusionPriorTask
from zoo_plugins.dip_ddpm.model import DipDdpm, make_chain


def dip_loss(pred: torch.Tensor, target: torch.Tensor, fit_mask: torch.Tensor) -> torch.Tensor:
    """Sum over images of each image's MSE on its fitted pixels (DIP eq. 5, masked).

    pred, target (G, 3, H, W); fit_mask (G, 1, H, W), 1 = pixel used for fitting (known and not
    held out). Hole pixels have weight 0, so their content never reaches the loss or its
    gradient. A sum over images (not a mean) keeps each network's gradient independent of G.
    """
    w = fit_mask.expand_as(pred)
    per_image = ((pred - target) ** 2 * w).flatten(1).sum(1) / w.flatten(1).sum(1).clamp_min(1)
    return per_image.sum()


class PriorTask(DiffusionPriorTask):
    """The shared diffusion-prior task (zoo.train.prior) on dip-ddpm's chain."""

    def __init__(self, model: DipDdpm, config) -> None:
        super().__init__(model, config, make_chain(config))


def train(model: DipDdpm, ctx: TrainContext) -> TrainResult:
    return fit(PriorTask(model, ctx.config), ctx)


def _with_prior(config, source, preset: str | None):
    """(config with the prior's architecture / schedule fields, prior) for ``source``."""
    from zoo.config import apply_overrides
    from zoo_plugins.dip_ddpm.convert import load_prior

    prior = load_prior(source, preset)
    return apply_overrides(config, prior.settings), prior


def _load_prior_weights(config, prior) -> DipDdpm:
    from zoo.checkpoint import load_state_strict

    model = DipDdpm(config)
    load_state_strict(model, prior.state_dict, what=f"prior {prior.provenance.get('source')}")
    return model


def train_or_take_prior(ctx: TrainContext) -> TrainResult:
    """``zoo train dip-ddpm``: train the prior with the engine, or, with ``prior=PATH``, take
    that prior as it is (DIP has nothing to learn across images).

    The prior's architecture fields are written into ``ctx.config`` in place: the core saves
    that config next to the returned weights."""
    config = ctx.config
    config.validate()
    if not config.prior:
        return train(DipDdpm(config), ctx)
    resolved, prior = _with_prior(config, config.prior, ctx.preset)
    for name in prior.settings:
        setattr(config, name, getattr(resolved, name))
    config.validate()
    model = _load_prior_weights(config, prior)
    return TrainResult(model.state_dict(), step=int(prior.provenance.get("step", 0)), metrics={})


def import_prior(source, preset: str | None):
    """``zoo import dip-ddpm PATH [--preset P]``: the DIP / refinement settings of preset P
    (default ``celebahq-256``), the prior read from PATH."""
    from zoo.config import apply_overrides
    from zoo.errors import choices_error
    from zoo.spec import ImportedCheckpoint
    from zoo_plugins.dip_ddpm.config import PRESETS, DipDdpmConfig

    name = preset or "celebahq-256"
    if name not in PRESETS:
        raise choices_error("preset for dip-ddpm", name, PRESETS)
    config, prior = _with_prior(apply_overrides(DipDdpmConfig(), PRESETS[name]), source, preset)
    config = apply_overrides(config, {"prior": str(source)})
    config.validate()
    model = _load_prior_weights(config, prior)
    return ImportedCheckpoint(config, name, model.state_dict(), prior.provenance)
