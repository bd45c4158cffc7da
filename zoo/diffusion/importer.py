"""Reading published DDPM priors into a zoo prior config: a guided-diffusion checkpoint file
(RePaint's ``celeba256_250000.pt``, ``places256_300000.pt``, guided-diffusion's class-conditional
``256x256_diffusion.pt``: raw state dicts) or a diffusers-format DDPM folder. Used by every method whose model is such a prior
(``zoo import repaint``, ``zoo import dip-ddpm``, ``--set prior=``), each with its own config
class and presets (:class:`PriorConfigs`).

The file describes itself: every architecture setting the tensor shapes determine
(channels, channel_mult, num_res_blocks, attention levels, learned sigma, scale-shift norm,
resblock up/down, input/output channels, the classes of ``label_emb``) is read back from them
(:func:`infer_guided_settings`), so any guided-diffusion UNet imports, not only the presets.
What the shapes cannot tell is asked for, with ``--set key=value``: the heads per attention
layer (``num_head_channels``, or ``num_head_channels=none`` and ``num_heads``) when the file
has attention, and the training resolution (attention resolutions are stored as feature-map
sizes of it; default 256, it changes no weight). A file that matches a preset's architecture
takes that preset (its heads are known). With ``--preset``, a file of another architecture
gets one line naming the differing setting.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from zoo.config import apply_overrides
from zoo.errors import ZooError, choices_error
from zoo.fsutil import file_sha256
from zoo.official import load_official, tensors_only
from zoo.spec import ImportedCheckpoint


@dataclass(frozen=True)
class PriorConfigs:
    """A method's prior configs: ``make(preset)`` -> its config with that preset (``None``: the
    defaults); ``default_preset`` is tried first when a guided file's architecture is matched."""

    method: str
    make: Callable[[str | None], Any]
    presets: Sequence[str]
    default_preset: str

    def preset(self, name: str) -> Any:
        if name not in self.presets:
            raise choices_error(f"preset for {self.method}", name, self.presets)
        return self.make(name)


def _replace_known(cfg: Any, **values: Any) -> Any:
    """``dataclasses.replace`` with the fields ``cfg`` has (a sampling field of one method,
    e.g. repaint's ``t_T``, is skipped for another)."""
    names = {f.name for f in dataclasses.fields(cfg)}
    return dataclasses.replace(cfg, **{k: v for k, v in values.items() if k in names})


# -- guided-diffusion files ----------------------------------------------------------------
def _block_ids(sd: dict[str, torch.Tensor], prefix: str) -> list[int]:
    return sorted({int(m.group(1)) for k in sd if (m := re.match(rf"{prefix}\.(\d+)\.", k))})


