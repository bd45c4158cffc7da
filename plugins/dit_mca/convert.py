"""Outside weights: a diffusers VAE folder or a dit-mca checkpoint for the latent space
(``vae=PATH``), and a published DiT checkpoint for the denoiser (``init=PATH``).

DiT checkpoints (``DiT-XL-2-256x256.pt``: a raw EMA state dict) are read without executing
code (:func:`zoo.official.load_official`). Keys map one to one onto ``dit.*``, except:

* ``y_embedder.embedding_table.weight`` (1001, D): only the null-class row 1000 is kept, as
  ``null_class``, added to the timestep embedding (the model has no class labels);
* ``x_embedder.proj.weight`` (D, C, p, p): fills the noisy-latent input channels; the
  context channels (C + 1 more) stay zero, so a fresh start ignores the context;
* ``pos_embed``: fixed 2-D sin-cos, recomputed for each token grid (not loaded).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from zoo.errors import ZooError
from zoo_plugins.dit_mca.config import DitMcaConfig

VAE_ARCH_KEYS = ("in_channels", "out_channels", "down_block_types", "up_block_types", "block_out_channels",
                 "layers_per_block", "act_fn", "latent_channels", "norm_num_groups", "sample_size",
                 "use_quant_conv", "use_post_quant_conv", "mid_block_add_attention")


def say(message: str) -> None:
    """Print on the first training process only (``zoo train --devices N``)."""
    if os.environ.get("RANK", "0") == "0":
        print(message, flush=True)


def resolve_vae(cfg: DitMcaConfig) -> None:
    """``vae=PATH``: copy the VAE's architecture (and, unless given, its scale factor) into
    ``cfg.vae_config`` / ``cfg.latent_scale``, so the checkpoint rebuilds without PATH."""
    if not cfg.vae:
        return
    path = Path(cfg.vae)
    if path.is_dir():
        conf_file = path / "config.json"
        if not conf_file.is_file() and (path / "vae" / "config.json").is_file():
            conf_file = path / "vae" / "config.json"  # a whole Stable Diffusion folder
        if not conf_file.is_file():
            raise ZooError(f"dit-mca: vae={path} is a folder without config.json; give a diffusers AutoencoderKL folder")
        conf = json.loads(conf_file.read_text())
        if conf.get("_class_name", "AutoencoderKL") != "AutoencoderKL":
            raise ZooError(f"dit-mca: vae={path} holds a {conf.get('_class_name')}, not an AutoencoderKL")
        cfg.vae_config = {k: conf[k] for k in VAE_ARCH_KEYS if k in conf}
        if not cfg.latent_scale:
            cfg.latent_scale = float(conf.get("scaling_factor", 0.18215))
        return
    if path.is_file() and path.suffix == ".safetensors":
        from zoo.checkpoint import read_meta

        meta = read_meta(path)
        if meta.method != "dit-mca":
            raise ZooError(f"dit-mca: vae={path} is a checkpoint of {meta.method!r}; give a dit-mca checkpoint or a diffusers VAE folder")
        from zoo.config import config_from_dict
        from zoo_plugins.dit_mca.model import vae_config

        other = config_from_dict(DitMcaConfig, meta.config)
        cfg.vae_config = vae_config(other)
        if not cfg.latent_scale:
            cfg.latent_scale = float(other.latent_scale)
        return
    raise ZooError(f"dit-mca: vae={path} is neither a diffusers AutoencoderKL folder nor a dit-mca .safetensors checkpoint")


def _vae_folder(path: Path) -> Path:
    return path if (path / "config.json").is_file() else path / "vae"


def load_vae_into(model, cfg: DitMcaConfig) -> None:
    """Load the weights of ``cfg.vae`` into ``model.vae`` (and the latent scale)."""
    path = Path(cfg.vae)
    if path.is_dir():
        from diffusers import AutoencoderKL

        try:
            vae = AutoencoderKL.from_pretrained(str(_vae_folder(path)), use_safetensors=True)
        except Exception as exc:  # noqa: BLE001 - one line for the user
            raise ZooError(f"dit-mca: cannot read the VAE weights of {path} (needs diffusion_pytorch_model.safetensors): {str(exc).splitlines()[0][:160]}") from None
        model.vae.load_state_dict(vae.state_dict(), strict=True)
    else:
        from zoo.checkpoint import load_checkpoint

        _, tensors = load_checkpoint(path, "dit-mca")
        model.vae.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("vae.")}, strict=True)
    model.latent_scale.fill_(float(cfg.latent_scale or 1.0))
    say(f"dit-mca: VAE from {path} (latent scale {float(model.latent_scale):.5f}); training the denoiser only")


def dit_state(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a DiT checkpoint (raw state dict, or one under "ema" / "model")."""
    from zoo.official import load_official, tensors_only

    obj = load_official(path)
    if isinstance(obj, dict):
        for key in ("ema", "model", "state_dict"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    state = tensors_only(obj)
    if "x_embedder.proj.weight" not in state:
        raise ZooError(f"dit-mca: init={path} is not a DiT checkpoint (no x_embedder.proj.weight; found e.g. {next(iter(state), 'nothing')})")
    return state


@torch.no_grad()
def load_dit_init(dit, path: str | Path, verbose: bool = True) -> tuple[list[str], list[str]]:
    """Copy every matching weight of a DiT checkpoint into ``dit``; returns (loaded, skipped)
    and prints both."""
    state = dit_state(path)
    own = dit.state_dict()
    loaded, skipped = [], []
    C = dit.latent_channels
    for key, value in state.items():
        if key == "pos_embed":
            skipped.append("pos_embed (fixed sin-cos, recomputed for the token grid)")
        elif key == "y_embedder.embedding_table.weight":
            if value.shape[0] == 1001 and value.shape[1] == own["null_class"].shape[0]:
                own["null_class"].copy_(value[1000])
                loaded.append("y_embedder.embedding_table.weight[1000] -> null_class")
            else:
                skipped.append(f"{key} {tuple(value.shape)} (no null-class row 1000 of width {own['null_class'].shape[0]})")
        elif key == "x_embedder.proj.weight":
            mine = own[key]
            if value.shape[0] == mine.shape[0] and value.shape[1] == C and value.shape[2:] == mine.shape[2:]:
                mine[:, :C].copy_(value)
                loaded.append(f"{key} -> input channels 0..{C - 1} (context channels {C}..{mine.shape[1] - 1} stay zero)")
            else:
                skipped.append(f"{key} {tuple(value.shape)} (model {tuple(mine.shape)})")
        elif key not in own:
            skipped.append(f"{key} (not in the model)")
        elif own[key].shape != value.shape:
            skipped.append(f"{key} {tuple(value.shape)} (model {tuple(own[key].shape)})")
        else:
            own[key].copy_(value)
            loaded.append(key)
    missing = [k for k in own if k not in state and k != "null_class"]
    if not any(k.startswith("blocks.") for k in loaded):
        raise ZooError(f"dit-mca: init={path} shares no block weights with this model (depth {len(dit.blocks)}, width {own['null_class'].shape[0]}); pick the preset of its size")
    if verbose:
        lines = [f"dit-mca: init from {path}: loaded {len(loaded)} tensors, skipped {len(skipped)}, left at their init {len(missing)}"]
        lines += [f"  loaded  {k}" for k in loaded if "->" in k]
        lines += [f"  skipped {k}" for k in skipped] + [f"  kept init {k}" for k in missing[:20]]
        say("\n".join(lines))
    return loaded, skipped
