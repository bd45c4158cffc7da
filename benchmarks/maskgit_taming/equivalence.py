"""The zoo's taming-transformers VQGAN import against the official code (issue 26, item 6).

Builds taming's own ``VQModel`` (``taming.models.vqgan``: ``Encoder``, ``Decoder``,
``VectorQuantizer2``, ``quant_conv``, ``post_quant_conv``, plus a ``loss`` holding taming's
``NLayerDiscriminator``) with random weights, saves it as a Lightning-style ``.ckpt`` (with a
pickled non-tensor object beside ``state_dict``, as real ones have), imports it with
``zoo import maskgit`` and compares, on the same random images:

* the encoder + ``quant_conv`` output (taming) with ``VQModel.encode(x).latents`` (diffusers);
* taming's code indices (``VectorQuantizer2``) with maskgit's ``encode_tokens``;
* taming's ``decode(quant)`` with maskgit's ``decode_tokens(tokens)``.

The official checkout is fetched outside this repository and never committed::

    git clone https://github.com/CompVis/taming-transformers /tmp/taming-transformers
    python benchmarks/maskgit_taming/equivalence.py --taming /tmp/taming-transformers [--published] \
        [--keys-out tests/fixtures/taming_vqgan_keys.json]

Needs ``einops`` (imported by taming's quantizer). ``pytorch_lightning`` and taming's
``main.py`` are replaced by stand-ins (``LightningModule`` -> ``nn.Module``; the loss by a
module holding the official discriminator), so only taming's networks run. ``--published``
adds the ``vqgan_imagenet_f16_1024`` and ``f16_16384`` architectures at 256 px.
``--keys-out`` writes the key names and shapes of the small official checkpoint (the test
fixture). Results: ``results.json`` beside this file.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import types
from pathlib import Path

import torch
import torch.nn as nn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

#: small: a 2-core CPU in seconds; attention at the 8 px level as f16 has it at 16 px
SMALL = {"embed_dim": 8, "n_embed": 64, "ddconfig": {"double_z": False, "z_channels": 16, "resolution": 32, "in_channels": 3, "out_ch": 3,
                                                     "ch": 32, "ch_mult": [1, 2, 2], "num_res_blocks": 1, "attn_resolutions": [8], "dropout": 0.0}}
F16 = {"double_z": False, "z_channels": 256, "resolution": 256, "in_channels": 3, "out_ch": 3, "ch": 128, "ch_mult": [1, 1, 2, 2, 4],
       "num_res_blocks": 2, "attn_resolutions": [16], "dropout": 0.0}  # configs/imagenet_vqgan.yaml
PUBLISHED = {"vqgan_imagenet_f16_1024": {"embed_dim": 256, "n_embed": 1024, "ddconfig": F16},
             "vqgan_imagenet_f16_16384": {"embed_dim": 256, "n_embed": 16384, "ddconfig": F16}}


class CallbackState:
    """A non-tensor object in the checkpoint (Lightning stores callback state and configs)."""

    def __init__(self) -> None:
        self.best_model_score = 0.5


def load_taming(root: Path):
    sys.path.insert(0, str(root))
    pl = types.ModuleType("pytorch_lightning")
    pl.LightningModule = nn.Module
    sys.modules["pytorch_lightning"] = pl
    from taming.modules.discriminator.model import NLayerDiscriminator

    class Loss(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.discriminator = NLayerDiscriminator(input_nc=3, ndf=16, n_layers=2)

    main = types.ModuleType("main")
    main.instantiate_from_config = lambda config: Loss()
    sys.modules["main"] = main
    from taming.models.vqgan import VQModel

    return VQModel


def randomize(model: nn.Module, gen: torch.Generator) -> None:
    """Random weights everywhere (norms too), codebook on the scale of the latents."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name == "quantize.embedding.weight":
                p.copy_(torch.randn(p.shape, generator=gen))
            elif "norm" in name and name.endswith("weight"):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=gen))
            else:
                p.add_(0.02 * torch.randn(p.shape, generator=gen))


