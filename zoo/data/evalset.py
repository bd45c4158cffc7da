"""Eval sets: a fixed pairing of images and masks that every method is scored on.

Layout of an eval set folder::

    images/000000.png ...   ground-truth images (8-bit RGB)
    masks/000000.png ...    masks, white = hole
    manifest.json           provenance, per-item hole ratio and bin, and a content hash

Hole-ratio bins are 10 % wide (0-10 %, 10-20 %, ...), as in AOT-GAN and CoModGAN reports.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from zoo.errors import ZooError
from zoo.fsutil import write_text
from zoo.imageio import load_image, load_mask, save_image, save_mask

MANIFEST = "manifest.json"
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


def build_eval_set(data: str, masks: str, count: int, seed: int, out_dir: str | Path, resolution: int = 256, progress: bool = True) -> EvalSet:
    """Draw ``count`` images of DATA (split ``test``) and masks of kind ``masks``; write them."""
    from zoo.data import open_data
    from zoo.masks import make_mask, mask_kind

    if count < 1:
        raise ZooError("--count must be at least 1")
    kind = mask_kind(masks)
    dataset = open_data(data, resolution=resolution, split="test", seed=seed)
    n = len(dataset)  # type: ignore[arg-type]
    if count > n:
        raise ZooError(f"--count {count} is larger than the {n} images of {data}")
    out = Path(out_dir)
    items = []
    digest = hashlib.sha256()
    for i in tqdm(range(count), desc="eval set", disable=not progress):
        item = dataset[i]
        image = item["image"]
        mask = make_mask(kind, image.shape[1], image.shape[2], seed, i)
        name = f"{i:06d}"
        save_image(out / "images" / f"{name}.png", image)
        save_mask(out / "masks" / f"{name}.png", mask)
        ratio = float(mask.mean())
        items.append({"name": name, "image": f"images/{name}.png", "mask": f"masks/{name}.png", "source": item.get("name", name), "hole_ratio": round(ratio, 6), "bin": hole_ratio_bin(ratio)})
        digest.update((out / "images" / f"{name}.png").read_bytes())
        digest.update((out / "masks" / f"{name}.png").read_bytes())
    manifest = {
        "version": 1,
        "data": str(data),
        "masks": masks,
        "count": count,
        "seed": seed,
        "resolution": resolution,
        "bins": list(BIN_EDGES),
        "hash": digest.hexdigest(),
        "items": items,
    }
    write_text(out / MANIFEST, json.dumps(manifest, indent=1))
    return EvalSet(out, manifest)


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
