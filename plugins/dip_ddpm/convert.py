"""Where an existing DDPM prior comes from (``--set prior=PATH`` at ``zoo train`` and
``zoo import dip-ddpm PATH``): a zoo checkpoint of a DDPM prior (``repaint``'s, or another
``dip-ddpm`` one), a guided-diffusion ``.pt`` file, or a diffusers-format DDPM folder.

Everything goes through the core: zoo checkpoints are rebuilt with
:func:`zoo.checkpoint.load_model` (the owning plugin's ``zoo_build_model``), and official
files with :mod:`zoo.diffusion.importer` (the reader repaint uses too: architecture settings
from the tensor shapes, checked against dip-ddpm's presets), so no other plugin is needed. The prior's
architecture and noise schedule are taken from the source's config; its UNet weights must
sit under ``unet.*`` (the published guided-diffusion / diffusers key names).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from zoo.checkpoint import load_checkpoint, load_model, read_meta
from zoo.config import apply_overrides
from zoo.diffusion.importer import PriorConfigs
from zoo.errors import ZooError
from zoo_plugins.dip_ddpm.config import PRESETS, DipDdpmConfig

#: dip-ddpm's configs for reading official priors (a file matching a preset's prior takes it).
CONFIGS = PriorConfigs("dip-ddpm", lambda name: apply_overrides(DipDdpmConfig(), PRESETS[name]) if name else DipDdpmConfig(), tuple(PRESETS), "celebahq-256")

METHOD = "dip-ddpm"

#: Config fields that define the prior (architecture and noise schedule), shared with repaint.
PRIOR_FIELDS = (
    "backbone", "resolution", "channels", "channel_mult", "num_res_blocks", "attention_resolutions",
    "num_head_channels", "dropout", "use_scale_shift_norm", "resblock_updown", "learn_sigma",
    "diffusers_unet", "diffusion_steps", "beta_schedule", "beta_start", "beta_end",
)


@dataclasses.dataclass
class Prior:
    settings: dict[str, Any]  # PRIOR_FIELDS -> values
    state_dict: dict[str, torch.Tensor]  # keys prior.unet.*
    provenance: dict[str, Any]


def _as_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(config)


def _prior(source: Path, method: str, config: dict[str, Any], state: dict[str, torch.Tensor], provenance: dict[str, Any]) -> Prior:
    missing = [f for f in PRIOR_FIELDS if f not in config]
    if missing:
        raise ZooError(f"{source}: method {method!r} is not a DDPM prior like repaint's (its config has no {missing[0]!r})")
    if config.get("num_classes") is not None:
        raise ZooError(f"{source}: the prior is class-conditional ({config['num_classes']} classes); dip-ddpm needs an unconditional prior")
    if not state or not all(k.startswith("unet.") for k in state):
        bad = next((k for k in state if not k.startswith("unet.")), "(no tensors)")
        raise ZooError(f"{source}: expected the prior's weights under unet.*, found {bad!r}")
    return Prior({f: config[f] for f in PRIOR_FIELDS}, {f"prior.{k}": v.float() for k, v in state.items()}, provenance)


def load_prior(source: str | Path, preset: str | None = None) -> Prior:
    """Read a prior from ``source``; ``preset`` is passed to the official-file importer
    (architecture the guided-diffusion file is checked against)."""
    source = Path(source)
    if not source.exists():
        raise ZooError(f"prior {source} does not exist; give a repaint or dip-ddpm checkpoint, a guided-diffusion .pt file or a diffusers folder")
    if source.is_file() and source.suffix == ".safetensors":
        meta = read_meta(source)
        prov = {"kind": "prior", "source": str(source), "method": meta.method, "step": meta.step, "provenance": meta.provenance}
        if meta.method == METHOD:
            _, tensors = load_checkpoint(source, METHOD)
            state = {k[len("prior."):]: v for k, v in tensors.items() if k.startswith("prior.")}
            return _prior(source, meta.method, meta.config, state, prov)
        model, config, meta = load_model(source)  # the owning plugin rebuilds it
        return _prior(source, meta.method, _as_dict(config), model.state_dict(), prov)
    from zoo.diffusion.importer import import_prior

    imported = import_prior(source, preset if preset in CONFIGS.presets else None, {}, CONFIGS)
    prov = {"kind": "prior", "source": str(source), "importer": "zoo.diffusion.importer", **imported.provenance}
    return _prior(source, METHOD, _as_dict(imported.config), imported.state_dict, prov)
