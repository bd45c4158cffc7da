"""inpaint-zoo: a plugin-based model zoo for image inpainting.

Conventions shared by every part of the zoo:

* images are float tensors in [-1, 1], shape (B, 3, H, W);
* masks are float tensors (B, 1, H, W) with **1 = hole (to fill), 0 = known**;
* every output is composited: known pixels of a result equal the input exactly;
* a method never sees hole pixels: the core erases them before ``zoo_sample`` (:mod:`zoo.inpaint`);
* randomness goes through an explicit ``torch.Generator`` or seed.

Layering (imports only point down or sideways, never up, with no loops; tests/test_layering.py
checks it): typed objects and helpers (errors, spec, config, fsutil, imageio, device, official,
download, progress, hookspecs) at the bottom; then the plugin manager and registry, which find every plugin,
the core's own :mod:`zoo.builtins` included, through entry points; then the building blocks
that look names up through it (data, masks, metrics, diffusion, layers); then checkpoints,
provenance, the sample contract (:mod:`zoo.inpaint`) and the core plugin; then the training
engine (:mod:`zoo.train`); and on top the runner, the folder sampler (:mod:`zoo.sampling`), compare, report, fetch, bench,
study (with its report), demo, shard (``--devices N`` sampling), the contract kit, the scaffold, the launched worker and
``zoo serve``'s web app (:mod:`zoo.serve`) that drive everything. The CLI (``zoo_cli``) and the plugins (``zoo_plugins``) import ``zoo``;
``zoo`` imports neither, and plugins never import each other.
"""

__version__ = "0.1.0"

import pluggy

#: Marker for plugin hook implementations: ``from zoo import hookimpl``.
hookimpl = pluggy.HookimplMarker("zoo")

from zoo.errors import ZooError  # noqa: E402
from zoo.spec import (  # noqa: E402
    DatasetSpec,
    ImportedCheckpoint,
    MaskGeneratorSpec,
    MethodSpec,
    MetricSpec,
    SampleOutput,
    TrainContext,
    TrainResult,
)

__all__ = [
    "__version__",
    "hookimpl",
    "ZooError",
    "MethodSpec",
    "MetricSpec",
    "DatasetSpec",
    "MaskGeneratorSpec",
    "ImportedCheckpoint",
    "SampleOutput",
    "TrainContext",
    "TrainResult",
]
