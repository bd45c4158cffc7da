"""The core's own defaults, registered as an ordinary plugin named ``zoo``.

Datasets, mask kinds and metrics that ship with the zoo come through the same hooks a
third-party plugin uses.
"""

from __future__ import annotations

from zoo import hookimpl
from zoo.spec import DatasetSpec


def _open_shapes(resolution: int = 64, split: str = "train", seed: int = 0):
    from zoo.data import ShapesDataset

    return ShapesDataset(resolution=resolution, seed=seed, split=split)


@hookimpl
def zoo_register_datasets():
    return [DatasetSpec("shapes", "procedural textures, shapes and lines; no files needed", _open_shapes)]


@hookimpl
def zoo_register_mask_generators():
    from zoo.masks import BUILTIN_KINDS

    return list(BUILTIN_KINDS)


@hookimpl
def zoo_register_metrics():
    from zoo.metrics import BUILTIN_METRICS

    return list(BUILTIN_METRICS)
