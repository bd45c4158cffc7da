"""Hook wiring for ``repaint`` (no logic here)."""

from __future__ import annotations

from zoo import MethodSpec, hookimpl
from zoo_plugins.repaint import config as cfg

NAME = "repaint"


@hookimpl
def zoo_register_methods():
    return [
        MethodSpec(
            name=NAME,
            summary="RePaint: resampling a DDPM prior (guided-diffusion UNet; class-conditional with classifier guidance) to fill holes.",
            family="diffusion",
            config=cfg.RepaintConfig,
            presets=cfg.PRESETS,
            paper="Lugmayr et al., RePaint: Inpainting using Denoising Diffusion Probabilistic Models, CVPR 2022",
            license="code MIT; published RePaint weights CC BY-NC-SA 4.0; guided-diffusion ImageNet weights MIT",
            default_preset="tiny",
            tunable=cfg.TUNABLE,
        )
    ]


@hookimpl
def zoo_build_model(method, config):
    from zoo_plugins.repaint.model import RepaintPrior

    return RepaintPrior(config)


@hookimpl
def zoo_train(method, ctx):
    from zoo_plugins.repaint.model import RepaintPrior
    from zoo_plugins.repaint.train import train

    return train(RepaintPrior(ctx.config), ctx)


@hookimpl
def zoo_sample(method, model, config, images, masks, generator):
    from zoo_plugins.repaint.sample import sample

    return sample(model, config, images, masks, generator)


@hookimpl
def zoo_score(method, model, config, images, masks, outputs):
    from zoo_plugins.repaint.sample import score

    return score(model, config, images, masks)


@hookimpl
def zoo_import_checkpoint(method, source, preset, overrides):
    from zoo_plugins.repaint.convert import import_checkpoint

    return import_checkpoint(source, preset, overrides)
