"""The core's own defaults, registered as an ordinary plugin named ``zoo``.

Datasets, mask kinds and metrics that ship with the zoo come through the same hooks a
third-party plugin uses. The registration hooks run on every ``zoo list`` and ``zoo plugins``,
so they import no torch or numpy: the specs come from the torch-free catalogs
(:mod:`zoo.masks.catalog`, :mod:`zoo.metrics.catalog`) whose functions import their
implementation when called, and ``shapes`` opens its dataset lazily.
"""

from __future__ import annotations

from zoo import hookimpl
from zoo.spec import DatasetSpec


def _open_shapes(resolution: int = 64, split: str = "train", seed: int = 0, crop: str = "center", flip: bool = False):
    from zoo.data import ShapesDataset

    return ShapesDataset(resolution=resolution, seed=seed, split=split, crop=crop, flip=flip)


@hookimpl
def zoo_register_datasets():
    return [DatasetSpec("shapes", "procedural textures, shapes and lines; no files needed", _open_shapes)]


@hookimpl
def zoo_register_mask_generators():
    from zoo.masks.catalog import BUILTIN_KINDS

    return list(BUILTIN_KINDS)


@hookimpl
def zoo_register_metrics():
    from zoo.metrics.catalog import BUILTIN_METRICS

    return list(BUILTIN_METRICS)
