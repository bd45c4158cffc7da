"""taming-transformers VQGAN checkpoints -> the diffusers ``VQModel`` maskgit tokenizes with.

The published ``vqgan_imagenet_f16_1024`` / ``vqgan_imagenet_f16_16384`` ``last.ckpt`` files
are PyTorch Lightning checkpoints whose ``state_dict`` holds taming's ``VQModel``:
``encoder.*``, ``decoder.*`` (``taming.modules.diffusionmodules.model``), ``quantize.*``
(``VectorQuantizer2``), ``quant_conv.*`` and ``post_quant_conv.*``, beside ``loss.*`` (the
LPIPS network and the PatchGAN discriminator, dropped here). The file is read with
:func:`zoo.official.load_official` (nothing in it is executed).

Key map (taming -> diffusers; n levels, taming's ``up`` runs from the deepest level):

    {en,de}coder.conv_in / norm_out / conv_out -> conv_in / conv_norm_out / conv_out
    encoder.down.i.block.j      -> encoder.down_blocks.i.resnets.j   (nin_shortcut -> conv_shortcut)
    encoder.down.i.attn.j       -> encoder.down_blocks.i.attentions.j (AttnDownEncoderBlock2D)
    encoder.down.i.downsample   -> encoder.down_blocks.i.downsamplers.0
    decoder.up.i.*              -> decoder.up_blocks.(n-1-i).*        (upsample -> upsamplers.0)
    *.mid.block_1 / attn_1 / block_2 -> *.mid_block.resnets.0 / attentions.0 / resnets.1
    attention norm, q, k, v, proj_out (1x1 convs) -> group_norm, to_q, to_k, to_v, to_out.0 (linears)

The architecture (channels per level, blocks per level, attention levels, z and codebook
sizes) is read off the tensors' shapes; taming's GroupNorm always has 32 groups.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from zoo.errors import ZooError
from zoo.official import load_official, tensors_only

#: taming's own modules; everything else (``loss.*``) is dropped
PARTS = ("encoder.", "decoder.", "quantize.", "quant_conv.", "post_quant_conv.")
_ATTN = {"norm": "group_norm", "q": "to_q", "k": "to_k", "v": "to_v", "proj_out": "to_out.0"}
_RESNET = {"nin_shortcut": "conv_shortcut"}
_TOP = {"conv_in": "conv_in", "norm_out": "conv_norm_out", "conv_out": "conv_out"}


def read_taming(path: Path) -> tuple[dict[str, torch.Tensor], int]:
    """The VQGAN tensors of a taming Lightning checkpoint (or a bare state dict) and how many
    other entries (loss / discriminator) were dropped."""
    obj: Any = load_official(path)
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    state = tensors_only(obj)
    kept = {k: v for k, v in state.items() if k.startswith(PARTS)}
    if "quantize.embedding.weight" not in kept or "encoder.conv_in.weight" not in kept:
        sample = ", ".join(list(state)[:3]) or "none"
        raise ZooError(f"{path} is not a taming-transformers VQGAN checkpoint (no encoder.conv_in.weight / quantize.embedding.weight; found e.g. {sample})")
    if any(k.startswith(("quantize.proj.", "quantize.embed.")) for k in kept):
        raise ZooError(f"{path} is a Gumbel-quantized VQGAN (quantize.proj); only the VectorQuantizer layout (vqgan_imagenet_f16_1024 / f16_16384) is supported")
    if "quantize.used" in kept:
        raise ZooError(f"{path} has a remapped codebook (quantize.used); only VQGANs without remap are supported")
    return kept, len(state) - len(kept)


def _levels(sd: dict[str, torch.Tensor], part: str) -> int:
    return 1 + max(int(m.group(1)) for k in sd if (m := re.match(rf"{part}\.(\d+)\.", k)))


def vq_config(sd: dict[str, torch.Tensor], sample_size: int = 256) -> dict[str, Any]:
    """The diffusers ``VQModel`` config of taming VQGAN tensors ``sd`` (read off their shapes)."""
    try:
        return _vq_config(sd, sample_size)
    except (KeyError, ValueError) as exc:  # a tensor the layout needs is missing
        what = f"no {exc.args[0]}" if isinstance(exc, KeyError) else "no encoder.down.* levels"
        raise ZooError(f"not the taming-transformers VQGAN layout ({what}); expected encoder.down.*, decoder.up.*, quantize, quant_conv, post_quant_conv") from None


def _vq_config(sd: dict[str, torch.Tensor], sample_size: int) -> dict[str, Any]:
    n = _levels(sd, "encoder.down")
    blocks = 1 + max(int(m.group(1)) for k in sd if (m := re.match(r"encoder\.down\.0\.block\.(\d+)\.", k)))
    channels = [int(sd[f"encoder.down.{i}.block.0.conv1.weight"].shape[0]) for i in range(n)]
    enc_attn = [any(k.startswith(f"encoder.down.{i}.attn.") for k in sd) for i in range(n)]
    dec_attn = [any(k.startswith(f"decoder.up.{n - 1 - i}.attn.") for k in sd) for i in range(n)]  # diffusers order
    z = int(sd["post_quant_conv.weight"].shape[0])
    if int(sd["encoder.conv_out.weight"].shape[0]) != z:
        raise ZooError(f"the VQGAN's encoder gives {sd['encoder.conv_out.weight'].shape[0]} channels but post_quant_conv {z} (double_z); not a VQGAN tokenizer")
    codes, dim = (int(s) for s in sd["quantize.embedding.weight"].shape)
    return {
        "in_channels": int(sd["encoder.conv_in.weight"].shape[1]),
        "out_channels": int(sd["decoder.conv_out.weight"].shape[0]),
        "down_block_types": ["AttnDownEncoderBlock2D" if a else "DownEncoderBlock2D" for a in enc_attn],
        "up_block_types": ["AttnUpDecoderBlock2D" if a else "UpDecoderBlock2D" for a in dec_attn],
        "block_out_channels": channels,
        "layers_per_block": blocks,
        "act_fn": "silu",
        "latent_channels": z,
        "sample_size": sample_size,
        "num_vq_embeddings": codes,
        "norm_num_groups": 32,
        "vq_embed_dim": dim,
        "mid_block_add_attention": any(k.startswith("encoder.mid.attn_1.") for k in sd),
    }


def _map_key(key: str, n: int) -> str:
    part, rest = key.split(".", 1)
    if part not in ("encoder", "decoder"):
        return key  # quantize.embedding.weight, quant_conv.*, post_quant_conv.*: same names
    head, _, leaf = rest.rpartition(".")  # leaf: weight / bias
    bits = head.split(".")
    if bits[0] in _TOP and len(bits) == 1:
        return f"{part}.{_TOP[bits[0]]}.{leaf}"
    if bits[0] == "mid":  # mid.block_1.conv1 / mid.attn_1.q
        name = {"block_1": "resnets.0", "attn_1": "attentions.0", "block_2": "resnets.1"}[bits[1]]
        sub = _ATTN if bits[1] == "attn_1" else _RESNET
        return f"{part}.mid_block.{name}.{'.'.join(sub.get(b, b) for b in bits[2:])}.{leaf}"
    if bits[0] in ("down", "up"):  # down.i.block.j.conv1 / up.i.attn.j.q / down.i.downsample.conv
        i = int(bits[1]) if bits[0] == "down" else n - 1 - int(bits[1])
        where = f"{part}.{'down_blocks' if bits[0] == 'down' else 'up_blocks'}.{i}"
        if bits[2] in ("downsample", "upsample"):
            return f"{where}.{bits[2]}rs.0.{'.'.join(bits[3:])}.{leaf}"
        sub = _ATTN if bits[2] == "attn" else _RESNET
        kind = "attentions" if bits[2] == "attn" else "resnets"
        return f"{where}.{kind}.{bits[3]}.{'.'.join(sub.get(b, b) for b in bits[4:])}.{leaf}"
    raise ZooError(f"unexpected VQGAN tensor {key}; not the taming-transformers Encoder/Decoder layout")


def to_diffusers(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename taming VQGAN tensors to diffusers ``VQModel`` keys; attention 1x1 convs become
    linear weights (C, C, 1, 1) -> (C, C)."""
    n = _levels(sd, "encoder.down")
    out: dict[str, torch.Tensor] = {}
    for key, value in sd.items():
        new = _map_key(key, n)
        if ".attentions." in new and new.endswith(".weight") and value.dim() == 4:
            value = value[:, :, 0, 0]
        out[new] = value.detach().to(torch.float32).contiguous()
    return out


