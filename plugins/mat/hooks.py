"""Hook wiring for ``mat`` (no logic here)."""

from __future__ import annotations

from zoo import MethodSpec, hookimpl
from zoo_plugins.mat import config as cfg

MAT_NAME = "mat"

SPEC = MethodSpec(
    name=MAT_NAME,
    summary="MAT: mask-aware transformer (window multi-head contextual attention, dynamic mask) + style manipulation, two stages; diverse fills from z; one forward pass.",
    family="gan",
    config=cfg.MatConfig,
    presets=cfg.MAT_PRESETS,
    paper="Li et al., MAT: Mask-Aware Transformer for Large Hole Image Inpainting, CVPR 2022",
    license="code: MIT here (official code and weights: CC BY-NC 4.0, non-commercial)",
    default_preset="mat-512",
)


@hookimpl
def zoo_register_methods():
    return [SPEC]


@hookimpl
def zoo_build_model(method, config):
    from zoo_plugins.mat.model import MAT

    return MAT(config)


@hookimpl
def zoo_train(method, ctx):
    from zoo_plugins.mat.train import train

    return train(ctx)


@hookimpl
def zoo_sample(method, model, config, images, masks, generator):
    from zoo_plugins.mat.sample import inpaint

    return inpaint(model, images, masks, generator)


@hookimpl
def zoo_score(method, model, config, images, masks, outputs):
    from zoo_plugins.mat.sample import score

    return score(model, images, masks, outputs)


@hookimpl
def zoo_import_checkpoint(method, source, preset, overrides):
    from zoo_plugins.mat.convert import import_mat

    return import_mat(SPEC, source, preset, overrides)
