"""``zoo import lama PATH``: the published big-lama (or lama-fourier) Lightning checkpoint.

``big-lama.zip`` unpacks to ``big-lama/config.yaml`` and ``big-lama/models/best.ckpt``; PATH is
either. ``best.ckpt`` is a PyTorch Lightning checkpoint: a dict whose ``state_dict`` holds the
generator under ``generator.model.*`` beside the discriminator and the loss networks, and whose
other entries include a pickled OmegaConf training config. It is read with
:func:`zoo.official.load_official` (nothing in it is executed). The generator is kept, and
the discriminator too when the file has one (``big-lama-with-discr``, published so that
big-lama can be fine-tuned adversarially): its keys are the zoo model's keys as they are, so
the import is strict and complete. Loss networks (``loss_*``, e.g. the HRF perceptual
ResNet), evaluators and optimizer states are dropped.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from zoo.fsutil import file_sha256
from zoo.checkpoint import key_problems
from zoo.config import resolve_config
from zoo.errors import ZooError
from zoo.official import load_official, tensors_only
from zoo.spec import ImportedCheckpoint, MethodSpec

PREFIX = "generator."
DISC_PREFIX = "discriminator."


def find_checkpoint(source: Path) -> Path:
    if source.is_dir():
        for cand in (source / "models" / "best.ckpt", source / "best.ckpt"):
            if cand.is_file():
                return cand
        raise ZooError(f"{source} holds no models/best.ckpt; give the unpacked big-lama folder or its best.ckpt")
    return source



def lightning_tensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], int]:
    """(generator tensors, discriminator tensors, how many others were dropped), with their
    published names."""
    obj: Any = load_official(path)
    if not isinstance(obj, dict) or not isinstance(obj.get("state_dict"), dict):
        raise ZooError(f"{path} is not a LaMa Lightning checkpoint (no 'state_dict' entry); expected big-lama's models/best.ckpt")
    state = tensors_only(obj["state_dict"])
    gen = {k: v for k, v in state.items() if k.startswith(PREFIX + "model.")}
    disc = {k: v for k, v in state.items() if k.startswith(DISC_PREFIX)}
    if not gen:
        sample = ", ".join(list(state)[:3]) or "none"
        raise ZooError(f"{path} has no generator.model.* weights (found e.g. {sample}); expected a LaMa FFC-ResNet checkpoint")
    return gen, disc, len(state) - len(gen) - len(disc)


def infer_discriminator(disc: dict[str, torch.Tensor]) -> dict[str, Any]:
    """pix2pixHD n-layer PatchGAN settings read off the tensors: ndf and d_layers."""
    try:
        ndf = disc[DISC_PREFIX + "model0.0.weight"].shape[0]
    except KeyError:
        raise ZooError("the discriminator.* tensors are not a pix2pixHD PatchGAN: no discriminator.model0.0.weight") from None
    convs = {int(m.group(1)) for k in disc if (m := re.match(r"discriminator\.model(\d+)\.", k))}
    return {"ndf": ndf, "d_layers": max(convs) - 1}


def infer_shape(gen: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Generator hyper-parameters read off the tensors (ngf, blocks, downsamplings, LFU)."""
    try:
        ngf = gen["generator.model.1.ffc.convl2l.weight"].shape[0]
    except KeyError:
        raise ZooError("not an FFC-ResNet generator: no generator.model.1.ffc.convl2l.weight (the 7x7 stem)") from None
    blocks = {int(m.group(1)) for k in gen if (m := re.match(r"generator\.model\.(\d+)\.conv1\.", k))}
    return {
        "ngf": ngf,
        "n_blocks": len(blocks),
        "n_downsampling": (min(blocks) - 2) if blocks else 0,
        "enable_lfu": any(".convg2g.lfu." in k for k in gen),
    }


def import_lama(spec: MethodSpec, source: Path, preset: str | None) -> ImportedCheckpoint:
    path = find_checkpoint(source)
    gen, disc, ignored = lightning_tensors(path)
    found = infer_shape(gen)
    if preset is None:
        for name in ("big-lama", "lama-fourier"):
            cfg, _ = resolve_config(spec, name, None)
            if all(getattr(cfg, k) == v for k, v in found.items()):
                preset = name
                break
        else:
            desc = ", ".join(f"{k}={v}" for k, v in found.items())
            raise ZooError(f"{path}: generator with {desc} matches neither big-lama nor lama-fourier; pass --preset")
    extra = {"discriminator": bool(disc), **(infer_discriminator(disc) if disc else {})}
    config, preset = resolve_config(spec, preset, extra)
    tensors = {**gen, **disc}
    parts = key_problems(_shapes(config), tensors, extra="unused")
    if parts:
        what = "generator and discriminator" if disc else "generator"
        raise ZooError(f"{path} does not match the lama {preset} {what}: " + "; ".join(parts))
    state = {k: v.to(torch.float32) if v.is_floating_point() else v for k, v in tensors.items()}
    provenance = {
        "format": "lightning-ckpt",
        "file": path.name,
        "sha256": file_sha256(path),
        "generator_tensors": len(gen),
        "discriminator_tensors": len(disc),
        "ignored_tensors": ignored,  # perceptual-loss and evaluator weights (loss_*, evaluator.*)
    }
    return ImportedCheckpoint(config=config, preset=preset, state_dict=state, provenance=provenance)


def _shapes(config) -> dict[str, tuple[int, ...]]:
    """Key -> shape of the zoo model, built on the meta device (no memory, no init cost)."""
    from zoo_plugins.lama.model import LaMa

    with torch.device("meta"):
        model = LaMa(config)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}
