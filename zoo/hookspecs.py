"""The plugin contract: every hook a plugin may implement.

A plugin is a module (or object) with functions decorated by ``@zoo.hookimpl`` whose names
match the specs below; it is found through the ``zoo.plugins`` entry-point group. A plugin
implements only the hooks it needs.

Method hooks (``zoo_build_model``, ``zoo_train``, ``zoo_sample``, ``zoo_score``,
``zoo_import_checkpoint``) receive the method name first. The core calls them **only on
the plugin that registered the method** (through ``zoo_register_methods``), so an
implementation never sees another plugin's methods and needs no ``if method != NAME:
return None`` guard (a guard kept from older plugins is harmless). What they return is
checked: the wrong type is a one-line error naming the plugin and the hook.

Registration hooks (``zoo_register_*``) are called on every plugin and their lists are
collected; a name (method, metric, dataset, mask kind) another plugin registered first is
refused for the later plugin with a warning, and a plugin whose registration fails
contributes nothing. An ``@hookimpl`` whose name is not a hook below, or whose arguments
are not the hook's, marks its plugin broken (``zoo plugins`` says why).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

from zoo.spec import (
    DatasetSpec,
    ImportedCheckpoint,
    MaskGeneratorSpec,
    MethodSpec,
    MetricSpec,
    SampleOutput,
    TrainContext,
    TrainResult,
)

if TYPE_CHECKING:  # annotations only: the catalog commands import no torch
    import click
    import torch

hookspec = pluggy.HookspecMarker("zoo")


# --------------------------------------------------------------------------------------
# Registration
# --------------------------------------------------------------------------------------
@hookspec
def zoo_register_methods() -> list[MethodSpec]:
    """Declare the methods this plugin provides.

    Receives nothing. Returns a list of :class:`zoo.MethodSpec` (name, one-line summary,
    family, config dataclass with named presets, paper, license). Every plugin's list is
    collected; two plugins declaring the same name is an error reported by ``zoo plugins``.
    """


@hookspec
def zoo_register_metrics() -> list[MetricSpec]:
    """Declare extra metrics.

    Receives nothing. Returns a list of :class:`zoo.MetricSpec`; all lists are collected
    and the metrics become valid names for ``zoo score --metric`` and ``zoo compare``.
    """


@hookspec
def zoo_register_datasets() -> list[DatasetSpec]:
    """Declare named datasets.

    Receives nothing. Returns a list of :class:`zoo.DatasetSpec`; all lists are collected
    and each name becomes valid wherever a DATA argument is taken (``--data NAME``).
    """


@hookspec
def zoo_register_mask_generators() -> list[MaskGeneratorSpec]:
    """Declare mask kinds.

    Receives nothing. Returns a list of :class:`zoo.MaskGeneratorSpec`; all lists are
    collected and each name becomes valid for ``--masks KIND`` and ``zoo masks generate``.
    """


@hookspec
def zoo_register_commands(cli: click.Group) -> None:
    """Add commands to the ``zoo`` CLI.

    Receives the root click group; call ``cli.add_command(...)`` on it. Returns nothing.
    Called on every plugin when the CLI first looks a command up (not for
    ``zoo --version``).
    """


# --------------------------------------------------------------------------------------
# Method hooks: called only on the plugin that registered the method
# --------------------------------------------------------------------------------------
@hookspec(firstresult=True)
def zoo_build_model(method: str, config: Any) -> torch.nn.Module | None:
    """Build the model of ``method`` from its resolved config dataclass.

    Receives the method name and a config instance. Returns the ``torch.nn.Module`` whose
    ``state_dict()`` a checkpoint holds and which ``zoo_sample`` receives (random weights;
    the core loads the checkpoint into it). Methods with nothing to train may return a
    module without parameters. Called only on the plugin that registered ``method``.
    """


@hookspec(firstresult=True)
def zoo_train(method: str, ctx: TrainContext) -> TrainResult | None:
    """Train ``method``.

    Receives the method name and a :class:`zoo.TrainContext` (resolved config, dataset,
    mask kind, steps, global batch size, seed, run folder, engine options). Two-stage
    methods run both stages here. Returns a :class:`zoo.TrainResult` whose ``state_dict``
    loads into ``zoo_build_model(method, ctx.config)``; the core writes it as the run's
    final checkpoint (the core checks that its tensors match that model before it reports
    the run done). Called only on the plugin that registered ``method``.
    """


@hookspec(firstresult=True)
def zoo_sample(
    method: str,
    model: torch.nn.Module,
    config: Any,
    images: torch.Tensor,
    masks: torch.Tensor,
    generator: torch.Generator,
) -> SampleOutput | None:
    """Inpaint a batch.

    Receives the method name, the model from ``zoo_build_model`` with its weights loaded
    (in eval mode, on the device of ``images``), the resolved config, ``images`` (B, 3, H,
    W) in [-1, 1] **whose hole pixels the core has erased** (set to
    :data:`zoo.inpaint.HOLE_VALUE`, 0: a method never sees the ground truth of the hole, so
    changing it changes nothing in the output), ``masks`` (B, 1, H, W) with 1 = hole, and a
    ``torch.Generator`` that is the only source of randomness. Returns a :class:`zoo.SampleOutput` whose images are
    composited (known pixels equal the input exactly) and whose ``info`` may carry notes
    such as ``nfe`` (network calls per image); ``images`` must have the input's shape.
    Called only on the plugin that registered ``method``.
    """


@hookspec(firstresult=True)
def zoo_score(
    method: str,
    model: torch.nn.Module,
    config: Any,
    images: torch.Tensor,
    masks: torch.Tensor,
    outputs: torch.Tensor,
) -> dict[str, float] | None:
    """Add method-specific numbers to the shared metrics.

    Receives the method name, the loaded model, its config, ground-truth ``images``,
    ``masks`` (1 = hole) and the method's composited ``outputs`` for the same batch (all
    (B, C, H, W), images in [-1, 1]). ``images`` are the *target* of a score (for example a
    prior's likelihood of the true hole); a score that runs the model as an inpainter must
    give it ``zoo.inpaint.erase_holes(images, masks)``, as ``zoo_sample`` gets. Returns a dict of named floats (for example a
    diffusion model's denoising loss on the hole), reported next to the shared metrics as
    ``METHOD/NAME``; ``None`` when it adds nothing. NaN or infinite values are reported
    as missing with a warning. Called only on the plugin that registered ``method``.
    """


@hookspec(firstresult=True)
def zoo_import_checkpoint(method: str, source: Path, preset: str | None, overrides: dict[str, Any]) -> ImportedCheckpoint | None:
    """Convert an official checkpoint file (or folder) into a zoo model.

    Receives the method name, the path the user gave to ``zoo import``, the preset the
    user asked for (``None`` to let the importer pick it from the file), and the
    ``--set key=value`` overrides (raw strings; their keys are checked against the method's
    config first) for what the file cannot tell (e.g. attention heads); an importer may
    leave ``overrides`` out of its signature, and the core applies them to the returned
    config either way (a change of the weights' shapes is then refused). Returns an
    :class:`zoo.ImportedCheckpoint` (config, preset, state dict for ``zoo_build_model``,
    provenance) that the core saves as a zoo checkpoint; ``None`` when the method is not
    this plugin's. Official files must be read without executing code (see
    :func:`zoo.official.load_official`). Raise :class:`zoo.ZooError` for a file of another
    layout. Called only on the plugin that registered ``method``.
    """
