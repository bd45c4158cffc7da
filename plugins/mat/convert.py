"""``zoo import mat PATH``: published MAT weights -> a ``mat-512`` / ``mat-256`` zoo checkpoint.

Three layouts are read, none by executing anything from the file:

* the original release pickles (``CelebA-HQ_512.pkl``, ``FFHQ_512.pkl``,
  ``Places_512_FullData.pkl``, ...). They are StyleGAN2-ADA snapshots: a dict ``{G, D, G_ema,
  augment_pipe, training_set_kwargs, ...}`` whose networks are ``torch_utils.persistence``
  objects that pickle their own source code. They are read with
  :class:`zoo.official.RestrictedUnpickler` (every class and function becomes an inert
  placeholder, so the stored source is never run; tensor storages, which plain ``pickle``
  stores as nested ``torch.save`` bytes, are rebuilt with ``torch.load(...,
  weights_only=True)``), and the parameters and buffers of ``G_ema``, ``G`` and ``D`` are
  collected from the placeholders' recorded module state;
* a plain state dict of the generator (``.pth`` / ``.pt`` via :func:`zoo.official.load_official`,
  or ``.safetensors``) with the official key names (``mapping.*``, ``synthesis.first_stage.*``,
  ``synthesis.enc.*``, ``synthesis.to_square.*``, ``synthesis.to_style.*``, ``synthesis.dec.*``);
* a folder of such state dicts exported from a snapshot: ``G_ema.pth`` and optionally
  ``G.pth`` and ``D.pth`` (``Dis.*``, ``fc0.*``, ``Dis_stg1.*``, ...).

The checkpoint samples with ``G_ema``; ``D`` becomes ``discriminator.*`` and ``G`` the raw
training weights (``zoo.checkpoint.RAW_PREFIX``), so ``zoo train mat --init`` fine-tunes from
both networks as the official ``--resume`` does. The import is strict and complete: every
tensor of the zoo networks must be in the file with its shape, and nothing else may be.
"""

from __future__ import annotations

import io
import pickle
import re
from pathlib import Path
from typing import Any

import torch

from zoo.checkpoint import key_problems
from zoo.config import resolve_config
from zoo.errors import ZooError
from zoo.fsutil import file_sha256
from zoo.official import Opaque, RestrictedUnpickler, load_official, tensors_only
from zoo.spec import ImportedCheckpoint, MethodSpec

PUBLISHED = {512: "mat-512", 256: "mat-256"}
PREFIXES = ("mapping.", "synthesis.")


def _storage_from_bytes(data: bytes) -> Any:
    """``torch.storage._load_from_bytes`` without code execution: the bytes are a legacy
    ``torch.save`` of one storage, read with the weights-only unpickler."""
    if not isinstance(data, (bytes, bytearray)):
        raise pickle.UnpicklingError("tensor storage without bytes")
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


