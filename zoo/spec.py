"""Typed objects that cross the plugin boundary.

Plugins return these from their hooks; the core reads them. They are plain dataclasses so a
plugin author can build them without importing anything else from the zoo.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

if TYPE_CHECKING:  # annotations only: the catalog commands import no torch
    import numpy as np
    import torch

#: Method families, as listed in ``registry.yaml``.
FAMILIES = ("gan", "diffusion", "token", "prior", "classical", "regression")


@dataclass(frozen=True)
class MethodSpec:
    """A method a plugin provides (returned from ``zoo_register_methods``).

    ``config`` is a dataclass type whose field defaults are the method's base settings;
    ``presets`` maps a preset name to the field overrides it applies. Every learned method
    has a ``tiny`` preset (seconds on a CPU, used by tests).
    """

    name: str
    summary: str
    family: str
    config: type
    presets: Mapping[str, Mapping[str, Any]]
    paper: str = ""
    license: str = ""
    #: False for methods with nothing to train (classical baselines): they sample without
    #: a checkpoint and ``zoo train`` refuses them.
    needs_training: bool = True
    #: Preset used when the user names none; defaults to the first preset.
    default_preset: str | None = None
    #: Sampling settings a study may tune (``zoo study``): candidate config overrides, each a
    #: mapping of field -> value applied to the trained checkpoint's config (e.g. diffusion
    #: steps, MaskGIT iterations, DIP-DDPM ``t0``). The study tries each on its validation
    #: split and reports the test split with the best one; list the cheapest first (a study
    #: that does not tune, such as ``zoo demo --budget fast``, takes the first). Empty: nothing to tune.
    tunable: tuple[Mapping[str, Any], ...] = ()

    def __post_init__(self) -> None:
        if not dataclasses.is_dataclass(self.config):
            raise TypeError(f"method {self.name!r}: config must be a dataclass type")
        if self.family not in FAMILIES:
            raise ValueError(f"method {self.name!r}: family {self.family!r} not in {FAMILIES}")
        if not self.presets:
            raise ValueError(f"method {self.name!r}: at least one preset is required")

    @property
    def preset_names(self) -> list[str]:
        return list(self.presets)

    @property
    def default(self) -> str:
        return self.default_preset or next(iter(self.presets))


@dataclass(frozen=True)
class MetricSpec:
    """A metric (returned from ``zoo_register_metrics``).

    ``per_image`` metrics have ``fn(pred, gt, mask) -> Tensor (B,)``: one value per image,
    images in [-1, 1], mask 1 = hole. Distribution metrics (FID, KID, ...) have
    ``fn(pred_dir, gt_dir) -> float`` over folders of PNG files, or (``features`` set)
    ``fn(pred_features, gt_features) -> float`` over features the zoo extracts (Inception
    features, cached for the ground truth, or Laplacian-pyramid patches for ``swd``).
    Every metric is also reported per hole-ratio bin.
    """

    name: str
    description: str
    higher_is_better: bool
    fn: Callable[..., Any]
    per_image: bool = True
    #: Distribution metrics only: the feature set ``fn`` receives instead of folders.
    #: ``"inception"``: ``fn(pred, gt) -> float`` with dicts ``{"pool": (N, 2048),
    #: "logits": (N, 1008)}`` of numpy arrays (torch-fidelity's InceptionV3), row i of
    #: ``pred`` paired with row i of ``gt``; ``"inception-logits"``: the same plus the
    #: predictions' logits (the Inception Score); ``"laplacian-patches"`` (and ``-hole``,
    #: centres in the hole): dicts of 7x7 patch descriptors per pyramid level
    #: (:mod:`zoo.metrics.swd`). Empty: ``fn(pred_dir, gt_dir) -> float``.
    features: str = ""
    #: Metrics that read the mask (hole-only metrics) need ``--masks``.
    needs_mask: bool = False
    #: Fewer images than this draws a warning that gives the number (0: no warning).
    min_count: int = 0
    #: Why ``min_count``, shown in that warning.
    min_count_reason: str = ""
    #: Called once before any sampling or scoring (load weights; raise ZooError early when
    #: a file is missing), so a long compare never fails at its last step.
    prepare: Callable[[], Any] | None = None
    #: The values the metric can take, (low, high), None = unbounded; confidence intervals
    #: are clipped to it (a t-interval of few images can otherwise leave it, e.g. SSIM > 1).
    value_range: tuple[float | None, float | None] = (None, None)
    #: Distribution metrics with ``features`` only: ``detail(pred, gt) -> {label: float}``,
    #: figures reported beside the value for the whole set (``swd``: the distance per
    #: pyramid level, whose mean is the value).
    detail: Callable[..., dict[str, float]] | None = None


@dataclass(frozen=True)
class DatasetSpec:
    """A named dataset (returned from ``zoo_register_datasets``).

    ``open(resolution, split, seed)`` returns a ``torch.utils.data.Dataset`` whose items are
    dicts with at least ``"image"``: a float tensor (3, H, W) in [-1, 1].
    """

    name: str
    description: str
    open: Callable[..., torch.utils.data.Dataset]


@dataclass(frozen=True)
class MaskGeneratorSpec:
    """A mask kind (returned from ``zoo_register_mask_generators``).

    ``generate(height, width, rng)`` takes a ``numpy.random.Generator`` and returns a
    float32 array (H, W) with 1 = hole, 0 = known. Same rng state, same mask.
    """

    name: str
    description: str
    generate: Callable[[int, int, np.random.Generator], np.ndarray]


@dataclass
class TrainContext:
    """Everything the ``zoo_train`` hook needs to train one method.

    ``data`` yields dicts with ``"image"`` (3, H, W) in [-1, 1]; ``masks`` is the mask kind
    used to draw training holes. ``options`` holds the training engine's settings
    (precision, accumulation, checkpointing, ...), see :class:`zoo.train.TrainOptions`.
    """

    method: str
    config: Any
    preset: str
    data: torch.utils.data.Dataset
    masks: MaskGeneratorSpec
    steps: int
    batch_size: int
    seed: int
    out_dir: Path
    options: Any = None
    data_name: str = ""


@dataclass
class TrainResult:
    """What ``zoo_train`` returns: the weights of the model ``zoo_build_model`` builds."""

    state_dict: dict[str, torch.Tensor]
    step: int
    metrics: dict[str, float] = field(default_factory=dict)
    #: one record per engine run (stage): {"name", "steps", "seconds", "time_budget_s"};
    #: ``zoo train`` copies them into RUN/run.json. Multi-stage methods concatenate theirs
    stages: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class SampleOutput:
    """What ``zoo_sample`` returns: composited images (B, 3, H, W) in [-1, 1] and notes
    such as the number of network calls (``info["nfe"]``)."""

    images: torch.Tensor
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class ImportedCheckpoint:
    """What ``zoo_import_checkpoint`` returns: a zoo model built from an official file."""

    config: Any
    preset: str
    state_dict: dict[str, torch.Tensor]
    provenance: dict[str, Any] = field(default_factory=dict)
    #: One-line notes the CLI prints (e.g. the architecture read from the file's shapes).
    notes: list[str] = field(default_factory=list)
