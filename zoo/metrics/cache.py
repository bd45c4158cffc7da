"""Cache of ground-truth (reference) features, so N methods scored on one eval set extract
the reference side once.

Key: the eval set's identity (its manifest hash, or the sha256 of the reference files'
names and bytes), the image resolution, and the extractor (name + weights sha256). Files
are safetensors under ``$ZOO_CACHE_DIR/reference`` (default ``~/.cache/inpaint-zoo``).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Callable

import numpy as np

from zoo.fsutil import atomic_path

CACHE_ENV = "ZOO_CACHE_DIR"


def cache_root() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "inpaint-zoo")


def content_hash(files: list[Path], root: Path) -> str:
    """sha256 over the files' relative names and bytes (for folders without a manifest)."""
    h = hashlib.sha256()
    for f in files:
        h.update(f.relative_to(root).as_posix().encode() + b"\0")
        h.update(f.read_bytes())
    return h.hexdigest()


def reference_features(key: dict, count: int, compute: Callable[[], dict[str, np.ndarray]]) -> tuple[dict[str, np.ndarray], str]:
    """Features for ``key`` from the cache, or ``compute()`` and store them.

    Returns ``(features, "cached" | "computed")``. A cached file with another row count is
    ignored and rewritten.
    """
    from safetensors.numpy import load_file, save_file

    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]
    path = cache_root() / "reference" / f"{digest}.safetensors"
    if path.is_file():
        try:
            feats = load_file(str(path))
            if all(len(v) == count for v in feats.values()):
                return feats, "cached"
        except Exception:  # a damaged cache file is recomputed
            pass
    feats = compute()
    with atomic_path(path) as tmp:
        save_file({k: np.ascontiguousarray(v) for k, v in feats.items()}, str(tmp), metadata={"key": json.dumps(key, sort_keys=True)})
    return feats, "computed"