class _SnapshotUnpickler(RestrictedUnpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("torch.storage", "_load_from_bytes"):
            return _storage_from_bytes
        return super().find_class(module, name)


def _module_dict(obj: Any) -> dict | None:
    """The recorded ``nn.Module.__dict__`` of a placeholder: set by BUILD (plain modules such as
    ``nn.ModuleList``) or passed as ``meta['state']`` to ``_reconstruct_persistent_obj``."""
    if not isinstance(obj, Opaque):
        return None
    state = obj.__dict__.get("_zoo_state")
    if isinstance(state, dict) and "_modules" in state:
        return state
    args = obj.__dict__.get("_zoo_args") or ()
    if args and isinstance(args[0], dict) and isinstance(args[0].get("state"), dict):
        return args[0]["state"]
    return None


def _flatten(obj: Any, prefix: str, out: dict[str, torch.Tensor]) -> None:
    d = _module_dict(obj)
    if d is None:
        raise ZooError(f"cannot read module {prefix.rstrip('.') or 'G_ema'} from the pickle")
    for name, t in (d.get("_parameters") or {}).items():
        if isinstance(t, torch.Tensor):
            out[prefix + name] = t.detach()
    skip = d.get("_non_persistent_buffers_set") or set()
    for name, t in (d.get("_buffers") or {}).items():
        if isinstance(t, torch.Tensor) and name not in skip:
            out[prefix + name] = t.detach()
    for name, child in (d.get("_modules") or {}).items():
        if child is not None:
            _flatten(child, f"{prefix}{name}.", out)


HOW_TO_STATE_DICT = (
    "export plain state dicts with the official code instead, e.g. "
    "`python -c \"import pickle, torch; s = pickle.load(open('X.pkl', 'rb')); [torch.save(s[k].state_dict(), k + '.pth') for k in ('G_ema', 'G', 'D')]\"` "
    "inside a MAT checkout (this runs the pickle's code: only for files you trust), and import the folder of G_ema.pth, G.pth, D.pth"
)

#: The networks of a StyleGAN2-ADA snapshot the zoo keeps: the averaged generator (sampling),
#: the trained generator and the discriminator (fine-tuning). ``augment_pipe`` and the dataset
#: settings are dropped.
NETWORKS = ("G_ema", "G", "D")
SUFFIXES = (".pth", ".pt", ".safetensors")


def read_pickle_snapshot(path: Path) -> tuple[dict[str, dict[str, torch.Tensor]], list[str]]:
    """The tensors of ``G_ema`` and, where present, ``G`` and ``D`` from a StyleGAN2-ADA-style
    snapshot pickle; (networks, names of the other entries, which are dropped)."""
    try:
        with open(path, "rb") as f:
            snap = _SnapshotUnpickler(f).load()
    except ZooError:
        raise
    except Exception as exc:
        raise ZooError(f"{path} could not be read as a MAT snapshot pickle ({type(exc).__name__}); {HOW_TO_STATE_DICT}") from None
    if not isinstance(snap, dict) or "G_ema" not in snap:
        found = ", ".join(map(str, list(snap)[:5])) if isinstance(snap, dict) else type(snap).__name__
        raise ZooError(f"{path} is not a MAT snapshot (no 'G_ema' entry; found {found}); {HOW_TO_STATE_DICT}")
    nets: dict[str, dict[str, torch.Tensor]] = {}
    for name in NETWORKS:
        if name != "G_ema" and _module_dict(snap.get(name)) is None:
            continue  # absent, None, or not a network: the checkpoint is then generator-only (noted)
        out: dict[str, torch.Tensor] = {}
        try:
            _flatten(snap[name], "", out)
        except ZooError as exc:
            raise ZooError(f"{path}: {name}: {exc}; {HOW_TO_STATE_DICT}") from None
        nets[name] = out
    return nets, [str(k) for k in snap if k not in nets]


def read_state_file(path: Path) -> tuple[dict[str, torch.Tensor], int]:
    """A plain state dict (.pth/.pt without executing anything, or .safetensors); (tensors,
    count of non-tensor entries)."""
    if path.suffix.lower() == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path)), 0
        except Exception as exc:
            raise ZooError(f"{path} is not a readable safetensors file ({type(exc).__name__})") from None
    obj = load_official(path)
    state = tensors_only(obj) if isinstance(obj, dict) else {}
    return state, (len(obj) - len(state)) if isinstance(obj, dict) else 0


def read_folder(path: Path) -> dict[str, dict[str, torch.Tensor]]:
    """``G_ema``, ``G`` and ``D`` state dicts exported from a snapshot (``G_ema.pth``,
    ``G.pth``, ``D.pth``; also ``.pt`` / ``.safetensors``): a generator (``G_ema``, or ``G``
    alone) is required, the others are optional."""
    nets: dict[str, dict[str, torch.Tensor]] = {}
    for name in NETWORKS:
        found = [path / (name + s) for s in SUFFIXES if (path / (name + s)).is_file()]
        if len(found) > 1:
            raise ZooError(f"{path} holds {' and '.join(f.name for f in found)}; keep one file per network")
        if found:
            nets[name] = read_state_file(found[0])[0]
    if "G_ema" not in nets and "G" not in nets:
        raise ZooError(f"{path} holds no generator: give a folder with G_ema.pth (and optionally G.pth, D.pth; .pt or .safetensors also work), or the .pkl, .pth, .pt or .safetensors file")
    if "G_ema" not in nets:  # a generator without its average: it is what sampling uses, and nothing is raw
        nets["G_ema"] = nets.pop("G")
    return nets


def read_networks(path: Path) -> tuple[dict[str, dict[str, torch.Tensor]], str, int]:
    """({"G_ema": ..., "G": ..., "D": ...} with the official names, format, count of ignored
    entries); ``G_ema`` is always there, the others where the file(s) hold them."""
    if not path.exists():
        raise ZooError(f"{path} does not exist")
    if path.is_dir():
        nets, fmt, ignored = read_folder(path), "state-dict-folder", 0
    elif path.suffix.lower() == ".pkl":
        nets, others = read_pickle_snapshot(path)
        fmt, ignored = "stylegan-pkl", len(others)
    else:
        state, ignored = read_state_file(path)
        nets, fmt = {"G_ema": state}, ("safetensors" if path.suffix.lower() == ".safetensors" else "state-dict")
    gen = {k: v for k, v in nets["G_ema"].items() if k.startswith(PREFIXES)}
    if not gen:
        sample = ", ".join(list(nets["G_ema"])[:3]) or "none"
        raise ZooError(f"{path} holds no MAT generator tensors (mapping.*, synthesis.*; found e.g. {sample})")
    return nets, fmt, ignored


