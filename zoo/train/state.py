"""Training-state checkpoints: everything a run needs to continue exactly, without pickle.

A checkpoint is a folder ``RUN/checkpoints/step_0000100/`` holding

=====================  ================================================================
``model.safetensors``  the exported weights (EMA if the task keeps one) with the zoo
                       metadata: ``zoo sample --checkpoint`` takes it as it is
``state.safetensors``  every tensor of the training state (raw weights, optimizer
                       moments, EMA, RNG states) plus, in the metadata key
                       ``zoo.train_state``, the JSON tree of everything else (step, data
                       position, optimizer hyper-parameters, scheduler and loss-scaler
                       state, Python/NumPy RNG, best metric so far)
=====================  ================================================================

The folder is written under a temporary name and renamed in one step, so a crash (even
SIGKILL) leaves either the complete previous checkpoints or also the complete new one,
never a half-written one under a ``step_*`` name.

The state is a nested tree of dicts, lists, tuples, numbers, strings, tensors and NumPy
arrays. :func:`split_tree` moves its tensors into a flat ``{name: tensor}`` dict and
leaves JSON with ``{"__tensor__": name}`` markers; :func:`join_tree` reverses it. Tuples
and dicts with non-string keys (optimizer state is keyed by int) survive the round trip.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from zoo.errors import ZooError, note_os_context
from zoo.fsutil import still_there, usual_mode

STATE_FILE = "state.safetensors"
MODEL_FILE = "model.safetensors"
CHECKPOINTS = "checkpoints"
META_KEY = "zoo.train_state"
PREFIX = "step_"
STAGE_MARKER = "stage.json"  # marks RUN/<stage>/ of a multi-stage method (its run is the parent folder)


# -- tree <-> (JSON, tensors) -------------------------------------------------------------
def split_tree(obj: Any, tensors: dict[str, torch.Tensor], path: str = "s") -> Any:
    """Replace every tensor / ndarray in ``obj`` by a marker and collect it in ``tensors``."""
    if isinstance(obj, torch.Tensor):
        tensors[path] = obj.detach().to("cpu").contiguous().clone()
        return {"__tensor__": path}
    if isinstance(obj, np.ndarray):
        tensors[path] = torch.from_numpy(np.ascontiguousarray(obj).astype(np.int64) if obj.dtype == np.uint32 else np.ascontiguousarray(obj).copy())
        return {"__ndarray__": path, "dtype": str(obj.dtype)}
    if isinstance(obj, dict):
        if all(isinstance(k, str) for k in obj) and not any(k.startswith("__") for k in obj):
            return {k: split_tree(v, tensors, f"{path}/{k}") for k, v in obj.items()}
        items = [[_key(k), split_tree(v, tensors, f"{path}/{k}")] for k, v in obj.items()]
        return {"__items__": items}
    if isinstance(obj, tuple):
        return {"__tuple__": [split_tree(v, tensors, f"{path}/{i}") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [split_tree(v, tensors, f"{path}/{i}") for i, v in enumerate(obj)]
    if isinstance(obj, (np.integer, np.floating, np.bool_)):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise ZooError(f"training state at {path!r} holds a {type(obj).__name__}, which cannot be saved without pickle")


def _key(k: Any) -> Any:
    if isinstance(k, (bool, int, float, str)) or k is None:
        return k
    raise ZooError(f"training state has a dict key of type {type(k).__name__}")


def join_tree(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of :func:`split_tree`."""
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__ndarray__" in obj:
            return tensors[obj["__ndarray__"]].numpy().astype(obj["dtype"])
        if "__tuple__" in obj:
            return tuple(join_tree(v, tensors) for v in obj["__tuple__"])
        if "__items__" in obj:
            return {k: join_tree(v, tensors) for k, v in obj["__items__"]}
        return {k: join_tree(v, tensors) for k, v in obj.items()}
    if isinstance(obj, list):
        return [join_tree(v, tensors) for v in obj]
    return obj


# -- files ----------------------------------------------------------------------------------
def checkpoint_name(step: int) -> str:
    return f"{PREFIX}{step:07d}"