def load_vqgan(path: Path, sample_size: int = 256) -> tuple[dict[str, Any], dict[str, torch.Tensor], int]:
    """(diffusers VQModel config, its weights, entries dropped) from a taming VQGAN file,
    checked against the VQModel that config builds (one line naming what does not fit)."""
    import warnings

    from diffusers import VQModel

    from zoo.checkpoint import key_problems

    taming, dropped = read_taming(path)
    try:
        conf = vq_config(taming, sample_size)
    except ZooError as exc:
        raise ZooError(f"{path} is {exc}") from None
    if any(c % 32 for c in conf["block_out_channels"]):
        raise ZooError(f"{path}: channels {conf['block_out_channels']} are not multiples of 32 (taming's GroupNorm groups)")
    weights = to_diffusers(taming)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        shapes = {k: tuple(v.shape) for k, v in VQModel.from_config(conf).state_dict().items()}
    parts = key_problems(shapes, weights, extra="unused")
    if parts:
        raise ZooError(f"{path} does not map onto a diffusers VQModel: " + "; ".join(parts))
    return conf, weights, dropped


def check_asked(path: Path, conf: dict[str, Any], asked: dict[str, Any]) -> None:
    """Refuse a ``--set`` that contradicts the file (codebook size, code or latent width)."""
    found = {"codebook_size": conf["num_vq_embeddings"], "vq_embed_dim": conf["vq_embed_dim"], "vq_latent_channels": conf["latent_channels"]}
    for key, have in found.items():
        if key in asked and int(asked[key]) != have:
            raise ZooError(f"maskgit: {path.name} has {key}={have} (quantize.embedding.weight {conf['num_vq_embeddings']} x {conf['vq_embed_dim']}), "
                           f"but --set {key}={asked[key]} asks for {int(asked[key])}; drop --set {key} or give a VQGAN with {int(asked[key])}")


