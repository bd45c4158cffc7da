"""Eval sets: a fixed pairing of images and masks that every method is scored on.

Layout of an eval set folder::

    images/000000.png ...   ground-truth images (8-bit RGB)
    masks/000000.png ...    masks, white = hole
    manifest.json           provenance, per-item hole ratio and bin, and a content hash

Hole-ratio bins are 10 % wide (0-10 %, 10-20 %, ...), as in AOT-GAN and CoModGAN reports.

Which images: when a folder holds several crops of one photograph (named ``PHOTO__cNN``, as
benchmarks/scenes cuts them; :func:`source_group`), ``--count`` images are drawn round-robin
over the photographs (first crop of each photograph, then the second, ...), so a small eval
set spans every photograph instead of the first one or two. Files without ``__`` are each
their own photograph, so their order is the folder's order, as before.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from zoo.errors import ZooError
from zoo.fsutil import check_output_dir, removed_on_failure, write_text
from zoo.imageio import load_image, load_mask, save_image, save_mask

MANIFEST = "manifest.json"
SELECTION = "round-robin by photograph"
BIN_EDGES = tuple(i / 10 for i in range(11))


def hole_ratio_bin(ratio: float) -> str:
    """0.234 -> '20-30%'; a ratio of exactly 1.0 falls in '90-100%'."""
    k = min(int(ratio * 10), 9)
    return f"{k * 10}-{k * 10 + 10}%"


@dataclass
class EvalSet:
    root: Path
    manifest: dict[str, Any]

    @property
    def items(self) -> list[dict[str, Any]]:
        return self.manifest["items"]

    @property
    def image_dir(self) -> Path:
        return self.root / "images"

    @property
    def mask_dir(self) -> Path:
        return self.root / "masks"

    @property
    def hash(self) -> str:
        return self.manifest["hash"]

    @property
    def resolution(self) -> int:
        return int(self.manifest["resolution"])

    def __len__(self) -> int:
        return len(self.items)

    def load(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        item = self.items[index]
        return load_image(self.root / item["image"]), load_mask(self.root / item["mask"])


def _mask_source(masks: str, mask_convention: str):
    """KIND -> (spec, None); a folder of mask files -> (None, sorted files)."""
    from zoo.masks import kinds, mask_kind

    path = Path(masks)
    if masks not in kinds() and path.is_dir():
        from zoo.imageio import IMAGE_TYPES, list_images

        files = list_images(path)
        if not files:
            raise ZooError(f"no mask files ({IMAGE_TYPES}) found in {path}")
        return None, files
    return mask_kind(masks), None


def source_group(source: str | None) -> str:
    """The photograph a crop was cut from: its source file name up to ``__``
    (``images/test/plasma-kite__c03`` -> ``plasma-kite``); a name without ``__`` is its own photograph."""
    return Path(str(source or "")).name.split("__")[0]


def spread_order(names: list[str]) -> list[int]:
    """Indices of ``names`` round-robin over their photographs (:func:`source_group`):
    the first crop of each photograph in order of appearance, then the second of each, ...
    Names that are all distinct photographs keep their order."""
    groups: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        groups.setdefault(source_group(name), []).append(i)
    queues = list(groups.values())
    return [q[k] for k in range(max((len(q) for q in queues), default=0)) for q in queues if k < len(q)]


def _dataset_order(dataset: Any) -> list[int]:
    """The order in which an eval set draws ``dataset``'s items: round-robin over the
    photographs for an image folder (names known without reading the images), else as given."""
    name_of = getattr(dataset, "name_of", None)
    if name_of is None:
        return list(range(len(dataset)))
    return spread_order([name_of(i) for i in range(len(dataset))])


def build_eval_set(
    data: str,
    masks: str,
    count: int,
    seed: int,
    out_dir: str | Path,
    resolution: int = 256,
    progress: bool = True,
    split: str = "test",
    mask_convention: str = "hole-white",
    strict: bool = False,
    resize_masks: bool = False,
) -> EvalSet:
    """Draw ``count`` images of DATA (split ``split``; round-robin over its photographs, see
    the module's docstring) and pair image ``i`` with
    mask ``i`` of kind ``masks`` for ``seed`` (or with the ``i``-th file of a mask folder,
    read with ``mask_convention``; ``resize_masks`` resizes masks of another size, nearest
    neighbour, instead of refusing them); write them, a manifest and a content hash."""
    from zoo.data import open_data
    from zoo.imageio import MASK_CONVENTIONS, load_mask
    from zoo.masks import make_mask

    if count < 1:
        raise ZooError("--count must be at least 1")
    if resolution < 8:
        raise ZooError(f"--size {resolution}: must be at least 8 pixels")
    if mask_convention not in MASK_CONVENTIONS:
        from zoo.errors import choices_error

        raise choices_error("mask convention", mask_convention, MASK_CONVENTIONS)
    kind, mask_files = _mask_source(masks, mask_convention)
    kwargs = {"strict": strict} if Path(str(data)).is_dir() else {}
    dataset = open_data(data, resolution=resolution, split=split, seed=seed, **kwargs)
    n = len(dataset)  # type: ignore[arg-type]
    if count > n:
        raise ZooError(f"--count {count} is larger than the {n} images of {data} (split {split})")
    if mask_files is not None and count > len(mask_files):
        raise ZooError(f"--count {count} is larger than the {len(mask_files)} masks in {masks}")
    out = check_output_dir(out_dir, {"--data": data if Path(str(data)).is_dir() else None, "--masks": masks if mask_files is not None else None}, overwrite=True)
    with removed_on_failure(out), tqdm(total=count, desc="eval set", disable=not progress) as bar:
        items = []
        digest = hashlib.sha256()
        seen: set[str] = set()
        resized_count = 0
        order = _dataset_order(dataset)
        j = 0
        for i in range(count):
            while True:  # a damaged image is skipped (the dataset returns the next readable one)
                if j >= n:
                    raise ZooError(f"only {i} readable images in {data} (split {split}); asked for --count {count}")
                item = dataset[order[j]]
                j += 1
                source = str(item.get("name", order[j - 1]))
                if source not in seen:
                    seen.add(source)
                    break
            bar.update(1)
            image = item["image"]
            if mask_files is None:
                mask = make_mask(kind, image.shape[1], image.shape[2], seed, i)
            else:
                mask = load_mask(mask_files[i], mask_convention)
                if mask.shape[1:] != image.shape[1:] and resize_masks:
                    from zoo.masks import resize_nearest

                    resized = resize_nearest(mask[0].numpy(), image.shape[1], image.shape[2])
                    mask = torch.from_numpy(np.ascontiguousarray(resized))[None]
                    resized_count += 1
                if mask.shape[1:] != image.shape[1:]:
                    raise ZooError(
                        f"mask {mask_files[i]} is {mask.shape[2]}x{mask.shape[1]} but the images are {image.shape[2]}x{image.shape[1]} (--size {resolution}); resize the masks or pick --size"
                    )
            name = f"{i:06d}"
            save_image(out / "images" / f"{name}.png", image)
            save_mask(out / "masks" / f"{name}.png", mask)
            ratio = float(mask.mean())
            items.append({"name": name, "image": f"images/{name}.png", "mask": f"masks/{name}.png", "source": source, "hole_ratio": round(ratio, 6), "bin": hole_ratio_bin(ratio)})
            digest.update((out / "images" / f"{name}.png").read_bytes())
            digest.update((out / "masks" / f"{name}.png").read_bytes())
        if resized_count:
            import warnings

            warnings.warn(f"resized {resized_count} mask(s) to {resolution}x{resolution} (nearest neighbour)", stacklevel=2)
        skipped = sorted(getattr(dataset, "skipped", ()))
        manifest = {
            "version": 1,
            "data": str(data),
            "split": split,
            "masks": masks,
            "mask_convention": mask_convention if mask_files is not None else "generated",
            "count": count,
            "selection": SELECTION,
            "seed": seed,
            "resolution": resolution,
            "bins": list(BIN_EDGES),
            "bin_counts": bin_counts([it["hole_ratio"] for it in items]),
            "skipped": skipped,
            "resized_masks": resized_count,
            "hash": digest.hexdigest(),
            "items": items,
        }
        write_text(out / MANIFEST, json.dumps(manifest, indent=1))
        return EvalSet(out, manifest)


def bin_counts(ratios: list[float]) -> dict[str, int]:
    """How many items fall in each 10 % hole-ratio bin (all ten bins, zeros included)."""
    counts = {f"{k * 10}-{k * 10 + 10}%": 0 for k in range(10)}
    for r in ratios:
        counts[hole_ratio_bin(r)] += 1
    return counts


def load_eval_set(path: str | Path) -> EvalSet:
    root = Path(path)
    manifest_path = root / MANIFEST
    if not manifest_path.is_file():
        raise ZooError(f"{root} is not an eval set (no {MANIFEST}); build one with `zoo data eval-set`")
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as exc:
        raise ZooError(f"{manifest_path} is damaged ({exc})") from None
    return EvalSet(root, manifest)
