"""``zoo compare`` and ``zoo score METHOD``: every method on the identical eval set.

A compare folder (REPORT_DIR) holds everything it needs to resume::

    evalset/                 images/, masks/, manifest.json (one eval set for all methods)
    evalset.request.json     the --data/--masks/--count/--size/--seed it was built for
    predictions/<label>/     000000.png ... ; progress.json (finished batches, plugin
                             numbers); done.json once the method is complete
    scores/<label>.json      the method's scores (reused when metrics and inputs match)
    results.json results.csv report.md plots/<metric>.png grid.png   (see zoo.report)

Recipe:
1. resolve the entries: ``--methods`` (classical methods need no checkpoint) and
   ``--checkpoint`` files, whose method comes from their metadata;
2. build the eval set once (or reuse the one in REPORT_DIR when the request matches);
3. per entry, sample every batch not yet on disk with a seed fixed by the batch's position
   (so a resumed run makes the same pixels), calling the plugin's ``zoo_score`` hook on each
   batch; a finished entry is skipped outright;
4. per entry, score with the shared metrics (ground-truth features cached across entries);
5. write the report.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
from tqdm.auto import tqdm

from zoo.errors import ZooError
from zoo.fsutil import check_output_dir, removed_on_failure, still_there, write_text
from zoo.report import PRED_DIR, safe_label, write_report as _write
from zoo.spec import MetricSpec

EVAL_DIR = "evalset"
SCORE_DIR = "scores"
REQUEST_FILE = "evalset.request.json"


@dataclass
class Entry:
    """One column of the comparison: a method, with a checkpoint when it needs one."""

    label: str
    method: str
    checkpoint: Path | None = None
    overrides: dict[str, str] = field(default_factory=dict)  # sampling-time --set values


@dataclass
class EntryResult:
    entry: Entry
    score: Any  # zoo.metrics.scoring.ScoreResult
    method_scores: dict[str, float] = field(default_factory=dict)
    sampled: str = "cached"  # "cached" | "sampled" | "resumed"
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class CompareResult:
    out_dir: Path
    eval_set: Any  # zoo.data.evalset.EvalSet
    metrics: list[MetricSpec]
    entries: list[EntryResult]
    warnings: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------------------
# 1. entries
# --------------------------------------------------------------------------------------
def resolve_entries(
    methods: Sequence[str] = (), checkpoints: Sequence[str | Path] = (), overrides: dict[str, dict[str, str]] | None = None
) -> list[Entry]:
    """``--methods`` names and ``--checkpoint`` files -> entries with unique labels.

    ``overrides`` maps a method name to the config values it samples with (``--set``); an
    entry with overrides is labelled ``method[key=value,...]``.
    """
    from zoo.checkpoint import read_meta
    from zoo.plugins import get_manager

    manager = get_manager()
    entries: list[Entry] = []
    for name in methods:
        spec = manager.method(name)
        if spec.needs_training:
            raise ZooError(f"method {name!r} needs a checkpoint: pass --checkpoint CKPT (its method comes from the file) instead of --methods {name}")
        entries.append(Entry(name, name))
    for ckpt in checkpoints:
        meta = read_meta(ckpt)
        manager.method(meta.method)
        entries.append(Entry(meta.method, meta.method, Path(ckpt)))
    if not entries:
        raise ZooError("nothing to compare: give --methods m1,m2 and/or --checkpoint CKPT (repeatable)")
    for name, values in (overrides or {}).items():
        matching = [e for e in entries if e.method == name]
        if not matching:
            raise ZooError(f"--set {name}.…: method {name!r} is not compared here; compared: {', '.join(sorted({e.method for e in entries}))}")
        for e in matching:  # a bad key or value is an error now, before anything is written
            _check_overrides(e, values)
            e.overrides = dict(values)
            e.label = f"{e.label}[{','.join(f'{k}={v}' for k, v in sorted(values.items()))}]"
    counts: dict[str, int] = {}
    for e in entries:
        counts[e.label] = counts.get(e.label, 0) + 1
    for e in entries:  # two checkpoints of one method: label them by file name
        if counts[e.label] > 1 and e.checkpoint is not None:
            e.label = f"{e.method}@{e.checkpoint.stem}"
    labels = [e.label for e in entries]
    dup = sorted({x for x in labels if labels.count(x) > 1})
    if dup:
        raise ZooError(f"{dup[0]!r} is listed twice; give each method or checkpoint once")
    return entries


def _check_overrides(entry: Entry, values: dict[str, str]) -> None:
    from zoo.checkpoint import read_meta
    from zoo.config import apply_overrides, config_from_dict, resolve_config, validate_config
    from zoo.plugins import get_manager

    spec = get_manager().method(entry.method)
    if entry.checkpoint is None:
        resolve_config(spec, None, values)
        return
    config = config_from_dict(spec.config, read_meta(entry.checkpoint).config, entry.method)
    validate_config(apply_overrides(config, values, entry.method), entry.method)


# --------------------------------------------------------------------------------------
# 2. the eval set
# --------------------------------------------------------------------------------------
def prepare_eval_set(out_dir: Path, data: str | None, masks: str, count: int, size: int, seed: int, progress: bool = True):
    """The eval set of a compare folder: built once, reused when the request matches.

    ``masks`` is a mask kind, a folder of mask PNGs (white = hole; the first ``count`` by
    name are paired with the first ``count`` images of DATA), or an existing eval set folder
    (with manifest.json), which is then used as it is.
    """
    from zoo.data.evalset import MANIFEST, build_eval_set, load_eval_set

    mask_path = Path(masks)
    if mask_path.is_dir() and (mask_path / MANIFEST).is_file():
        return load_eval_set(mask_path)
    if data is None:
        raise ZooError("--data is required unless --masks names an eval set folder (one with manifest.json)")
    root = Path(out_dir) / EVAL_DIR
    masks_id = str(mask_path.resolve()) if mask_path.is_dir() else masks
    request = {"data": str(data), "masks": masks_id, "count": count, "seed": seed, "resolution": size}
    request_file = Path(out_dir) / REQUEST_FILE  # what was asked, beside the eval set
    if (root / MANIFEST).is_file() and request_file.is_file():
        have = _read_json(request_file) or {}
        if have != request:
            diff = next((k for k in request if have.get(k) != request[k]), "settings")
            raise ZooError(f"{out_dir} already holds an eval set with {diff}={have.get(diff)!r} (asked: {request.get(diff)!r}); use another --out or the same settings")
        return load_eval_set(root)
    if root.exists():
        shutil.rmtree(root)  # an interrupted build: start it again
    if mask_path.is_dir():
        ev = _eval_set_from_mask_folder(root, str(data), mask_path, masks_id, count, size, seed, progress)
    else:
        ev = build_eval_set(data=str(data), masks=masks, count=count, seed=seed, out_dir=root, resolution=size, progress=progress)
    write_text(request_file, json.dumps(request, indent=1))
    return ev


def _eval_set_from_mask_folder(root: Path, data: str, mask_dir: Path, masks_id: str, count: int, size: int, seed: int, progress: bool):
    """Same layout as :func:`zoo.data.evalset.build_eval_set`, masks read from a folder."""
    from zoo.data import open_data
    from zoo.data.evalset import BIN_EDGES, MANIFEST, EvalSet, hole_ratio_bin
    from zoo.imageio import list_images, load_mask, save_image, save_mask

    files = list_images(mask_dir)
    if len(files) < count:
        raise ZooError(f"--masks {mask_dir} has {len(files)} mask files but --count is {count}")
    dataset = open_data(data, resolution=size, split="test", seed=seed)
    if count > len(dataset):  # type: ignore[arg-type]
        raise ZooError(f"--count {count} is larger than the {len(dataset)} images of {data}")  # type: ignore[arg-type]
    items, digest = [], hashlib.sha256()
    for i in tqdm(range(count), desc="eval set", disable=not progress):
        item = dataset[i]
        image = item["image"]
        mask = load_mask(files[i])
        if tuple(mask.shape[1:]) != tuple(image.shape[1:]):
            raise ZooError(f"mask {files[i]} is {mask.shape[2]}x{mask.shape[1]} but --size is {size}; give masks of the eval size")
        name = f"{i:06d}"
        save_image(root / "images" / f"{name}.png", image)
        save_mask(root / "masks" / f"{name}.png", mask)
        ratio = float(mask.mean())
        items.append({"name": name, "image": f"images/{name}.png", "mask": f"masks/{name}.png", "source": item.get("name", name),
                      "mask_source": files[i].name, "hole_ratio": round(ratio, 6), "bin": hole_ratio_bin(ratio)})
        digest.update((root / "images" / f"{name}.png").read_bytes())
        digest.update((root / "masks" / f"{name}.png").read_bytes())
    manifest = {"version": 1, "data": data, "masks": masks_id, "count": count, "seed": seed, "resolution": size,
                "bins": list(BIN_EDGES), "hash": digest.hexdigest(), "items": items}
    write_text(root / MANIFEST, json.dumps(manifest, indent=1))
    return EvalSet(root, manifest)


# --------------------------------------------------------------------------------------
# 3. sampling, resumable
# --------------------------------------------------------------------------------------
def _fingerprint(entry: Entry, ev, seed: int, batch_size: int) -> dict[str, Any]:
    from zoo.fsutil import file_sha256

    return {
        "method": entry.method,
        "checkpoint": str(entry.checkpoint) if entry.checkpoint else None,
        "checkpoint_sha256": file_sha256(entry.checkpoint) if entry.checkpoint else None,
        "eval_set": ev.hash,
        "seed": seed,
        "batch_size": batch_size,
        "overrides": dict(sorted(entry.overrides.items())),
    }


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def merge_progress(entry: Entry, ev, pred_dir: Path, seed: int, batch_size: int) -> None:
    """Fold the ``progress.rankR.json`` files of an interrupted ``--devices N`` run into
    ``progress.json`` (before a new set of processes starts, so that each one's file holds only
    its own batches and none is lost when N changes)."""
    fp = _fingerprint(entry, ev, seed, batch_size)
    parts = sorted(pred_dir.glob("progress.rank*.json"))
    if not parts:
        return
    state = _read_json(pred_dir / "progress.json")
    if state is None or state.get("fingerprint") != fp:
        state = {"fingerprint": fp, "batches": {}}
    for part in parts:
        shard = _read_json(part)
        if shard is not None and shard.get("fingerprint") == fp:
            state["batches"].update(shard["batches"])
    state["batches"] = dict(sorted(state["batches"].items(), key=lambda kv: int(kv[0])))
    write_text(pred_dir / "progress.json", json.dumps(state, indent=1))
    for part in parts:
        part.unlink()


def sample_entry(entry: Entry, ev, pred_dir: Path, seed: int = 0, batch_size: int = 8, device: str | None = None, progress: bool = True,
                 rank: int = 0, world_size: int = 1) -> tuple[dict[str, float], str]:
    """Inpaint every eval-set item with ``entry``'s method into ``pred_dir``; resumable.

    Returns the plugin's ``zoo_score`` numbers (image-weighted means over batches) and how
    the predictions came to be: "cached" (all on disk already), "resumed" or "sampled".
    With ``world_size > 1`` only the batches whose index is ``rank`` modulo ``world_size``
    are sampled, their progress goes to ``progress.rankR.json`` and nothing is returned; a
    later one-process call merges those files and finishes the entry (:mod:`zoo.shard`).
    """
    from zoo.device import get_device
    from zoo.imageio import save_image
    from zoo.plugins import get_manager
    from zoo.inpaint import inpaint, sample_seed
    from zoo.progress import silenced
    from zoo.runner import build_model

    fp = _fingerprint(entry, ev, seed, batch_size)
    done = _read_json(pred_dir / "done.json")
    if done is not None and done.get("fingerprint") == fp:
        return done.get("method_scores", {}), "cached"
    progress_file = pred_dir / "progress.json"
    state = _read_json(progress_file)
    if state is None or state.get("fingerprint") != fp:
        state = {"fingerprint": fp, "batches": {}}
    how = "resumed" if state["batches"] else "sampled"  # batches the processes of --devices N sampled count as sampled
    for part in sorted(pred_dir.glob("progress.rank*.json")):  # batches that processes of --devices N finished
        shard = _read_json(part)
        if shard is not None and shard.get("fingerprint") == fp:
            state["batches"].update(shard["batches"])
    if not state["batches"] and pred_dir.exists():
        shutil.rmtree(pred_dir)  # predictions of something else: start over
    pred_dir.mkdir(parents=True, exist_ok=True)
    if world_size > 1:
        progress_file = pred_dir / f"progress.rank{rank}.json"
        state = {"fingerprint": fp, "batches": {k: v for k, v in state["batches"].items() if (int(k) // batch_size) % world_size == rank}}

    items = ev.items
    dev = get_device(device)
    model, config = build_model(entry.method, entry.checkpoint, entry.overrides or None)
    model.to(dev)
    manager = get_manager()
    bar = tqdm(total=len(items), desc=f"sample {entry.label}", disable=not progress, dynamic_ncols=True)
    for start in range(0, len(items), batch_size):
        chunk = items[start : start + batch_size]
        if (start // batch_size) % world_size != rank:
            continue
        outs = [pred_dir / f"{it['name']}.png" for it in chunk]
        if str(start) in state["batches"] and all(p.is_file() for p in outs):
            bar.update(len(chunk))
            continue
        pairs = [ev.load(start + j) for j in range(len(chunk))]
        x = torch.stack([p[0] for p in pairs]).to(dev)  # (B, 3, H, W) in [-1, 1]
        m = torch.stack([p[1] for p in pairs]).to(dev)  # (B, 1, H, W), 1 = hole
        gen = torch.Generator(device="cpu").manual_seed(sample_seed(seed, 0, start))
        with torch.no_grad(), silenced(not progress):  # --no-progress: the sampler's own bars too
            result, info = inpaint(entry.method, model, config, x, m, gen)
            extra = manager.call("zoo_score", entry.method, model=model, config=config, images=x, masks=m, outputs=result)
        for j, path in enumerate(outs):
            save_image(path, result[j], inside=pred_dir)
        state["batches"][str(start)] = {"n": len(chunk), "scores": {k: float(v) for k, v in (extra or {}).items()},
                                        "info": {k: v for k, v in info.items() if isinstance(v, (int, float, str))}}
        write_text(progress_file, json.dumps(state, indent=1), inside=pred_dir)
        bar.update(len(chunk))
    bar.close()
    still_there(pred_dir)
    if world_size > 1:
        return {}, how
    state["batches"] = dict(sorted(state["batches"].items(), key=lambda kv: int(kv[0])))  # as one process orders them
    method_scores = _weighted_means(state["batches"].values())
    write_text(progress_file, json.dumps(state, indent=1))
    write_text(pred_dir / "done.json", json.dumps({"fingerprint": fp, "method_scores": method_scores}, indent=1))
    for part in pred_dir.glob("progress.rank*.json"):
        part.unlink()
    return method_scores, how


def _weighted_means(batches) -> dict[str, float]:
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    for b in batches:
        for k, v in b.get("scores", {}).items():
            sums[k] = sums.get(k, 0.0) + v * b["n"]
            counts[k] = counts.get(k, 0) + b["n"]
    return {k: sums[k] / counts[k] for k in sums}


# --------------------------------------------------------------------------------------
# 4. scoring, cached per entry
# --------------------------------------------------------------------------------------
def score_entry(entry: Entry, ev, pred_dir: Path, metrics: list[MetricSpec], score_file: Path, **options):
    from zoo.metrics.scoring import ScoreResult, score_folders

    from zoo import __version__

    done = _read_json(pred_dir / "done.json") or {}
    key = {"metrics": [m.name for m in metrics], "predictions": done.get("fingerprint"), "zoo": __version__,
           **{k: str(v) for k, v in options.items() if k in ("bootstrap", "fid_layer", "fid_weights", "seed")}}
    cached = _read_json(score_file)
    if cached is not None and cached.get("key") == key:
        return ScoreResult.from_dict(cached["score"]), "cached"
    bins = {it["name"]: it["bin"] for it in ev.items}
    reference = {"eval_set": ev.hash, "resolution": ev.resolution}
    result = score_folders(pred_dir, ev.image_dir, metrics, ev.mask_dir, bins=bins, reference_key=reference, **options)
    write_text(score_file, json.dumps({"key": key, "score": result.to_dict()}, indent=1, default=float))
    return result, "computed"


def run_compare(
    entries: list[Entry],
    metrics: list[MetricSpec],
    out_dir: str | Path,
    data: str | None,
    masks: str,
    count: int = 100,
    size: int = 256,
    seed: int = 0,
    batch_size: int = 8,
    device: str | None = None,
    fid_weights: str | Path | None = None,
    fid_layer: str = "2048",
    bootstrap: int = 10,
    progress: bool = True,
    write_report: bool = True,
    command: list[str] | None = None,
) -> CompareResult:
    """Steps 2-5 of the module recipe; returns every number that the report shows."""
    from zoo.metrics.scoring import preflight

    preflight(metrics, fid_weights)  # missing weights: stop now, not after hours of sampling
    out = check_output_dir(out_dir, {"--data": data if data and Path(str(data)).is_dir() else None, "--masks": masks if Path(masks).is_dir() else None}, overwrite=True)
    with removed_on_failure(out):  # a bad --data / --masks leaves no folder behind
        out.mkdir(parents=True, exist_ok=True)
        ev = prepare_eval_set(out, data, masks, count, size, seed, progress)
    results: list[EntryResult] = []
    warnings: list[str] = []
    for entry in entries:
        pred_dir = out / PRED_DIR / safe_label(entry.label)
        method_scores, how = sample_entry(entry, ev, pred_dir, seed, batch_size, device, progress)
        score, scored = score_entry(entry, ev, pred_dir, metrics, out / SCORE_DIR / f"{safe_label(entry.label)}.json",
                                    device=device, fid_weights=fid_weights, fid_layer=fid_layer, bootstrap=bootstrap, seed=seed, progress=progress)
        for w in score.warnings:
            if w not in warnings:
                warnings.append(w)
        results.append(EntryResult(entry, score, method_scores, how, {"scores": scored, **score.info}))
    res = CompareResult(out, ev, metrics, results, warnings)
    if write_report:
        _write(res, command=command)
    return res

