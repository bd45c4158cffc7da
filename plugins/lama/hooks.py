"""Hook wiring for ``lama`` (no logic here)."""

from __future__ import annotations

from zoo import MethodSpec, hookimpl
from zoo_plugins.lama import config as cfg

LAMA = "lama"

SPEC = MethodSpec(
    name=LAMA,
    summary="LaMa: FFC-ResNet generator with image-wide receptive field, PatchGAN + HRF perceptual loss; one forward pass.",
    family="gan",
    config=cfg.LamaConfig,
    presets=cfg.LAMA_PRESETS,
    paper="Suvorov et al., Resolution-robust Large Mask Inpainting with Fourier Convolutions, WACV 2022",
    license="Apache-2.0",
    default_preset="big-lama",
)


@hookimpl
def zoo_register_methods():
    return [SPEC]


@hookimpl
def zoo_build_model(method, config):
    from zoo_plugins.lama.model import LaMa

    return LaMa(config)


@hookimpl
def zoo_train(method, ctx):
    from zoo_plugins.lama.model import LaMa
    from zoo_plugins.lama.train import train

    return train(LaMa(ctx.config), ctx)


@hookimpl
def zoo_sample(method, model, config, images, masks, generator):
    from zoo_plugins.lama.sample import inpaint, refine_inpaint

    return refine_inpaint(model, images, masks, config) if config.refine else inpaint(model, images, masks)


@hookimpl
def zoo_score(method, model, config, images, masks, outputs):
    from zoo_plugins.lama.sample import realism_score

    return realism_score(model, masks, outputs)


@hookimpl
def zoo_import_checkpoint(method, source, preset):
    from zoo_plugins.lama.convert import import_lama

    return import_lama(SPEC, source, preset)
