"""Where a result came from: checkpoint metadata for a method, library and plugin versions,
and a hash that identifies training data. Used by the training engine, the runner and the
report, so it sits below all three."""

from __future__ import annotations

import hashlib
import platform
from pathlib import Path
from typing import Any

import torch

from zoo.checkpoint import CheckpointMeta
from zoo.config import config_to_dict
from zoo.plugins import get_manager


def checkpoint_meta(method: str, config: Any, preset: str, step: int, provenance: dict[str, Any]) -> CheckpointMeta:
    """Metadata of a zoo checkpoint of ``method`` (its plugin and version included)."""
    info = get_manager().plugin_of(method)
    return CheckpointMeta(
        method=method,
        config=config_to_dict(config),
        preset=preset,
        step=step,
        plugin=info.name,
        plugin_version=info.version,
        provenance=provenance,
    )


def versions() -> dict[str, str]:
    """Versions of the zoo, torch, Python and every loaded plugin."""
    from zoo import __version__

    return {
        "zoo": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        **{f"plugin:{p.name}": p.version for p in get_manager().plugins() if p.status == "ok"},
    }


def dataset_manifest(data: str, dataset: Any, resolution: int, seed: int) -> dict[str, Any]:
    """A hash that identifies the training data: for a folder, the sorted relative file
    list with sizes; for a named dataset, its name, seed and resolution."""
    h = hashlib.sha256()
    path = Path(str(data))
    files = getattr(dataset, "files", None)
    if files is not None and path.is_dir():
        root = Path(getattr(dataset, "root", path))
        entries = sorted((Path(f).relative_to(root).as_posix(), Path(f).stat().st_size) for f in files)
        for name, size in entries:
            h.update(f"{name}\t{size}\n".encode())
        return {"kind": "folder", "root": str(path.resolve()), "files": len(entries), "sha256": h.hexdigest()}
    h.update(f"{data}|{seed}|{resolution}".encode())
    return {"kind": "named", "name": str(data), "seed": seed, "resolution": resolution, "sha256": h.hexdigest()}
