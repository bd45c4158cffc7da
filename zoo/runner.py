"""What the CLI commands do, as plain functions: train, sample a folder, import.

The CLI only parses arguments and prints; notebooks and scripts call these directly.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from zoo.checkpoint import RAW_PREFIX, check_trained_state, load_model, load_state_strict, read_meta, save_checkpoint, with_raw
from zoo.config import apply_overrides, coerce, config_from_dict, config_to_dict, field_types, resolve_config, validate_config
from zoo.data import open_data
from zoo.device import get_device
from zoo.errors import ZooError, choices_error
from zoo.fsutil import check_apart, check_output_dir, removed_on_failure, write_text
from zoo.imageio import load_image, load_mask, pair_images_and_masks, readable_size, save_image
from zoo.inpaint import image_names_of_batch, inpaint, sample_seed
from zoo.plugins import get_manager
from zoo.provenance import checkpoint_meta, dataset_manifest, versions
from zoo.masks import mask_kind
from zoo.spec import TrainContext
from zoo.train import Interrupted, TrainOptions, options_dict
from zoo.train.init import init_provenance, meta_shapes, shape_problems, training_config
from zoo.train.launch import RESULTS, SPEC_FILE
from zoo.train.memory import check_training_sizes
from zoo.train.state import CHECKPOINTS, PREFIX, resolve_resume, run_dir_of

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


RUN_FILE = "run.json"


def check_run_dir(out_dir: str | Path, data: str | None, init: str | None = None, overwrite: bool = False, existing: bool = True) -> Path:
    """``zoo train --out``: never a file, never the training data or an ``--init`` checkpoint
    (nor inside or around them: sample grids would become training data); an existing
    folder that is not empty must hold a zoo run (``run.json``) and needs ``overwrite``
    (then :func:`train` removes that run whole, checkpoints too) -- continuing it is
    ``--resume``. ``existing=False`` skips the last rule (processes other than 0 of a
    launcher, which may find process 0's files)."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ZooError(f"--out {out}: an existing file, not a folder; give a folder path for the run")
    data_dir = data if data and Path(str(data)).is_dir() else None
    check_apart(out, {"--data": data_dir, "--init": init}, "--out")
    if not existing or not out.is_dir() or not [c for c in out.iterdir() if c.name not in (SPEC_FILE, RESULTS)]:
        return out  # new, empty, or only the launch files of a --devices run that never started
    if not (out / RUN_FILE).is_file():
        raise ZooError(f"--out {out} exists and holds files that are not a zoo run's (no {RUN_FILE}); choose a new folder")
    if not overwrite:
        raise ZooError(f"--out {out} holds a run already; continue it with --resume {out}, or pass --overwrite to replace it (its checkpoints too)")
    return out


def clear_run_dir(out_dir: Path) -> None:
    """Remove everything of an old run in ``out_dir`` (``--overwrite``), except what the
    launcher of this run wrote there (``launch.json``, ``.launch/``)."""
    for child in out_dir.iterdir():
        if child.name in (SPEC_FILE, RESULTS):
            continue
        shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()


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
    first checkpoint removes the run folder it created. ``overwrite``: an old run in ``out_dir``
    (see :func:`check_run_dir`, which the CLI calls first) is removed whole once everything
    is checked, just before the new run starts.

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
        raise ZooError(BUDGET_WITH_STEPS)
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
    dataset = open_data(data, resolution=resolution, split="train", seed=seed)
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
        save_checkpoint(path, result.state_dict, checkpoint_meta(method, config, preset, result.step, provenance))
        run_info["budget"] = budget_record(options, result)
        write_text(ctx.out_dir / "run.json", json.dumps(run_info, indent=2, default=str))
    return path


BUDGET_WITH_STEPS = ("--time-budget and --steps both given: a budgeted run trains until its time is spent, whatever the step count; "
                     "give --time-budget alone (or --steps alone for a fixed length)")


def budget_record(options: Any, result: Any) -> dict[str, Any]:
    """RUN/run.json's ``budget``: the wall-clock budget (None: trained by steps), the steps
    reached and the seconds spent, in all and per stage (each stage's seconds include the
    earlier runs of a resumed stage)."""
    stages = list(getattr(result, "stages", None) or [])
    return {
        "time_budget_s": getattr(options, "time_budget_s", None),
        "steps_reached": int(result.step),
        "seconds": round(sum(float(s.get("seconds") or 0.0) for s in stages), 3),
        "stages": stages,
    }


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


def build_model(method: str, checkpoint: str | Path | None, overrides: dict[str, Any] | None = None, preset: str | None = None):
    """Model + config for sampling: from a checkpoint, or (methods with nothing to train)
    from the preset."""
    manager = get_manager()
    spec = manager.method(method)
    if checkpoint is not None:
        model, config, _ = load_model(checkpoint, method, overrides)
        return model, config
    if spec.needs_training:
        raise ZooError(f"method {method!r} needs --checkpoint (train one with `zoo train {method}` or convert one with `zoo import`)")
    config, _ = resolve_config(spec, preset, overrides)
    model = manager.call("zoo_build_model", method, config=config)
    return model.eval(), config


@dataclass
class SampleReport:
    count: int
    out_dir: Path
    info: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # one-line notes for the user
    resumed: int = 0  # of ``count``, images an interrupted run had already written


PROGRESS_DIR = ".zoo-progress"  # in --out while a `zoo sample` run is unfinished (removed when it completes)


def sample_fingerprint(method: str, checkpoint: str | Path | None, pairs: list[tuple[Path, Path]], images: str | Path, masks: str | Path,
                       seed: int, num_samples: int, overrides: dict[str, Any] | None, batch_size: int, mask_convention: str) -> dict[str, Any]:
    """What makes a `zoo sample` call's files: the same fingerprint gives the same bytes, so an
    unfinished run with it can be resumed (inputs by relative name, size and mtime)."""
    import hashlib

    from zoo.fsutil import file_sha256

    h = hashlib.sha256()
    for img, msk in pairs:
        for path, root in ((img, Path(images)), (msk, Path(masks))):
            st = path.stat()
            h.update(f"{path.relative_to(root).as_posix()}|{st.st_size}|{st.st_mtime_ns};".encode())
    return {"method": method, "checkpoint": str(checkpoint) if checkpoint else None,
            "checkpoint_sha256": file_sha256(checkpoint) if checkpoint else None, "overrides": dict(sorted((overrides or {}).items())),
            "seed": seed, "num_samples": num_samples, "batch_size": batch_size, "mask_convention": mask_convention, "inputs": h.hexdigest()}


_FINGERPRINT_NAMES = {"checkpoint": "--checkpoint", "checkpoint_sha256": "--checkpoint", "overrides": "--set", "seed": "--seed",
                      "num_samples": "--num-samples", "batch_size": "--batch-size", "mask_convention": "--mask-convention",
                      "inputs": "the --images / --masks files"}


def read_sample_progress(out_dir: Path) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """(fingerprint, finished batches ``"k:start" -> info``) of an unfinished run in ``out_dir``;
    (None, {}) when there is none. Merges ``done.json`` and every process's ``rankR.json``."""
    folder = Path(out_dir) / PROGRESS_DIR
    fp, done = None, {}
    for path in [folder / "done.json", *sorted(folder.glob("rank*.json"))]:
        try:
            state = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if fp is None:
            fp = state.get("fingerprint")
        if state.get("fingerprint") == fp:
            done.update(state.get("done", {}))
    return fp, done


def prepare_sample_dir(out_dir: str | Path, images: str | Path, masks: str | Path, fingerprint: dict[str, Any], overwrite: bool) -> tuple[Path, dict[str, Any]]:
    """Check ``--out`` for a call with ``fingerprint``; returns (folder, batches already finished).

    A folder holding an unfinished run with the same fingerprint is resumed (no ``--overwrite``
    needed); one with other settings needs ``--overwrite`` (then its progress is dropped). The
    progress of earlier processes is merged into ``done.json``, so any number of processes can
    resume it."""
    out = Path(out_dir)
    old, done = read_sample_progress(out) if out.is_dir() else (None, {})
    same = old == fingerprint
    if old is not None and not same and not overwrite:
        changed = ", ".join(dict.fromkeys(_FINGERPRINT_NAMES.get(k, k) for k in fingerprint if old.get(k) != fingerprint[k])) or "the settings"
        raise ZooError(f"--out {out} holds an unfinished zoo sample run with other settings ({changed} differ); run that command again "
                       "to resume it, or pass --overwrite to start this one")
    out = check_output_dir(out, {"--images": images, "--masks": masks}, overwrite or same)
    folder = out / PROGRESS_DIR
    if not same:
        shutil.rmtree(folder, ignore_errors=True)
        return out, {}
    write_text(folder / "done.json", json.dumps({"fingerprint": fingerprint, "done": done}))
    for part in folder.glob("rank*.json"):
        part.unlink()
    return out, done


def sample_folder(
    method: str,
    checkpoint: str | Path | None,
    images: str | Path,
    masks: str | Path,
    out_dir: str | Path,
    seed: int = 0,
    num_samples: int = 1,
    overrides: dict[str, Any] | None = None,
    batch_size: int = 8,
    mask_convention: str = "hole-white",
    device: str | None = None,
    progress: bool = True,
    overwrite: bool = False,
    rank: int = 0,
    world_size: int = 1,
    done: dict[str, Any] | None = None,
) -> SampleReport:
    """Inpaint every image of a folder with the mask of the same name; write PNGs.

    ``out_dir`` may not be, contain or lie inside ``images`` or ``masks``; an existing
    non-empty ``out_dir`` needs ``overwrite`` (then only the files this call writes are
    replaced), unless it holds an unfinished run of the same call, which is resumed: the
    batches it finished (``OUT/.zoo-progress/``, written after every batch) are not sampled
    again. Everything is checked before the first file is written; a call that fails before
    finishing a batch removes what it wrote, one that fails later keeps its finished images
    for the rerun. ``rank`` / ``world_size``: this process writes only the batches whose
    index is ``rank`` modulo ``world_size`` (:mod:`zoo.shard`, which checks the folder once
    and passes ``done``; seeds depend on the image's position only, so the files equal a
    one-process run's)."""
    if num_samples < 1:
        raise ZooError("--num-samples must be at least 1")
    if batch_size < 1:
        raise ZooError("--batch-size must be at least 1")
    if not 0 <= rank < world_size:
        raise ZooError(f"rank {rank} is not in 0 ... {world_size - 1}")
    model, config = build_model(method, checkpoint, overrides)
    pairs = pair_images_and_masks(images, masks)
    for img_path, mask_path in pairs:  # every file decodes and fits its mask before the first image is written
        isz, msz = readable_size(img_path, "image"), readable_size(mask_path, "mask")
        if isz != msz:
            raise ZooError(f"mask {mask_path} is {msz[0]}x{msz[1]} but image {img_path} is {isz[0]}x{isz[1]}")
    fingerprint = sample_fingerprint(method, checkpoint, pairs, images, masks, seed, num_samples, overrides, batch_size, mask_convention)
    alone = done is None  # one process on its own: it checks the folder and finishes the run
    if alone:
        out_dir, done = prepare_sample_dir(out_dir, images, masks, fingerprint, overwrite)
    out_dir = Path(out_dir)
    dev = get_device(device)
    model.to(dev)
    images_root = Path(images)
    info_total: dict[str, Any] = {}
    notes: list[str] = []
    starts = [s for i, s in enumerate(range(0, len(pairs), batch_size)) if i % world_size == rank]
    count = sum(len(pairs[s : s + batch_size]) for s in starts) * num_samples
    names = [img.relative_to(images_root).with_suffix("").as_posix() for img, _ in pairs]

    def out_path(k: int, i: int) -> Path:
        return out_dir / f"{names[i]}{f'_s{k}' if num_samples > 1 else ''}.png"

    mine: dict[str, Any] = {}
    progress_file = out_dir / PROGRESS_DIR / f"rank{rank}.json"
    already = 0
    keep = lambda: bool(done) or bool(mine)  # noqa: E731 - finished batches stay for the rerun
    with removed_on_failure(out_dir, keep=lambda: world_size > 1 or keep()), \
            tqdm(total=count, desc=f"sample {method}", disable=not progress, dynamic_ncols=True) as bar:
        out_dir.mkdir(parents=True, exist_ok=True)
        for k in range(num_samples):
            for start in starts:
                chunk = list(range(start, min(start + batch_size, len(pairs))))
                key = f"{k}:{start}"
                if key in done and all(out_path(k, i).is_file() for i in chunk):
                    info_total.update(done[key])
                    already += len(chunk)
                    bar.update(len(chunk))
                    continue
                imgs, msks = [], []
                for i in chunk:
                    img_path, mask_path = pairs[i]
                    img = load_image(img_path)
                    mask = load_mask(mask_path, mask_convention)
                    if mask.shape[1:] != img.shape[1:]:
                        raise ZooError(f"mask {mask_path} is {mask.shape[2]}x{mask.shape[1]} but image {img_path} is {img.shape[2]}x{img.shape[1]}")
                    imgs.append(img)
                    msks.append(mask)
                batch_info: dict[str, Any] = {}
                for group in _same_size_groups(imgs):
                    x = torch.stack([imgs[i] for i in group]).to(dev)
                    m = torch.stack([msks[i] for i in group]).to(dev)
                    note = _resolution_note(method, config, x.shape[-2:])
                    if note and note not in notes:
                        notes.append(note)
                    gen = torch.Generator(device="cpu").manual_seed(sample_seed(seed, k, start + group[0]))
                    with torch.no_grad(), image_names_of_batch([names[chunk[i]] for i in group]):
                        result, info = inpaint(method, model, config, x, m, gen)
                    batch_info.update({key_: v for key_, v in info.items() if isinstance(v, (int, float, str))})
                    info_total.update(info)
                    for j, i in enumerate(group):
                        save_image(out_path(k, chunk[i]), result[j])
                    bar.update(len(group))
                    if "nfe" in info:
                        bar.set_postfix(nfe=info["nfe"])
                mine[key] = batch_info
                write_text(progress_file, json.dumps({"fingerprint": fingerprint, "done": mine}))
    if alone:
        shutil.rmtree(out_dir / PROGRESS_DIR, ignore_errors=True)  # complete: only the images stay
    return SampleReport(count=count, out_dir=out_dir, info=info_total, notes=notes, resumed=already)


def _resolution_note(method: str, config: Any, size: Any) -> str | None:
    """A one-line note when images differ from the resolution the model was trained at."""
    trained = getattr(config, "resolution", None)
    if not isinstance(trained, int) or get_manager().method(method).needs_training is False:
        return None
    h, w = int(size[0]), int(size[1])
    if (h, w) == (trained, trained):
        return None
    return f"{method} was trained at {trained}x{trained}; some images are {w}x{h} (the model runs at their size)"


def _same_size_groups(imgs: list[torch.Tensor]) -> list[list[int]]:
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, img in enumerate(imgs):
        groups.setdefault(tuple(img.shape), []).append(i)
    return list(groups.values())


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