def import_vqgan(spec: Any, source: Path, preset: str | None, overrides: dict[str, Any]) -> Any:
    """``zoo import maskgit VQGAN.ckpt`` (or a diffusers VQModel folder): a maskgit checkpoint
    whose tokenizer is the published one and whose transformer is freshly initialised (seed
    0), to be trained with ``zoo train maskgit --set stage=transformer --set tokenizer=OUT``.
    ``preset`` (default ``imagenet-256``) gives the transformer and the training resolution."""
    from zoo.config import resolve_config
    from zoo.fsutil import file_sha256
    from zoo.spec import ImportedCheckpoint
    from zoo_plugins.maskgit.model import MaskGIT
    from zoo_plugins.maskgit.train import _load_diffusers_vq

    cfg, preset = resolve_config(spec, preset or "imagenet-256", None)
    if source.is_dir() and (source / "config.json").is_file():
        weights = _load_diffusers_vq(cfg, source)
        conf, dropped, fmt = cfg.tokenizer_config, 0, "diffusers-vqmodel"
    else:
        conf, weights, dropped = load_vqgan(source, cfg.resolution)
        fmt = "taming-vqgan-ckpt"
    check_asked(source, conf, overrides)
    cfg.tokenizer_config = conf
    cfg.codebook_size, cfg.vq_embed_dim, cfg.vq_latent_channels = conf["num_vq_embeddings"], conf["vq_embed_dim"], conf["latent_channels"]
    cfg.validate()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # the untrained transformer: the same file on every import
        state = MaskGIT(cfg).state_dict()
    state.update({"tokenizer." + k: v for k, v in weights.items()})
    side = cfg.resolution // cfg.downsample
    notes = [f"tokenizer: {len(conf['block_out_channels'])} levels {conf['block_out_channels']} (f={cfg.downsample}), codebook {cfg.codebook_size} x {cfg.vq_embed_dim}"
             + (f", {dropped} loss/discriminator tensors dropped" if dropped else ""),
             f"the transformer ({preset}, {side}x{side} tokens) is untrained: zoo train maskgit --set stage=transformer --set tokenizer=THIS_CHECKPOINT"]
    provenance = {"format": fmt, "file": source.name, "dropped_tensors": dropped}
    if source.is_file():
        provenance["sha256"] = file_sha256(source)
    return ImportedCheckpoint(config=cfg, preset=preset, state_dict=state, provenance=provenance, notes=notes)
