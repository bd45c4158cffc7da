"""Hook wiring for ``dip-ddpm`` (no logic here)."""

from __future__ import annotations

from zoo import MethodSpec, hookimpl
from zoo_plugins.dip_ddpm import config as cfg

NAME = "dip-ddpm"


@hookimpl
def zoo_register_methods():
    return [
        MethodSpec(
            name=NAME,
            summary="DIP-DDPM: a Deep Image Prior fitted to the known pixels, refined by a DDPM prior from timestep t0 (known region re-imposed).",
            family="prior",
            config=cfg.DipDdpmConfig,
            presets=cfg.PRESETS,
            paper="Ulyanov et al., Deep Image Prior, CVPR 2018; Ho et al., DDPM, NeurIPS 2020; Meng et al., SDEdit, ICLR 2022",
            license="code MIT; imported priors keep their own license (RePaint's CC BY-NC-SA 4.0, google/ddpm-* Apache-2.0)",
            default_preset="tiny",
            tunable=cfg.TUNABLE,
        )
    ]


@hookimpl
def zoo_build_model(method, config):
    from zoo_plugins.dip_ddpm.model import DipDdpm

    config.validate()
    return DipDdpm(config)


@hookimpl
def zoo_train(method, ctx):
    from zoo_plugins.dip_ddpm.train import train_or_take_prior

    return train_or_take_prior(ctx)


@hookimpl
def zoo_sample(method, model, config, images, masks, generator):
    from zoo_plugins.dip_ddpm.sample import sample

    config.validate()
    return sample(model, config, images, masks, generator)


@hookimpl
def zoo_score(method, model, config, images, masks, outputs):
    from zoo_plugins.dip_ddpm.sample import score

    return score(model, config, images, masks)


@hookimpl
def zoo_import_checkpoint(method, source, preset):
    from zoo_plugins.dip_ddpm.train import import_prior

    return import_prior(source, preset)