def compare(VQModel, name: str, spec: dict, batch: int, tmp: Path, keys_out: Path | None) -> dict:
    from zoo import runner
    from zoo.checkpoint import load_model

    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)  # the modules' own initialisation, before randomize()
    model = VQModel(ddconfig=spec["ddconfig"], lossconfig={}, n_embed=spec["n_embed"], embed_dim=spec["embed_dim"]).eval()
    randomize(model, gen)
    ckpt = tmp / f"{name}.ckpt"
    sd = model.state_dict()
    torch.save({"state_dict": sd, "global_step": 0, "epoch": 0, "callbacks": {"ModelCheckpoint": CallbackState()}}, ckpt)
    if keys_out:
        head = json.dumps({"ddconfig": spec["ddconfig"], "embed_dim": spec["embed_dim"], "n_embed": spec["n_embed"]})[:-1]
        keys = ",\n".join(json.dumps([k, list(v.shape)]) for k, v in sd.items())
        keys_out.write_text(f'{head}, "keys": [\n{keys}\n]}}\n')
    res = spec["ddconfig"]["resolution"]
    x = torch.rand(batch, 3, res, res, generator=gen) * 2 - 1
    t0 = time.perf_counter()
    with torch.no_grad():
        h = model.quant_conv(model.encoder(x))
        quant, _, (_, _, idx) = model.encode(x)
        rec = model.decode(quant)
    t_official = time.perf_counter() - t0
    out = tmp / f"{name}.safetensors"
    preset = "tiny" if name == "small" else "imagenet-256"
    runner.import_checkpoint("maskgit", ckpt, out, preset, overwrite=True)
    zoo_model, _, _ = load_model(out, "maskgit")
    t0 = time.perf_counter()
    with torch.no_grad():
        latents = zoo_model.tokenizer.encode(x).latents
        tokens = zoo_model.encode_tokens(x)
        zrec = zoo_model.decode_tokens(tokens)
    t_zoo = time.perf_counter() - t0
    idx = idx.view(tokens.shape)
    row = {
        "name": name, "params_M": round(sum(p.numel() for n, p in model.named_parameters() if not n.startswith("loss.")) / 1e6, 2),
        "batch": batch, "resolution": res, "codebook": spec["n_embed"],
        "dropped_loss_tensors": sum(1 for k in sd if k.startswith("loss.")),
        "encode_max_abs": float((latents - h).abs().max()), "encode_scale": float(h.abs().max()),
        "tokens_equal": float((tokens == idx).float().mean()),
        "decode_max_abs": float((zrec - rec).abs().max()), "decode_scale": float(rec.abs().max()),
        "seconds_official": round(t_official, 2), "seconds_zoo": round(t_zoo, 2),
    }
    print(json.dumps(row))
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--taming", type=Path, required=True, help="a CompVis/taming-transformers checkout")
    ap.add_argument("--published", action="store_true", help="also the f16_1024 and f16_16384 architectures at 256 px")
    ap.add_argument("--keys-out", type=Path, default=None, help="write the small checkpoint's key names and shapes here")
    ap.add_argument("--out", type=Path, default=HERE / "results.json")
    ap.add_argument("--rev", default="", help="the checkout's commit, when --taming is not a git work tree")
    args = ap.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    VQModel = load_taming(args.taming.resolve())
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        rows.append(compare(VQModel, "small", SMALL, 4, Path(tmp), args.keys_out))
        if args.published:
            for name, spec in PUBLISHED.items():
                rows.append(compare(VQModel, name, spec, 1, Path(tmp), None))
    import subprocess

    rev = args.rev or subprocess.run(["git", "-C", str(args.taming), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    args.out.write_text(json.dumps({"taming_transformers": rev or "unknown", "torch": torch.__version__, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
