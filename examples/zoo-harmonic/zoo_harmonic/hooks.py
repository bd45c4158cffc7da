"""Hook implementations: wiring only."""

from __future__ import annotations

import torch

from zoo import MethodSpec, MetricSpec, SampleOutput, hookimpl

from zoo_harmonic.fill import PRESETS, HarmonicConfig, harmonic_fill
from zoo_harmonic.metric import grad_error_hole

NAME = "harmonic"


@hookimpl
def zoo_register_methods():
    return [MethodSpec(NAME, "Harmonic inpainting: Laplace's equation in the hole, known pixels as boundary values.", "classical",
                       HarmonicConfig, PRESETS, paper="Bertalmio et al., Image Inpainting, SIGGRAPH 2000 (the smooth baseline)",
                       license="MIT", needs_training=False)]


@hookimpl
def zoo_build_model(method, config):
    return torch.nn.Module()  # nothing to learn: a module without parameters


@hookimpl
def zoo_sample(method, model, config, images, masks, generator):
    return SampleOutput(harmonic_fill(images, masks, config), {})  # deterministic; runs no network


@hookimpl
def zoo_register_metrics():
    return [MetricSpec("grad-error-hole", "mean |gradient difference| (on [0, 1]) over the hole", False, grad_error_hole,
                       needs_mask=True, value_range=(0.0, 1.0))]
