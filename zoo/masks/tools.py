"""Writing mask sets to disk and summarising folders of masks (``zoo masks generate|stats``)."""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from zoo.errors import ZooError, ZooWarning
from zoo.fsutil import atomic_path, check_output_dir, removed_on_failure, write_text

MANIFEST = "manifest.json"
PERCENTILES = (5, 25, 50, 75, 95)


def write_mask_png(path: Path, mask01: np.ndarray) -> None:
    """(H, W) array with 1 = hole -> 8-bit grayscale PNG, white = hole (no timestamps, so
    the bytes depend only on the pixels)."""
    from zoo.imageio import encode_gray_png

    with atomic_path(path) as tmp:
        tmp.write_bytes(encode_gray_png(np.where(mask01 > 0, 255, 0).astype(np.uint8)))


def generate_masks(kind: str, size: int, count: int, seed: int, out_dir: str | Path, height: int | None = None, progress: bool = True) -> dict[str, Any]:
    """Write masks ``0..count-1`` of ``kind`` for ``seed`` as PNGs plus ``manifest.json``."""
    from zoo.masks import mask_array, mask_kind

    spec = mask_kind(kind)
    if count < 1:
        raise ZooError("--count must be at least 1")
    if size < 8 or (height is not None and height < 8):
        raise ZooError("--size must be at least 8 pixels")
    h, w = (height or size), size
    out = check_output_dir(out_dir, {}, overwrite=True)
    items = []
    with removed_on_failure(out):
        for i in tqdm(range(count), desc=f"masks {kind}", disable=not progress):
            arr = mask_array(spec, h, w, seed, i)
            name = f"{i:06d}.png"
            write_mask_png(out / name, arr)
            items.append({"file": name, "index": i, "hole_ratio": round(float(arr.mean()), 6), "sha256": hashlib.sha256((out / name).read_bytes()).hexdigest()})
        manifest = {"version": 1, "kind": kind, "description": spec.description, "height": h, "width": w, "count": count, "seed": seed, "convention": "hole-white", "items": items}
        write_text(out / MANIFEST, json.dumps(manifest, indent=1))
    return manifest


def hole_ratio_stats(ratios: list[float] | np.ndarray) -> dict[str, Any]:
    """Mean, spread, percentiles and 10 %-bin histogram of hole ratios."""
    from zoo.data.evalset import hole_ratio_bin

    r = np.asarray(ratios, dtype=np.float64)
    if r.size == 0:
        raise ZooError("no masks to summarise")
    bins = {f"{k * 10}-{k * 10 + 10}%": 0 for k in range(10)}
    for v in r:
        bins[hole_ratio_bin(float(v))] += 1
    return {
        "count": int(r.size),
        "mean": float(r.mean()),
        "std": float(r.std()),
        "min": float(r.min()),
        "max": float(r.max()),
        "percentiles": {f"p{p}": float(np.percentile(r, p)) for p in PERCENTILES},
        "histogram": bins,
    }


def folder_stats(folder: str | Path, convention: str = "hole-white", progress: bool = True) -> dict[str, Any]:
    """Read every mask file under ``folder`` (recursive) and summarise their hole ratios."""
    from zoo.imageio import IMAGE_TYPES, list_images, load_mask

    folder = Path(folder)
    files = list_images(folder)
    if not files:
        raise ZooError(f"no mask files ({IMAGE_TYPES}) found in {folder}")
    ratios, unreadable, nonbinary = [], 0, 0
    for path in tqdm(files, desc="mask stats", disable=not progress):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                mask = load_mask(path, convention)
            except ZooError as exc:
                mask = None
                error = str(exc)
        if mask is None:
            unreadable += 1
            warnings.warn(ZooWarning(f"skipping unreadable mask: {error}", "unreadable masks skipped"), stacklevel=2)
            continue
        nonbinary += any("not binary" in str(c.message) for c in caught)
        ratios.append(float(mask.mean()))
    if nonbinary:
        warnings.warn(f"{nonbinary} mask(s) in {folder} were not binary (values besides 0 and 255); thresholded at 128", stacklevel=2)
    if not ratios:
        raise ZooError(f"none of the {len(files)} mask files in {folder} could be read")
    stats = hole_ratio_stats(ratios)
    stats.update({"folder": str(folder), "convention": convention, "skipped_unreadable": unreadable, "thresholded_nonbinary": nonbinary})
    return stats


def format_stats(stats: dict[str, Any], width: int = 40) -> str:
    """Plain-text report with a histogram of '#' bars."""
    lines = [
        f"masks: {stats['count']}" + (f"  (skipped unreadable: {stats['skipped_unreadable']})" if stats.get("skipped_unreadable") else ""),
        f"hole ratio: mean {stats['mean']:.4f}  std {stats['std']:.4f}  min {stats['min']:.4f}  max {stats['max']:.4f}",
        "percentiles: " + "  ".join(f"{k} {v:.4f}" for k, v in stats["percentiles"].items()),
        "histogram:",
    ]
    peak = max(stats["histogram"].values()) or 1
    for label, n in stats["histogram"].items():
        bar = "#" * int(round(width * n / peak))
        lines.append(f"  {label:>8}  {n:6d}  {100 * n / stats['count']:5.1f}%  {bar}")
    return "\n".join(lines)


def check_pairs(images: str | Path, masks: str | Path, convention: str = "hole-white") -> dict[str, Any]:
    """Check a folder of images against a folder of masks of the same names: every image has
    a mask, sizes agree, masks are binary and readable. Returns counts and a list of problems
    (one line each); nothing is raised for problems so all of them can be reported at once."""
    from zoo.imageio import image_size, load_mask, pair_images_and_masks

    pairs = pair_images_and_masks(images, masks)
    problems: list[str] = []
    ratios = []
    for img_path, mask_path in pairs:
        try:
            size = image_size(img_path)
        except ZooError as exc:
            problems.append(str(exc))
            continue
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                mask = load_mask(mask_path, convention)
            except ZooError as exc:
                problems.append(str(exc))
                continue
        if any("not binary" in str(c.message) for c in caught):
            problems.append(f"mask {mask_path} is not binary (values besides 0 and 255); it will be thresholded at 128")
        if (mask.shape[2], mask.shape[1]) != size:
            problems.append(f"mask {mask_path} is {mask.shape[2]}x{mask.shape[1]} but image {img_path} is {size[0]}x{size[1]}")
            continue
        ratio = float(mask.mean())
        ratios.append(ratio)
        if ratio == 0.0:
            problems.append(f"mask {mask_path} has no hole (with --mask-convention {convention})")
    return {"pairs": len(pairs), "problems": problems, "mean_hole_ratio": float(np.mean(ratios)) if ratios else None}