def write_checkpoint(run_dir: Path, step: int, state: dict[str, Any], export: dict[str, torch.Tensor], export_meta: dict[str, str]) -> Path:
    """Write ``run_dir/checkpoints/step_N`` atomically (temp folder + rename); returns it."""
    still_there(run_dir)
    root = Path(run_dir) / CHECKPOINTS
    root.mkdir(parents=True, exist_ok=True)
    final = root / checkpoint_name(step)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{checkpoint_name(step)}-", dir=root))
    try:
        tensors: dict[str, torch.Tensor] = {}
        tree = split_tree(state, tensors)
        save_file(tensors, str(tmp / STATE_FILE), metadata={META_KEY: json.dumps(tree)})
        save_file({k: v.detach().cpu().contiguous().clone() for k, v in export.items()}, str(tmp / MODEL_FILE), metadata=export_meta)
        for name in (STATE_FILE, MODEL_FILE):
            usual_mode(tmp / name)  # mkdtemp and safetensors make 0700 / 0600
            with open(tmp / name, "rb") as fh:
                os.fsync(fh.fileno())
        usual_mode(tmp)
        old = None
        if final.exists():  # same step written again: move the old one aside, swap, then delete
            old = final.with_name(f".tmp-old-{final.name}")
            os.rename(final, old)
        os.rename(tmp, final)
        _fsync_dir(root)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except Exception as exc:  # a full disk names no file: say which checkpoint
        note_os_context(exc, "write the checkpoint", final)
        raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def read_state(ckpt_dir: Path) -> dict[str, Any]:
    """The training-state tree of a checkpoint folder."""
    path = Path(ckpt_dir) / STATE_FILE
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    except Exception as exc:
        raise ZooError(f"{path} is not a readable training state ({type(exc).__name__}: {str(exc)[:120]})") from None
    if META_KEY not in meta:
        raise ZooError(f"{path} has no {META_KEY} metadata; it was not written by `zoo train`")
    return join_tree(json.loads(meta[META_KEY]), tensors)


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoint folders of a run, oldest first (temporary folders are ignored)."""
    root = Path(run_dir) / CHECKPOINTS
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and p.name.startswith(PREFIX) and (p / STATE_FILE).is_file()]
    return sorted(found, key=lambda p: p.name)


def run_checkpoints(run_dir: Path) -> list[Path]:
    """The checkpoints a resume of ``run_dir`` chooses from: its own, or for a multi-stage
    run those of its last stage that has any (``RUN/<stage>/checkpoints``); oldest first."""
    ckpts = list_checkpoints(run_dir)
    for stage in reversed(stage_dirs(run_dir) if not ckpts else []):
        ckpts = list_checkpoints(stage)
        if ckpts:
            break
    return ckpts


def clean_temporaries(run_dir: Path) -> int:
    """Remove half-written ``.tmp-*`` folders a killed run left behind; returns how many."""
    root = Path(run_dir) / CHECKPOINTS
    if not root.is_dir():
        return 0
    stale = [p for p in root.iterdir() if p.name.startswith(".tmp-")]
    for p in stale:
        shutil.rmtree(p, ignore_errors=True)
    return len(stale)


def prune(run_dir: Path, keep_last: int) -> list[Path]:
    """Delete all but the newest ``keep_last`` checkpoints (0 keeps all); returns the removed."""
    if keep_last <= 0:
        return []
    ckpts = list_checkpoints(run_dir)
    removed = ckpts[: max(0, len(ckpts) - keep_last)]
    for p in removed:  # rename first (atomic), so a kill mid-delete leaves no half checkpoint
        doomed = p.with_name(f".tmp-del-{p.name}")
        os.rename(p, doomed)
        shutil.rmtree(doomed, ignore_errors=True)
    return removed


def resolve_resume(path: str | Path) -> Path:
    """``--resume`` takes a run folder (its newest checkpoint) or one checkpoint folder.

    A run of a multi-stage method keeps each stage's checkpoints in ``RUN/<stage>/`` (a
    folder marked by a ``stage.json`` with its ``index``); ``--resume RUN`` then takes the
    newest checkpoint of the last stage that has one."""
    path = Path(path)
    if (path / STATE_FILE).is_file():
        return path
    if path.is_dir():
        ckpts = run_checkpoints(path)
        if ckpts:
            return ckpts[-1]
        raise ZooError(f"--resume {path}: no complete checkpoint under {path / CHECKPOINTS} (runs write them with --save-every N)")
    raise ZooError(f"--resume {path}: neither a run folder nor a checkpoint folder")


def stage_dirs(run_dir: Path) -> list[Path]:
    """The stage folders ``RUN/<stage>/`` of a multi-stage run, in stage order."""

    def index(p: Path) -> int:
        try:
            return int(json.loads((p / STAGE_MARKER).read_text()).get("index", 0))
        except (OSError, ValueError, AttributeError):
            return 0

    found = [p for p in Path(run_dir).iterdir() if (p / STAGE_MARKER).is_file()] if Path(run_dir).is_dir() else []
    return sorted(found, key=lambda p: (index(p), p.name))


def run_dir_of(ckpt_dir: Path) -> Path:
    """``RUN/checkpoints/step_N`` -> ``RUN``; ``RUN/<stage>/checkpoints/step_N`` -> ``RUN``."""
    ckpt_dir = Path(ckpt_dir)
    run = ckpt_dir.parent.parent if ckpt_dir.parent.name == CHECKPOINTS else ckpt_dir
    return run.parent if (run / STAGE_MARKER).is_file() else run


# -- RNG --------------------------------------------------------------------------------------
def rng_state() -> dict[str, Any]:
    """Every global RNG the training step may touch (torch CPU/CUDA, Python, NumPy)."""
    import random

    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": np.random.get_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    import random

    torch.set_rng_state(state["torch"].to(torch.uint8))
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    if "cuda" in state and torch.cuda.is_available():
        cuda = list(state["cuda"])
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all([t.to(torch.uint8) for t in cuda])
