"""What the CLI commands do, as plain functions: train, sample a folder, import.

The CLI only parses arguments and prints; notebooks and scripts call these directly.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import torch

from zoo.checkpoint import RAW_PREFIX, check_trained_state, load_state_strict, read_meta, save_checkpoint, with_raw
from zoo.config import apply_overrides, coerce, config_from_dict, config_to_dict, field_types, resolve_config, validate_config
from zoo.data import open_data
from zoo.device import get_device
from zoo.errors import ZooError, choices_error
from zoo.fsutil import still_there, write_text
from zoo.plugins import get_manager
from zoo.provenance import checkpoint_meta, dataset_manifest, versions
from zoo.masks import mask_kind
from zoo.spec import TrainContext
from zoo.train import Interrupted, TrainOptions, budget, options_dict
from zoo.train.init import init_provenance, meta_shapes, shape_problems, training_config
from zoo.train.memory import check_training_sizes
from zoo.train.rundir import clear_run_dir
from zoo.train.state import CHECKPOINTS, PREFIX, resolve_resume, run_dir_of
from zoo.sampling import PROGRESS_DIR, SampleReport, build_model, prepare_sample_dir, read_sample_progress, sample_fingerprint, sample_folder  # noqa: F401  (re-exported: zoo sample's API)

MODEL_FILE = "model.safetensors"


def _is_main_process() -> bool:
    """Rank 0 (or no launcher): only it writes run files."""
    return int(os.environ.get("RANK", "0")) == 0


def _seed_everything(seed: int) -> None:
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _resume_settings(resume: str | Path, method: str) -> tuple[Path, dict[str, Any]]:
    """``--resume`` -> (checkpoint folder, the run.json of its run)."""
    ckpt_dir = resolve_resume(resume)
    run_json = run_dir_of(ckpt_dir) / "run.json"
    if not run_json.is_file():
        raise ZooError(f"--resume {resume}: {run_json} is missing, cannot recover the run's settings")
    info = json.loads(run_json.read_text())
    if info.get("method") != method:
        raise ZooError(f"--resume {resume}: that run trained {info.get('method')!r}, not {method!r}")
    return ckpt_dir, info


def _setting(value: Any) -> str:
    """A run setting for comparison: folders by their resolved path."""
    text = str(value)
    return str(Path(text).resolve()) if text and Path(text).is_dir() else text


def _previous_commands(previous: dict[str, Any] | None) -> list[Any]:
    if not previous:
        return []
    return list(previous.get("commands") or [previous.get("command")])


def train(
    method: str,
    data: str | None,
    preset: str | None = None,
    overrides: dict[str, Any] | None = None,
    steps: int | None = None,
    batch_size: int | None = None,
    seed: int | None = None,
    out_dir: str | Path | None = None,
    options: Any = None,
    masks: str | None = None,
    command: list[str] | None = None,
    overwrite: bool = False,
) -> Path:
    """Train ``method`` and write ``OUT/model.safetensors``; returns its path.

    With ``options.resume`` (a run folder or a checkpoint folder) the run continues from
    that checkpoint with the settings stored in its ``run.json``; ``steps`` may extend it,
    and a DATA, preset, ``--set``, batch size, seed or mask kind that differs from the
    stored one is refused; ``data`` may then be None (the run's). A run that fails before its
    first checkpoint removes the run folder it created. ``overwrite``: an old run in
    ``out_dir`` (:func:`zoo.train.rundir.check_run_dir`, which the CLI calls first) is
    removed whole once everything is checked, just before the new run starts.

    ``options.time_budget_s`` trains until that many wall-clock seconds are spent, whatever
    the step count (giving ``steps`` too is refused); resuming a budgeted run continues with
    what is left of its budget (a ``steps`` given on resume trains by steps instead).
    RUN/run.json's ``budget`` records the budget, the steps reached and the seconds per stage."""
    manager = get_manager()
    spec = manager.method(method)
    if not spec.needs_training:
        raise ZooError(f"method {method!r} has nothing to train; use `zoo sample {method}` without --checkpoint")
    options = options or TrainOptions()
    get_device(getattr(options, "device", None))  # an unknown or missing device: one line now
    if steps is not None and getattr(options, "time_budget_s", None) is not None:
        raise ZooError(budget.BUDGET_WITH_STEPS)
    previous: dict[str, Any] | None = None
    if getattr(options, "resume", None):
        ckpt_dir, previous = _resume_settings(options.resume, method)
        options.resume = str(ckpt_dir)
        out_dir = out_dir or run_dir_of(ckpt_dir)
        config = config_from_dict(spec.config, previous["config"], method)
        preset = previous["preset"]
        data = previous["data"] if data is None else data
        given = {"data": str(data), "batch_size": batch_size, "seed": seed, "masks": masks}
        for key, value in given.items():
            if value is not None and _setting(value) != _setting(previous.get(key)):
                raise ZooError(f"--resume: the run used {key.replace('_', '-')} {previous.get(key)!r}, not {value!r}; drop the flag to keep the run's setting")
        if overrides:
            if config_to_dict(apply_overrides(config, overrides, method)) != config_to_dict(config):
                raise ZooError("--resume: --set would change the run's config; start a new run instead")
        batch_size, seed, mask_name = int(previous["batch_size"]), int(previous["seed"]), previous["masks"]
        if steps is None and getattr(options, "time_budget_s", None) is None and hasattr(options, "time_budget_s"):
            options.time_budget_s = (previous.get("options") or {}).get("time_budget_s")  # what is left of the run's budget
        if hasattr(options, "budget_clock"):  # the budget is counted as before: its spent seconds are in that clock
            had = (previous.get("options") or {}).get("budget_clock") or "wall"
            if options.budget_clock not in (None, had):
                raise ZooError(f"--resume: the run counts its budget in {had} seconds, not {options.budget_clock}; drop --budget-clock to keep the run's clock")
            options.budget_clock = had
        steps = int(steps if steps is not None else previous["steps"])
    elif getattr(options, "init", None):
        if data is None:
            raise ZooError("--data is required with --init: the images to fine-tune on (a folder or a dataset name, see `zoo data list`)")
        config, preset = _init_config(manager, spec, method, options.init, preset, overrides)
        seed = 0 if seed is None else int(seed)
        mask_name = masks or getattr(config, "train_masks", "box")
        steps = int(steps if steps is not None else getattr(config, "steps", 1000))
        batch_size = int(batch_size if batch_size is not None else getattr(config, "batch_size", 8))
    else:
        if data is None:
            raise ZooError("--data is required: a folder of images or a dataset name (see `zoo data list`)")
        config, preset = resolve_config(spec, preset, overrides)
        config = training_config(config)
        seed = 0 if seed is None else int(seed)
        mask_name = masks or getattr(config, "train_masks", "box")
        steps = int(steps if steps is not None else getattr(config, "steps", 1000))
        batch_size = int(batch_size if batch_size is not None else getattr(config, "batch_size", 8))
    out_dir = Path(out_dir or "runs/run")
    resolution = int(getattr(config, "resolution", 64))
    if steps < 1 or batch_size < 1:
        raise ZooError("--steps and --batch-size must be at least 1")
    check_training_sizes(method, steps, batch_size, resolution, options)  # upper limits, the first batch against memory
    # the stored config says how long the run is and with what batch (also after extending it)
    fields = {f.name for f in dataclasses.fields(config)}
    config = dataclasses.replace(config, **{k: v for k, v in (("steps", steps), ("batch_size", batch_size)) if k in fields})
    # training augmentation (the config's crop / flip); validation and evaluation: fixed centre crops
    crop, flip = str(getattr(config, "crop", "center")), bool(getattr(config, "flip", False))
    dataset = open_data(data, resolution=resolution, split="train", seed=seed, crop=crop, flip=flip)
    ctx = TrainContext(
        method=method,
        config=config,
        preset=preset,
        data=dataset,
        masks=mask_kind(mask_name),
        steps=steps,
        batch_size=batch_size,
        seed=seed,
        out_dir=out_dir,
        options=options,
        data_name=str(data),
    )
    if getattr(options, "init", None):
        ctx.init_provenance = init_provenance(options.init)  # type: ignore[attr-defined]
    elif previous and previous.get("init"):  # resuming a fine-tuning run
        ctx.init_provenance = previous["init"]  # type: ignore[attr-defined]
    try:  # a held-out split for validation where the dataset has one (folders: the same images)
        ctx.val_data = open_data(data, resolution=resolution, split="val", seed=seed)  # type: ignore[attr-defined]
    except ZooError:
        pass
    command = command or sys.argv
    created = not ctx.out_dir.exists()
    if overwrite and not getattr(options, "resume", None) and ctx.out_dir.is_dir() and _is_main_process():
        clear_run_dir(ctx.out_dir)  # the old run goes now, checkpoints too: a later --resume cannot mix the two
        created = True
    try:
        return _train_run(manager, ctx, previous, dataset, resolution, mask_name, command)
    except Exception as exc:
        # failed before anything worth keeping: no checkpoint anywhere in the run (stages of a
        # two-stage method keep theirs in RUN/<stage>/), and not a clean stop (which saved one)
        kept = isinstance(exc, Interrupted) or any(ctx.out_dir.rglob(f"{CHECKPOINTS}/{PREFIX}*"))
        if created and _is_main_process() and not kept:
            shutil.rmtree(ctx.out_dir, ignore_errors=True)
        raise


def _train_run(manager: Any, ctx: TrainContext, previous: dict[str, Any] | None, dataset: Any, resolution: int, mask_name: str, command: list[str]) -> Path:
    method, config, preset, data, seed, options = ctx.method, ctx.config, ctx.preset, ctx.data_name, ctx.seed, ctx.options
    steps, batch_size = ctx.steps, ctx.batch_size
    if _is_main_process():
        ctx.out_dir.mkdir(parents=True, exist_ok=True)
        run_info = {
            "method": method,
            "preset": preset,
            "config": config_to_dict(config),
            "data": str(data),
            "dataset_manifest": dataset_manifest(str(data), dataset, resolution, seed),
            "masks": mask_name,
            "steps": steps,
            "batch_size": batch_size,
            "seed": seed,
            "options": options_dict(options) if hasattr(options, "__dataclass_fields__") else getattr(options, "__dict__", {}),
            "command": command,
            "commands": [*_previous_commands(previous), command],
            **({"init": ctx.init_provenance} if getattr(ctx, "init_provenance", None) else {}),  # type: ignore[attr-defined]
            "versions": versions(),
        }
        write_text(ctx.out_dir / "run.json", json.dumps(run_info, indent=2, default=str))
    _seed_everything(seed)  # the model the plugin builds next starts from this seed
    result = manager.call("zoo_train", method, ctx=ctx)
    path = ctx.out_dir / MODEL_FILE
    if _is_main_process():  # the process that holds the whole state (FSDP gathers it there) and saves it
        check_trained_state(method, config, result.state_dict)
        provenance: dict[str, Any] = {"kind": "trained", "data": str(data), "seed": seed}
        if getattr(ctx, "init_provenance", None):
            provenance.update(kind="fine-tuned", init=ctx.init_provenance)  # type: ignore[attr-defined]
        still_there(ctx.out_dir)
        save_checkpoint(path, result.state_dict, checkpoint_meta(method, config, preset, result.step, provenance))
        run_info["budget"] = budget.budget_record(options, result)
        write_text(ctx.out_dir / "run.json", json.dumps(run_info, indent=2, default=str))
    return path


def _init_config(manager: Any, spec: Any, method: str, init: str | Path, preset: str | None, overrides: dict[str, Any] | None) -> tuple[Any, str]:
    """``--init CKPT``: CKPT's config, or ``--preset``'s, with ``--set`` applied; then the
    method's training config (:func:`zoo.train.init.training_config`). A change of the
    weights' shapes is one line naming the tensors."""
    meta = read_meta(init) if Path(init).is_file() else None
    if meta is None:
        raise ZooError(f"--init {init}: checkpoint does not exist (give a zoo .safetensors file: a run's model.safetensors or one made by `zoo import`)")
    if meta.method != method:
        raise ZooError(f"--init {init}: a checkpoint of method {meta.method!r}, not {method!r}")
    if preset is not None:
        config, preset = resolve_config(spec, preset, overrides)
    else:
        config = config_from_dict(spec.config, meta.config, method)
        if overrides:
            config = validate_config(apply_overrides(config, overrides, method), method)
        preset = meta.preset
    config = training_config(config)
    tensors = _file_shapes(init)
    own = meta_shapes(lambda: manager.call("zoo_build_model", method, config=config))
    problem = shape_problems(own, tensors)
    if problem:
        changed = " ".join(f"--set {k}={v}" for k, v in (overrides or {}).items()) or ""
        given = " ".join(x for x in (f"--preset {preset}" if preset != meta.preset else "", changed) if x) or "the config"
        raise ZooError(f"--init {init}: {given} changes the architecture: {problem}; keep the checkpoint's architecture (fine-tuning changes weights, not shapes)")
    return config, preset


def _file_shapes(path: str | Path) -> dict[str, tuple[int, ...]]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:  # the raw training weights have the shapes of these
        return {k: tuple(fh.get_slice(k).get_shape()) for k in fh.keys() if not k.startswith(RAW_PREFIX)}


def import_checkpoint(method: str, source: str | Path, out: str | Path, preset: str | None = None, overrides: dict[str, Any] | None = None, notes: list[str] | None = None,
                      provenance: dict[str, Any] | None = None, overwrite: bool = False) -> Path:
    """Convert an official file with the method's importer and save a zoo checkpoint.

    ``overrides`` (``--set``) reach the importer and are applied to its config; ``notes``
    collects the importer's one-line notes for the CLI to print. ``out`` is never ``source``
    (nor inside a source folder), and an existing ``out`` needs ``overwrite``."""
    from zoo.fsutil import check_output_file

    check_output_file(out, {"OFFICIAL_FILE": source}, overwrite, example="model.safetensors")
    manager = get_manager()
    spec = manager.method(method)
    overrides = dict(overrides or {})
    known = field_types(spec.config)
    for key, value in overrides.items():  # unknown keys and wrong types: one line before the file is read
        if key not in known:
            raise choices_error(f"config key for {method}", key, known)
        coerce(value, known[key], key)
    source = Path(source)
    if not source.exists():
        raise ZooError(f"official checkpoint {source} does not exist")
    imported = manager.call("zoo_import_checkpoint", method, source=source, preset=preset, overrides=overrides)
    if imported is None:
        raise ZooError(f"method {method!r} has no importer for official checkpoints")
    config = validate_config(apply_overrides(imported.config, overrides, method), method) if overrides else imported.config
    model = manager.call("zoo_build_model", method, config=config)
    load_state_strict(model, imported.state_dict, what=f"converted {source}" + (" with --set " + " ".join(f"{k}={v}" for k, v in overrides.items()) if overrides else ""))
    state = with_raw(model.state_dict(), imported.raw, what=f"converted {source}")
    provenance = {"kind": "imported", "source": str(source), **imported.provenance, **(provenance or {})}
    if notes is not None:
        notes.extend(imported.notes)
    return save_checkpoint(out, state, checkpoint_meta(method, config, imported.preset, 0, provenance))
