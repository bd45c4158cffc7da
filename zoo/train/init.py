"""Starting a new run from the weights of a checkpoint: ``zoo train METHOD --init CKPT``.

``--init`` is not ``--resume``. A resumed run continues the same run (its optimizer state,
schedule, step counter, data position and RNG streams). An initialised run is a *new* run:
step 0, fresh optimizers and schedules, the model's weights copied from CKPT, any zoo
checkpoint of the same method (trained by the zoo, or made by ``zoo import``).

What happens, in order:

1. the runner reads CKPT's config and applies ``--preset`` / ``--set``; a change that alters
   the weights' shapes is refused with one line naming the tensors (:func:`shape_problems`);
2. the method's config may turn on what *training* needs and the checkpoint may lack
   (:func:`training_config`: a config dataclass may define ``for_training()``, e.g. LaMa's
   discriminator, which a generator-only import does not have);
3. the engine copies CKPT's tensors into the task's model before anything else touches it
   (before the EMA copy, sharding and the optimizers); model tensors CKPT lacks are passed
   to :meth:`zoo.train.TrainTask.init_missing`, which either initialises them freshly and
   returns the announcement (printed as one ``Note:`` line and logged), or, by default,
   refuses with one line naming them (:func:`load_init`);
   when CKPT also holds raw training weights (``zoo.checkpoint.RAW_PREFIX``: an imported
   StyleGAN-style snapshot's ``G`` beside its ``G_ema``), the model starts from those and the
   engine starts the EMA from the averaged tensors, as the official ``--resume`` does;
4. CKPT's provenance (:func:`init_provenance`: file, sha256, step, and the provenance the
   checkpoint itself carries) is written into ``run.json`` and into every checkpoint's
   ``zoo.provenance`` under ``"init"``.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import torch

from zoo.checkpoint import load_checkpoint, read_meta, split_raw
from zoo.errors import ZooError
from zoo.fsutil import file_sha256


def training_config(config: Any) -> Any:
    """``config.for_training()`` when the config defines it (the config a method trains
    with, e.g. a GAN's discriminator switched on), else ``config`` unchanged."""
    fn = getattr(config, "for_training", None)
    return fn() if callable(fn) else config


@functools.lru_cache(maxsize=8)
def _provenance(path: str, size: int, mtime: float) -> tuple[tuple[str, Any], ...]:
    meta = read_meta(path)
    info = {
        "file": str(Path(path).resolve()),
        "sha256": file_sha256(path),
        "method": meta.method,
        "preset": meta.preset,
        "step": meta.step,
        "source": meta.provenance,
    }
    return tuple(info.items())


def init_provenance(path: str | os.PathLike) -> dict[str, Any]:
    """Where the initial weights came from (hashed once per file per process)."""
    p = Path(path)
    if not p.is_file():
        raise ZooError(f"--init {path}: checkpoint does not exist")
    st = p.stat()
    return dict(_provenance(str(p), st.st_size, st.st_mtime))


def shape_problems(own: dict[str, tuple[int, ...]], tensors: dict[str, tuple[int, ...]]) -> str:
    """What stops ``tensors`` from initialising a model whose state has the shapes ``own``:
    tensors of another shape and tensors the model does not have ("" when none). Tensors
    the model has and the file lacks are the task's business (:meth:`TrainTask.init_missing`)."""
    wrong = sorted(k for k in set(own) & set(tensors) if tuple(own[k]) != tuple(tensors[k]))
    unused = sorted(set(tensors) - set(own))
    parts = []
    if wrong:
        shown = ", ".join(f"{k} {_dims(tensors[k])} -> {_dims(own[k])}" for k in wrong[:3])
        parts.append(f"{len(wrong)} tensor(s) change shape ({shown}{', ...' if len(wrong) > 3 else ''})")
    if unused:
        parts.append(f"{len(unused)} tensor(s) of the checkpoint have no place in the model ({', '.join(unused[:3])}{', ...' if len(unused) > 3 else ''})")
    return "; ".join(parts)


def _dims(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape)) or "scalar"


def meta_shapes(build: Any) -> dict[str, tuple[int, ...]]:
    """Key -> shape of the state of ``build()``, built on the meta device (no memory)."""
    with torch.device("meta"):
        model = build()
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def load_init(task: Any, path: str | os.PathLike, method: str) -> tuple[list[str], dict[str, torch.Tensor]]:
    """Copy CKPT's tensors into ``task.model``; returns the announcements to print and the
    averaged tensors the EMA starts from where the model starts from raw training weights
    (empty when CKPT holds none).

    Shape changes and tensors without a place are one ZooError; model tensors missing from
    the file go to ``task.init_missing(keys, path)``."""
    meta, tensors = load_checkpoint(path, method, raw=True)
    tensors, raw = split_raw(tensors)
    own = task.model.state_dict()
    problem = shape_problems({k: tuple(v.shape) for k, v in own.items()}, {k: tuple(v.shape) for k, v in tensors.items()})
    problem = problem or shape_problems({k: tuple(v.shape) for k, v in tensors.items()}, {k: tuple(v.shape) for k, v in raw.items()})
    if problem:
        raise ZooError(f"--init {path}: the checkpoint does not fit this config: {problem}; drop the --preset/--set that changes the architecture")
    missing = sorted(set(own) - set(tensors))
    notes: list[str] = []
    if missing:
        note = task.init_missing(missing, Path(path))
        if note:
            notes.append(note)
    with torch.no_grad():
        for k, v in {**tensors, **raw}.items():
            own[k].copy_(v.to(own[k].dtype))
    return notes, {k: tensors[k] for k in raw}
