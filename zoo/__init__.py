"""inpaint-zoo: a plugin-based model zoo for image inpainting.

Conventions shared by every part of the zoo:

* images are float tensors in [-1, 1], shape (B, 3, H, W);
* masks are float tensors (B, 1, H, W) with **1 = hole (to fill), 0 = known**;
* every output is composited: known pixels of a result equal the input exactly;
* randomness goes through an explicit ``torch.Generator`` or seed.
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
