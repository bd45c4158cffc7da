"""Sample a folder of image/mask pairs with one method: what ``zoo sample`` runs.

:func:`build_model` loads a checkpoint (or builds a method that needs none);
:func:`sample_folder` writes one composited PNG per pair and sample, resumably: an
unfinished run keeps its finished images and a progress record in ``OUT/.zoo-progress``,
and the same command continues it. :mod:`zoo.runner` re-exports these names.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from zoo.checkpoint import load_model
from zoo.config import resolve_config
from zoo.device import get_device
from zoo.errors import ZooError
from zoo.fsutil import check_output_dir, removed_on_failure, write_text
from zoo.imageio import load_image, load_mask, pair_images_and_masks, readable_size, save_image
from zoo.inpaint import image_names_of_batch, inpaint, sample_seed
from zoo.plugins import get_manager
from zoo.progress import silenced


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
                    with torch.no_grad(), image_names_of_batch([names[chunk[i]] for i in group]), silenced(not progress):
                        result, info = inpaint(method, model, config, x, m, gen)
                    batch_info.update({key_: v for key_, v in info.items() if isinstance(v, (int, float, str))})
                    info_total.update(info)
                    for j, i in enumerate(group):
                        save_image(out_path(k, chunk[i]), result[j], inside=out_dir)
                    bar.update(len(group))
                    if "nfe" in info:
                        bar.set_postfix(nfe=info["nfe"])
                mine[key] = batch_info
                write_text(progress_file, json.dumps({"fingerprint": fingerprint, "done": mine}), inside=out_dir)
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
