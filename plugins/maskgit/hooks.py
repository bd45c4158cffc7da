"""Hook wiring for ``maskgit`` (no logic here)."""

from __future__ import annotations

from zoo import MethodSpec, hookimpl
from zoo_plugins.maskgit import config as cfg

NAME = "maskgit"


SPEC = MethodSpec(
    name=NAME,
    summary="MaskGIT: VQ tokens (diffusers VQModel) + bidirectional transformer; the hole's tokens filled by iterative parallel decoding.",
    family="token",
    config=cfg.MaskGITConfig,
    presets=cfg.PRESETS,
    paper="Chang et al., MaskGIT: Masked Generative Image Transformer, CVPR 2022",
    license="Apache-2.0 (official MaskGIT code)",
    default_preset="tiny",
    tunable=cfg.TUNABLE,
)


@hookimpl
def zoo_register_methods():
    return [SPEC]


@hookimpl
def zoo_build_model(method, config):
    from zoo_plugins.maskgit.model import MaskGIT

    config.validate()
    return MaskGIT(config)


@hookimpl
def zoo_train(method, ctx):
    from zoo_plugins.maskgit.train import train

    return train(ctx)


@hookimpl
def zoo_sample(method, model, config, images, masks, generator):
    from zoo_plugins.maskgit.sample import sample

    return sample(model, config, images, masks, generator)


@hookimpl
def zoo_import_checkpoint(method, source, preset, overrides):
    from zoo_plugins.maskgit.convert import import_vqgan

    return import_vqgan(SPEC, source, preset, overrides)


@hookimpl
def zoo_score(method, model, config, images, masks, outputs):
    from zoo_plugins.maskgit.sample import score

    return score(model, config, images, masks)
