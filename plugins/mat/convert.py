"""``zoo import mat PATH``: a published MAT generator -> a ``mat-512`` / ``mat-256`` zoo checkpoint.

Two layouts are read, neither by executing anything from the file:

* a plain state dict of the generator (``.pth`` / ``.pt`` via :func:`zoo.official.load_official`,
  or ``.safetensors``) with the official key names (``mapping.*``, ``synthesis.first_stage.*``,
  ``synthesis.enc.*``, ``synthesis.to_square.*``, ``synthesis.to_style.*``, ``synthesis.dec.*``);
* the original release pickles (``CelebA-HQ_512.pkl``, ``FFHQ_512.pkl``,
  ``Places_512_FullData.pkl``, ...). They are StyleGAN2-ADA snapshots: a dict ``{G, D, G_ema,
  augment_pipe, training_set_kwargs}`` whose networks are ``torch_utils.persistence`` objects
  that pickle their own source code. They are read with :class:`zoo.official.RestrictedUnpickler`
  (every class and function becomes an inert placeholder; tensor storages, which plain
  ``pickle`` stores as nested ``torch.save`` bytes, are rebuilt with ``torch.load(...,
  weights_only=True)``), and the ``G_ema`` parameters and buffers are collected from the
  placeholders' recorded module state.

The import is strict and complete: every tensor of the zoo generator must be in the file with
its shape, and nothing else may be.
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
    "export a plain state dict with the official code instead, e.g. "
    "`python -c \"import pickle, torch; G = pickle.load(open('X.pkl', 'rb'))['G_ema']; torch.save(G.state_dict(), 'G.pth')\"` "
    "inside a MAT checkout (this runs the pickle's code: only for files you trust)"
)


def read_pickle_snapshot(path: Path) -> tuple[dict[str, torch.Tensor], int]:
    """G_ema's tensors from a StyleGAN2-ADA-style snapshot pickle; (tensors, other networks)."""
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
    out: dict[str, torch.Tensor] = {}
    try:
        _flatten(snap["G_ema"], "", out)
    except ZooError as exc:
        raise ZooError(f"{path}: {exc}; {HOW_TO_STATE_DICT}") from None
    return out, sum(1 for k in snap if k != "G_ema" and _module_dict(snap[k]) is not None)


def read_generator(path: Path) -> tuple[dict[str, torch.Tensor], str, int]:
    """(tensors with the official names, format, count of ignored entries)."""
    if path.is_dir():
        raise ZooError(f"{path} is a folder; give the .pkl, .pth, .pt or .safetensors file")
    if not path.is_file():
        raise ZooError(f"{path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".pkl":
        state, ignored = read_pickle_snapshot(path)
        fmt = "stylegan-pkl"
    elif suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            state = load_file(str(path))
        except Exception as exc:
            raise ZooError(f"{path} is not a readable safetensors file ({type(exc).__name__})") from None
        fmt, ignored = "safetensors", 0
    else:
        obj = load_official(path)
        state = tensors_only(obj) if isinstance(obj, dict) else {}
        fmt, ignored = "state-dict", 0
        if isinstance(obj, dict) and len(state) < len(obj):
            ignored = len(obj) - len(state)
    gen = {k: v for k, v in state.items() if k.startswith(PREFIXES)}
    if not gen:
        sample = ", ".join(list(state)[:3]) or "none"
        raise ZooError(f"{path} holds no MAT generator tensors (mapping.*, synthesis.*; found e.g. {sample})")
    return state, fmt, ignored


def infer_preset(state: dict[str, torch.Tensor], path: Path) -> str:
    found = [int(m.group(1)) for k in state if (m := re.match(r"synthesis\.dec\.Dec_(\d+)x\1\.", k))]
    res = max(found, default=0)
    if res not in PUBLISHED:
        raise ZooError(f"{path}: a {res} px generator matches neither mat-512 nor mat-256; pass --preset")
    return PUBLISHED[res]


def import_mat(spec: MethodSpec, source: Path, preset: str | None) -> ImportedCheckpoint:
    path = Path(source)
    state, fmt, ignored = read_generator(path)
    preset = preset or infer_preset(state, path)
    config, preset = resolve_config(spec, preset, {"discriminator": False})
    parts = key_problems(generator_shapes(config), state, extra="unused")
    if parts:
        raise ZooError(f"{path} does not match the mat {preset} generator: " + "; ".join(parts))
    weights = {"generator." + k: (v.to(torch.float32) if v.is_floating_point() else v).contiguous() for k, v in state.items()}
    provenance = {"format": fmt, "file": path.name, "sha256": file_sha256(path), "generator_tensors": len(state), "ignored_entries": ignored}
    return ImportedCheckpoint(config=config, preset=preset, state_dict=weights, provenance=provenance)


def generator_shapes(config) -> dict[str, tuple[int, ...]]:
    """Official key -> shape of the zoo generator (built on the meta device)."""
    from zoo_plugins.mat.model import Generator

    with torch.device("meta"):
        gen = Generator(config)
    return {k: tuple(v.shape) for k, v in gen.state_dict().items()}
