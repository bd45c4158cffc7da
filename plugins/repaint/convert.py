"""``zoo import repaint``: a guided-diffusion checkpoint file (RePaint's ``celeba256_250000.pt``,
``places256_300000.pt``: raw state dicts) or a diffusers-format DDPM folder -> the prior.

The reading is the core's (:mod:`zoo.diffusion.importer`, shared with dip-ddpm): every
architecture setting the tensor shapes determine is read back from them, a file that
matches a preset takes it, and what the shapes cannot tell (the heads per attention layer,
the training resolution) is asked for with ``zoo import repaint FILE --set key=value``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from zoo.config import apply_overrides
from zoo.diffusion.importer import PriorConfigs, check_guided_architecture, import_prior, infer_guided_settings
from zoo.spec import ImportedCheckpoint
from zoo_plugins.repaint.config import PRESETS, RepaintConfig

GUIDED_DEFAULT_PRESET = "celebahq-256"
CONFIGS = PriorConfigs("repaint", lambda name: apply_overrides(RepaintConfig(), PRESETS[name]) if name else RepaintConfig(), tuple(PRESETS), GUIDED_DEFAULT_PRESET)


def preset_config(preset: str) -> RepaintConfig:
    return CONFIGS.preset(preset)


def import_checkpoint(source: Path, preset: str | None, overrides: dict[str, Any] | None = None) -> ImportedCheckpoint:
    return import_prior(source, preset, overrides, CONFIGS)


__all__ = ["CONFIGS", "PRESETS", "check_guided_architecture", "import_checkpoint", "infer_guided_settings", "preset_config"]
