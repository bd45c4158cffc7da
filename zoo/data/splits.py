"""A study's train / val / test split by source image (:func:`resolve_splits`): a registered
dataset's own splits, a ``zoo data prepare`` folder's split lists, ``train/ val/ test/``
sub-folders, or, for a plain folder of images, a deterministic split by source file
(:func:`plain_split`) written as split lists beside links to the images
(:func:`write_split_view`), so that training and evaluation read the same split."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

from zoo.errors import ZooError

SPLITS = ("train", "val", "test")
SPLIT_SHARES = {"train": 0.70, "val": 0.15, "test": 0.15}  # a plain image folder, by source file


def _split_of_folder(root: Path) -> dict[str, Path] | None:
    """``DIR/train``, ``DIR/val``, ``DIR/test`` sub-folders (an eval set folder's ``images/``
    where one holds a manifest.json), or None."""
    found = {}
    for split in SPLITS:
        sub = root / split
        if not sub.is_dir():
            return None
        found[split] = sub / "images" if (sub / "manifest.json").is_file() and (sub / "images").is_dir() else sub
    return found


def plain_split(files: list[Path], root: Path) -> dict[str, list[Path]]:
    """A deterministic split of a plain folder by source file: files ordered by the sha256 of
    their relative path (not by name or date order), the first 15 % test, the next
    15 % val, the rest train (:data:`SPLIT_SHARES`)."""
    order = sorted(files, key=lambda p: hashlib.sha256(p.relative_to(root).as_posix().encode()).hexdigest())
    n = len(order)
    n_test, n_val = int(round(n * SPLIT_SHARES["test"])), int(round(n * SPLIT_SHARES["val"]))
    return {"test": sorted(order[:n_test]), "val": sorted(order[n_test : n_test + n_val]), "train": sorted(order[n_test + n_val :])}


def resolve_splits(data: str, resolution: int, seed: int) -> tuple[str, dict[str, int], dict[str, list[Path]] | dict[str, str]]:
    """(kind, images per split, what each split reads) for DATA; nothing is written.

    Kinds: ``named`` (a registered dataset such as ``shapes``: its own disjoint splits);
    ``prepared`` (a folder written by ``zoo data prepare``, or a benchmark in that layout:
    its ``splits/*.txt``); ``folders`` (``train/``, ``val/``, ``test/`` sub-folders, such as
    the scenes benchmark's prepared split); ``plain`` (any other folder of images: split by
    source file with :func:`plain_split`, written as ``STUDY/data`` later)."""
    from zoo.data import dataset_names, open_data

    named = dataset_names()
    if data in named:
        sizes = {s: len(open_data(data, resolution=resolution, split=s, seed=seed)) for s in SPLITS}  # type: ignore[arg-type]
        return "named", sizes, {s: data for s in SPLITS}
    root = Path(data)
    if not root.is_dir():
        raise ZooError(f"--data {data!r} is neither a folder nor a registered dataset; valid names: {', '.join(named)}")
    from zoo.data.prepare import split_files
    from zoo.imageio import list_images

    if (root / "splits").is_dir() and (root / "manifest.json").is_file():
        lists = {s: split_files(root, s) or [] for s in SPLITS}
        return "prepared", {s: len(v) for s, v in lists.items()}, {s: str(root) for s in SPLITS}
    sub = _split_of_folder(root)
    if sub is not None:
        sizes = {}
        for s, path in sub.items():
            sizes[s] = len(list_images(path)) if path.is_dir() else 0
        return "folders", sizes, {s: str(p) for s, p in sub.items()}
    files = list_images(root)
    if not files:
        raise ZooError(f"--data {data}: no images (png, jpg, jpeg, webp, bmp) found; give a folder of photographs or a dataset name ({', '.join(named)})")
    split = plain_split(files, root)
    return "plain", {s: len(v) for s, v in split.items()}, split


def write_split_view(root: Path, view: Path, split: dict[str, list[Path]]) -> str:
    """``STUDY/data``: ``images/`` (links to the source files; copies where links fail),
    ``splits/{train,val,test}.txt`` and a ``manifest.json``, the layout ``zoo data prepare``
    writes, so that every part of the zoo reads the same split. Returns the view's path."""
    if (view / "manifest.json").is_file():
        return str(view)
    tmp = view.with_name(view.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    lines: dict[str, list[str]] = {}
    for s, files in split.items():
        lines[s] = []
        for f in files:
            rel = Path("images") / f.relative_to(root)
            dst = tmp / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.symlink(f.resolve(), dst)
            except OSError:
                shutil.copy2(f, dst)
            lines[s].append(rel.as_posix())
    (tmp / "splits").mkdir(parents=True, exist_ok=True)
    for s, rows in lines.items():
        (tmp / "splits" / f"{s}.txt").write_text("".join(r + "\n" for r in rows))
    manifest = {"version": 1, "layout": "study-split", "source": str(root.resolve()), "rule": "sha256 of the relative path; 15 % test, 15 % val, rest train",
                "splits": {s: len(v) for s, v in lines.items()}}
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1))
    shutil.rmtree(view, ignore_errors=True)
    os.replace(tmp, view)
    return str(view)
