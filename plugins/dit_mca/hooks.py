"""Hook wiring for ``dit-mca`` (no logic here)."""

from __future__ import annotations

from zoo import MethodSpec, hookimpl
from zoo_plugins.dit_mca import config as cfg

NAME = "dit-mca"


@hookimpl
def zoo_register_methods():
    return [
        MethodSpec(
            name=NAME,
            summary="DiT-MCA: latent diffusion transformer (DiT) with multi-head contextual attention in shifted windows (dynamic mask), context-conditioned, RePaint-style latent resampling, classifier-free guidance.",
            family="diffusion",
            config=cfg.DitMcaConfig,
            presets=cfg.PRESETS,
            paper="Peebles & Xie, Scalable Diffusion Models with Transformers, ICCV 2023; Li et al., MAT, CVPR 2022; Lugmayr et al., RePaint, CVPR 2022",
            license="code MIT; DiT weights (init=) CC BY-NC 4.0",
            default_preset="tiny",
            tunable=cfg.TUNABLE,
        )
    ]


@hookimpl
def zoo_build_model(method, config):
    from zoo_plugins.dit_mca.model import DitMca

    config.validate()
    return DitMca(config)


@hookimpl
def zoo_train(method, ctx):
    from zoo_plugins.dit_mca.train import train

    return train(ctx)


@hookimpl
def zoo_sample(method, model, config, images, masks, generator):
    from zoo_plugins.dit_mca.sample import sample

    return sample(model, config, images, masks, generator)


@hookimpl
def zoo_score(method, model, config, images, masks, outputs):
    from zoo_plugins.dit_mca.sample import score

    return score(model, images, masks)