def infer_guided_settings(sd: dict[str, torch.Tensor], resolution: int) -> dict[str, Any]:
    """Architecture settings of a guided-diffusion UNet state dict, from its shapes."""
    try:
        C = sd["time_embed.0.weight"].shape[1]
        in_ch = sd["input_blocks.0.0.weight"].shape[1]
        out_ch = sd["out.2.weight"].shape[0]
        outs = _block_ids(sd, "output_blocks")

        def is_up(j: int) -> bool:  # an output block that ends with an upsampler
            subs = {int(m.group(1)) for k in sd if (m := re.match(rf"output_blocks\.{j}\.(\d+)\.", k))}
            return any(s > 0 and (f"output_blocks.{j}.{s}.in_layers.2.weight" in sd or f"output_blocks.{j}.{s}.conv.weight" in sd) for s in subs)

        ups = [j for j in outs if is_up(j)]
        nrb = ups[0] if ups else len(outs) - 1
        levels = len(outs) // (nrb + 1)
        mult = [sd[f"output_blocks.{lvl * (nrb + 1)}.0.out_layers.3.weight"].shape[0] // C for lvl in range(levels)][::-1]
        updown = bool(ups) and any(f"output_blocks.{ups[0]}.{s}.in_layers.2.weight" in sd for s in (1, 2))
        first = sd["input_blocks.1.0.emb_layers.1.weight"].shape[0]
        scale_shift = first == 2 * sd["input_blocks.1.0.out_layers.3.weight"].shape[0]
        num_classes = sd["label_emb.weight"].shape[0] if "label_emb.weight" in sd else None
        attn_levels = sorted({(i - 1) // (nrb + 1) for i in _block_ids(sd, "input_blocks") if f"input_blocks.{i}.1.qkv.weight" in sd}, reverse=True)
    except (KeyError, IndexError) as exc:
        raise ZooError(f"not a guided-diffusion UNet state dict (missing {exc}); expected keys time_embed.*, input_blocks.*, middle_block.*, output_blocks.*, out.*") from None
    return {
        "num_channels": C,
        "channel_mult": tuple(mult),
        "num_res_blocks": nrb,
        "attention_resolutions": tuple(sorted((resolution // 2**lvl for lvl in attn_levels), reverse=True)),
        "learn_sigma": out_ch == 2 * in_ch,
        "in_channels": in_ch,
        "use_scale_shift_norm": scale_shift,
        "resblock_updown": updown,
        "num_classes": num_classes,
    }


def check_guided_architecture(sd: dict[str, torch.Tensor], cfg: Any, preset: str) -> None:
    """Raise one ZooError naming the first setting where the file and the preset differ."""
    found = infer_guided_settings(sd, cfg.resolution)
    wanted = {
        "num_channels": cfg.channels,
        "channel_mult": tuple(cfg.channel_mult),
        "num_res_blocks": cfg.num_res_blocks,
        "attention_resolutions": tuple(sorted(cfg.attention_resolutions, reverse=True)),
        "learn_sigma": cfg.learn_sigma,
        "in_channels": 3,
        "use_scale_shift_norm": cfg.use_scale_shift_norm,
        "resblock_updown": cfg.resblock_updown,
        "num_classes": getattr(cfg, "num_classes", None),
    }
    for key, value in wanted.items():
        if found[key] != value:
            raise ZooError(f"{key}: file has {_fmt(found[key])}, preset {preset} has {_fmt(value)} (pick another --preset or --set the field)")


def _fmt(v: Any) -> str:
    if v is None:
        return "none"
    return ",".join(map(str, v)) if isinstance(v, tuple) else str(v).lower() if isinstance(v, bool) else str(v)


#: Settings a guided-diffusion file cannot tell, and what to pass for them.
HEADS_HINT = (
    "--set num_head_channels=64 (channels per head: RePaint's and guided-diffusion's published models) "
    "or --set num_head_channels=none --set num_heads=4 (a head count: guided-diffusion's script default)"
)


def _unwrap(obj: Any) -> Any:
    if isinstance(obj, dict) and "time_embed.0.weight" not in obj:
        for key in ("state_dict", "model", "ema"):
            if isinstance(obj.get(key), dict):
                return obj[key]
    return obj


def inferred_config(sd: dict[str, torch.Tensor], overrides: dict[str, Any] | None, configs: PriorConfigs) -> tuple[Any, str, list[str]]:
    """The config of a guided file read from its shapes: (config, preset, notes).

    A file with a preset's architecture takes that preset; otherwise the settings come from
    the shapes and ``overrides`` (heads, resolution), the rest (schedule, sampling) from
    the published defaults."""
    overrides = dict(overrides or {})
    resolution = int(apply_overrides(configs.make(None), {k: v for k, v in overrides.items() if k == "resolution"}).resolution)
    found = infer_guided_settings(sd, resolution)
    if found["in_channels"] != 3:
        raise ZooError(f"the UNet takes {found['in_channels']} input channels; {configs.method} needs an RGB prior (3)")
    if found["num_classes"] is not None and "num_classes" not in {f.name for f in dataclasses.fields(configs.make(None))}:
        raise ZooError(f"the UNet is class-conditional (label_emb: {found['num_classes']} classes); {configs.method} needs an unconditional prior")
    arch = {
        "channels": found["num_channels"],
        "channel_mult": found["channel_mult"],
        "num_res_blocks": found["num_res_blocks"],
        "attention_resolutions": found["attention_resolutions"],
        "learn_sigma": found["learn_sigma"],
        "use_scale_shift_norm": found["use_scale_shift_norm"],
        "resblock_updown": found["resblock_updown"],
    }
    if found["num_classes"] is not None:  # class-conditional (guided-diffusion's ImageNet models)
        arch["num_classes"] = found["num_classes"]
    for name in dict.fromkeys((configs.default_preset, *configs.presets)):  # attention levels compared at the preset's resolution
        cfg = apply_overrides(configs.preset(name), overrides)
        at = infer_guided_settings(sd, cfg.resolution)["attention_resolutions"]
        same_classes = getattr(cfg, "num_classes", None) == found["num_classes"]
        if same_classes and all(_same(getattr(cfg, k), at if k == "attention_resolutions" else v) for k, v in arch.items()):
            return cfg, name, []
    # the middle block always has attention, so the heads are always needed
    if "num_head_channels" not in overrides and "num_heads" not in overrides:
        desc = ", ".join(f"{k}={_fmt(v)}" for k, v in arch.items())
        raise ZooError(f"read from the file: {desc} (no preset has it); the heads per attention layer cannot be read from the tensors: pass {HEADS_HINT}")
    cfg = apply_overrides(configs.make(None), {**arch, "resolution": resolution, **overrides})
    notes = ["read from the file: " + ", ".join(f"{k}={_fmt(v)}" for k, v in arch.items()) + f"; resolution={cfg.resolution}" + ("" if "resolution" in overrides else " assumed (it changes no weight; --set resolution=N)")]
    return cfg, "custom", notes


def _same(a: Any, b: Any) -> bool:
    return tuple(a) == tuple(b) if isinstance(a, (tuple, list)) else a == b


def import_guided(path: Path, preset: str | None, overrides: dict[str, Any] | None, configs: PriorConfigs) -> ImportedCheckpoint:
    sd = tensors_only(_unwrap(load_official(path)))
    notes: list[str] = []
    if preset is not None:
        cfg = apply_overrides(configs.preset(preset), overrides or {})
        check_guided_architecture(sd, cfg, preset)
    else:
        cfg, preset, notes = inferred_config(sd, overrides, configs)
    state = {f"unet.{k}": v.float() for k, v in sd.items()}
    provenance = {"format": "guided-diffusion", "file": path.name, "sha256": file_sha256(path)}
    if notes:
        provenance["inferred"] = notes[0]
    return ImportedCheckpoint(cfg, preset, state, provenance, notes=notes)


# -- diffusers folders ---------------------------------------------------------------------
_OLD_ATTN = {"query": "to_q", "key": "to_k", "value": "to_v", "proj_attn": "to_out.0"}


def _modern_keys(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename the attention keys of old diffusers files (query/key/value/proj_attn)."""
    out = {}
    for k, v in sd.items():
        parts = k.split(".")
        if len(parts) >= 3 and parts[-2] in _OLD_ATTN and "attentions" in parts:
            k = ".".join(parts[:-2] + [_OLD_ATTN[parts[-2]], parts[-1]])
        out[k] = v
    return out


def import_diffusers(root: Path, preset: str | None, overrides: dict[str, Any] | None, configs: PriorConfigs) -> ImportedCheckpoint:
    from safetensors.torch import load_file

    unet_dir, sched_path = root / "unet", root / "scheduler" / "scheduler_config.json"
    if not (root / "model_index.json").is_file() or not (unet_dir / "config.json").is_file():
        raise ZooError(f"{root} is not a diffusers pipeline folder (needs model_index.json and unet/config.json)")
    for name in ("model_index.json", "unet/config.json"):
        try:
            parsed = json.loads((root / name).read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ZooError(f"{root / name} is not valid JSON ({str(exc).splitlines()[0][:100]})") from None
        if not isinstance(parsed, dict):
            raise ZooError(f"{root / name} must hold a JSON object, not {type(parsed).__name__}")
    unet_cfg = json.loads((unet_dir / "config.json").read_text())
    if unet_cfg.get("_class_name", "UNet2DModel") != "UNet2DModel":
        raise ZooError(f"{root}: unet is a {unet_cfg['_class_name']}, only unconditional UNet2DModel priors are supported")
    if unet_cfg.get("num_class_embeds") or unet_cfg.get("class_embed_type") or unet_cfg.get("in_channels", 3) != 3:
        raise ZooError(f"{root}: the unet is conditional or not RGB; {configs.method} needs an unconditional 3-channel prior")
    st, binf = unet_dir / "diffusion_pytorch_model.safetensors", unet_dir / "diffusion_pytorch_model.bin"
    if st.is_file():
        sd = load_file(str(st))
    elif binf.is_file():
        sd = tensors_only(load_official(binf))
    else:
        raise ZooError(f"{unet_dir} has no diffusion_pytorch_model.safetensors or .bin")
    sched = json.loads(sched_path.read_text()) if sched_path.is_file() else {}
    if sched.get("prediction_type", "epsilon") != "epsilon":
        raise ZooError(f"{root}: prediction_type {sched['prediction_type']!r}; {configs.method} needs an epsilon-predicting prior")
    T = int(sched.get("num_train_timesteps", 1000))
    kind = {"linear": "linear", "squaredcos_cap_v2": "cosine"}.get(sched.get("beta_schedule", "linear"))
    if kind is None:
        raise ZooError(f"{root}: beta_schedule {sched.get('beta_schedule')!r} is not supported; valid choices: linear, squaredcos_cap_v2")
    out_ch = int(unet_cfg.get("out_channels", 3))
    clean = {k: v for k, v in unet_cfg.items() if not k.startswith("_")}
    cfg = configs.preset(preset) if preset else configs.make(None)
    cfg = _replace_known(
        cfg,
        backbone="diffusers",
        diffusers_unet=clean,
        resolution=int(unet_cfg.get("sample_size", cfg.resolution)),
        learn_sigma=out_ch == 6,
        diffusion_steps=T,
        beta_schedule=kind,
        # zoo's linear schedule scales by 1000 / T; store the T = 1000 equivalents
        beta_start=float(sched.get("beta_start", 1e-4)) * T / 1000,
        beta_end=float(sched.get("beta_end", 0.02)) * T / 1000,
        clip_denoised=bool(sched.get("clip_sample", True)),
        t_T=min(getattr(cfg, "t_T", T), T),
    )
    if overrides:
        cfg = apply_overrides(cfg, overrides)
    state = {f"unet.{k}": v.float() for k, v in _modern_keys(sd).items()}
    return ImportedCheckpoint(cfg, preset or "custom", state, {"format": "diffusers", "folder": root.name})


def import_prior(source: Path, preset: str | None, overrides: dict[str, Any] | None, configs: PriorConfigs) -> ImportedCheckpoint:
    """A guided-diffusion file or a diffusers folder -> ``configs``' config, weights under ``unet.*``."""
    source = Path(source)
    if source.is_dir():
        return import_diffusers(source, preset, overrides, configs)
    return import_guided(source, preset, overrides, configs)


__all__ = ["HEADS_HINT", "PriorConfigs", "check_guided_architecture", "import_diffusers", "import_guided", "import_prior", "infer_guided_settings", "inferred_config"]
