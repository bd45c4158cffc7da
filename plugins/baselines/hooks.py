"""Hook wiring for the baselines (no logic here)."""

from __future__ import annotations

from zoo import MethodSpec, hookimpl
from zoo_plugins.baselines import config as cfg

TELEA = "telea"
CONV_L1 = "conv-l1"


@hookimpl
def zoo_register_methods():
    return [
        MethodSpec(
            name=TELEA,
            summary="Classical fast-marching (Telea) or Navier-Stokes fill via OpenCV; nothing to train.",
            family="classical",
            config=cfg.TeleaConfig,
            presets=cfg.TELEA_PRESETS,
            paper="Telea, An Image Inpainting Technique Based on the Fast Marching Method, JGT 2004",
            license="Apache-2.0 (OpenCV)",
            needs_training=False,
        ),
        MethodSpec(
            name=CONV_L1,
            summary="Compact encoder-decoder conv net with a dilated middle, trained with masked L1.",
            family="regression",
            config=cfg.ConvL1Config,
            presets=cfg.CONV_L1_PRESETS,
            paper="Baseline (no paper): masked-L1 encoder-decoder, cf. Pathak et al., Context Encoders, CVPR 2016",
            license="MIT",
        ),
    ]


@hookimpl
def zoo_build_model(method, config):
    from zoo_plugins.baselines.model import ConvL1Net, TeleaFill

    if method == TELEA:
        return TeleaFill(config)
    if method == CONV_L1:
        return ConvL1Net(config)
    return None


@hookimpl
def zoo_train(method, ctx):
    from zoo_plugins.baselines.model import ConvL1Net
    from zoo_plugins.baselines.train import train

    return train(ConvL1Net(ctx.config), ctx)


@hookimpl
def zoo_sample(method, model, config, images, masks, generator):
    from zoo_plugins.baselines.sample import sample

    return sample(model, images, masks)