def read_generator(path: Path) -> tuple[dict[str, torch.Tensor], str, int]:
    """(the generator sampling uses, with the official names; format; count of ignored entries)."""
    nets, fmt, ignored = read_networks(path)
    return nets["G_ema"], fmt, ignored


def infer_preset(state: dict[str, torch.Tensor], path: Path) -> str:
    found = [int(m.group(1)) for k in state if (m := re.match(r"synthesis\.dec\.Dec_(\d+)x\1\.", k))]
    res = max(found, default=0)
    if res not in PUBLISHED:
        raise ZooError(f"{path}: a {res} px generator matches neither mat-512 nor mat-256; pass --preset (and --set for a smaller architecture)")
    return PUBLISHED[res]


def import_mat(spec: MethodSpec, source: Path, preset: str | None, overrides: dict | None = None) -> ImportedCheckpoint:
    """A zoo ``mat`` checkpoint from official weights: ``generator.*`` = ``G_ema``,
    ``discriminator.*`` = ``D`` (when the file has it: the config then has
    ``discriminator=true``), and ``G`` as the raw training weights where it differs from
    ``G_ema`` (``zoo train mat --init`` trains from ``G`` and ``D``, its EMA starts from
    ``G_ema``). ``overrides`` (``--set``) give the architecture of a non-published layout."""
    path = Path(source)
    nets, fmt, ignored = read_networks(path)
    state = nets["G_ema"]
    preset = preset or infer_preset(state, path)
    config, preset = resolve_config(spec, preset, {**(overrides or {}), "discriminator": "D" in nets})
    gen_shapes = generator_shapes(config)
    for name in ("G_ema", "G"):
        if name in nets:
            parts = key_problems(gen_shapes, nets[name], extra="unused")
            if parts:
                raise ZooError(f"{path}: {name} does not match the mat {preset} generator: " + "; ".join(parts))
    if "D" in nets:
        parts = key_problems(discriminator_shapes(config), nets["D"], extra="unused")
        if parts:
            raise ZooError(f"{path}: D does not match the mat {preset} discriminator: " + "; ".join(parts))

    def f32(v: torch.Tensor) -> torch.Tensor:
        return (v.to(torch.float32) if v.is_floating_point() else v).contiguous()

    weights = {"generator." + k: f32(v) for k, v in state.items()}
    weights.update({"discriminator." + k: f32(v) for k, v in nets.get("D", {}).items()})
    raw = {"generator." + k: f32(v) for k, v in nets.get("G", {}).items() if not torch.equal(f32(v), weights["generator." + k])}
    provenance = {"format": fmt, "file": path.name, "sha256": file_sha256(path) if path.is_file() else "", "networks": [n for n in NETWORKS if n in nets],
                  "generator_tensors": len(state), "discriminator_tensors": len(nets.get("D", {})), "raw_generator_tensors": len(raw), "ignored_entries": ignored}
    if path.is_dir():
        provenance["files"] = {p.name: file_sha256(p) for p in sorted(path.iterdir()) if p.is_file() and p.suffix.lower() in SUFFIXES}
    notes = [] if "D" in nets else [f"{path.name} has no discriminator: the checkpoint samples; `zoo train mat --init` fine-tunes it with a freshly initialised one"]
    return ImportedCheckpoint(config=config, preset=preset, state_dict=weights, provenance=provenance, raw=raw, notes=notes)


def generator_shapes(config) -> dict[str, tuple[int, ...]]:
    """Official key -> shape of the zoo generator (built on the meta device)."""
    from zoo_plugins.mat.model import Generator

    with torch.device("meta"):
        gen = Generator(config)
    return {k: tuple(v.shape) for k, v in gen.state_dict().items()}


def discriminator_shapes(config) -> dict[str, tuple[int, ...]]:
    """Official key -> shape of the zoo discriminator (the snapshot's ``D``)."""
    from zoo_plugins.mat.model import Discriminator

    with torch.device("meta"):
        disc = Discriminator(config)
    return {k: tuple(v.shape) for k, v in disc.state_dict().items()}
