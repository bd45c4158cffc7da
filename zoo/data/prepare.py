"""``zoo data prepare``: turn a downloaded dataset into resized images, split lists and a manifest.

Output folder::

    images/<relative path>.png   every readable image, shorter side resized to SIZE, center crop
    splits/train.txt, val.txt, test.txt   one relative path (from the output folder) per line
    manifest.json                layout, size, split source, per-file path / size / sha256 / split

Layouts (what the official downloads unpack to; see docs/data.md for the sources):

* ``celeba-hq``: a folder of the 30,000 CelebA-HQ images, named 0.jpg..29999.jpg
  (CelebAMask-HQ ``CelebA-HQ-img``) or 00001.jpg..30000.jpg (``data256x256.zip``, which LaMa
  re-indexes to 0-based). Splits, first found wins: LaMa's ``train_shuffled.flist`` /
  ``val_shuffled.flist`` (``--split-lists DIR``; LaMa's 2,000 "visual test" images are our
  ``test``), else CelebA's ``list_eval_partition.txt`` + ``CelebA-HQ-to-CelebA-mapping.txt``
  (the 24,183 / 2,993 / 2,824 split of PGGAN/MAT) in SRC or ``--split-lists``, else a seeded
  random split.
* ``ffhq``: ``images1024x1024/00000/00000.png`` ... (or any folder of 00000..69999 files).
  Split: ``ffhq-dataset-v2.json``'s ``category`` if present, else the published rule it
  encodes: images 0-59,999 training, 60,000-69,999 validation (our ``val`` and ``test``).
* ``places2``: Places365 ``data_large/`` or ``data_256/`` (train; standard or challenge),
  ``val_large/`` -> our ``test`` (the 36,500 labelled validation images LaMa, MAT and CoModGAN
  evaluate on), ``test_large/`` -> our ``val`` (LaMa samples its validation images from it).
* ``folder``: any folder; top-level ``train/``, ``val/``, ``test/`` sub-folders are used as
  splits if present, else a seeded random split (``--val-count``, ``--test-count``).
"""

from __future__ import annotations

import hashlib
import json
import re
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from zoo.errors import ZooError, ZooWarning, choices_error
from zoo.fsutil import atomic_path, check_output_dir, write_text
from zoo.imageio import IMAGE_TYPES, list_images, to_rgb

LAYOUTS = ("celeba-hq", "ffhq", "places2", "folder")
SPLITS = ("train", "val", "test")
FORMATS = ("png", "jpg")


@dataclass
class Plan:
    """Source files per split and where the split came from."""

    splits: dict[str, list[Path]]
    source: str
    notes: list[str] = field(default_factory=list)


def _seeded_split(files: list[Path], seed: int, val: int, test: int) -> dict[str, list[Path]]:
    order = np.random.default_rng([seed, 0xDA7A]).permutation(len(files))
    val, test = min(val, len(files) // 3), min(test, len(files) // 3)
    picked = [files[i] for i in order]
    return {"test": sorted(picked[:test]), "val": sorted(picked[test : test + val]), "train": sorted(picked[test + val :])}


def _number(path: Path) -> int | None:
    m = re.fullmatch(r"\D*(\d+)", path.stem)
    return int(m.group(1)) if m else None


def _find(src: Path, *names: str) -> Path | None:
    for name in names:
        hits = sorted(src.rglob(name))
        if hits:
            return hits[0]
    return None


def _plan_celeba_hq(src: Path, files: list[Path], seed: int, split_lists: Path | None, val: int, test: int) -> Plan:
    numbers = {p: _number(p) for p in files}
    if any(n is None for n in numbers.values()):
        bad = next(p for p, n in numbers.items() if n is None)
        raise ZooError(f"CelebA-HQ files are named by number (0.jpg or 00001.jpg); found {bad.name}")
    one_based = min(numbers.values()) == 1 and max(numbers.values()) == len(files) and len(files) > 1
    index = {p: n - 1 if one_based else n for p, n in numbers.items()}
    by_index = {i: p for p, i in index.items()}
    notes = ["file numbers are 1-based (data256x256.zip); index = number - 1 as in LaMa"] if one_based else []
    where = [d for d in (split_lists, src) if d is not None]
    for d in where:
        train_list, test_list = d / "train_shuffled.flist", d / "val_shuffled.flist"
        if train_list.is_file() and test_list.is_file():
            def read(path: Path) -> list[int]:
                return [int(Path(line.strip()).stem) for line in path.read_text().splitlines() if line.strip()]

            train_idx, test_idx = read(train_list), read(test_list)
            missing = [i for i in train_idx + test_idx if i not in by_index]
            if missing:
                notes.append(f"{len(missing)} images named in LaMa's lists are not in {src}")
            # LaMa holds 2,000 shuffled train images out as val with `shuf` (not reproducible):
            # a seeded permutation here.
            order = np.random.default_rng([seed, 0xCE1E]).permutation(len(train_idx))
            shuffled = [train_idx[i] for i in order]
            n_val = min(2000, len(shuffled) // 10)
            pick = lambda idx: sorted((by_index[i] for i in idx if i in by_index), key=lambda p: index[p])  # noqa: E731
            return Plan({"train": pick(shuffled[n_val:]), "val": pick(shuffled[:n_val]), "test": pick(test_idx)}, "lama-flist", notes)
    for d in where:
        partition, mapping = d / "list_eval_partition.txt", d / "CelebA-HQ-to-CelebA-mapping.txt"
        if partition.is_file() and mapping.is_file():
            part = {}
            for line in partition.read_text().splitlines():
                bits = line.split()
                if len(bits) == 2:
                    part[bits[0]] = int(bits[1])
            splits: dict[str, list[Path]] = {s: [] for s in SPLITS}
            for line in mapping.read_text().splitlines()[1:]:
                bits = line.split()
                if len(bits) >= 3 and int(bits[0]) in by_index:
                    splits[SPLITS[part.get(bits[2], 0)]].append(by_index[int(bits[0])])
            return Plan({k: sorted(v, key=lambda p: index[p]) for k, v in splits.items()}, "celeba-partition", notes)
    notes.append("no split lists found (LaMa's *_shuffled.flist or CelebA's partition files): seeded random split")
    return Plan(_seeded_split(files, seed, val, test), "seeded-random", notes)


def _plan_ffhq(src: Path, files: list[Path], seed: int) -> Plan:
    meta = _find(src, "ffhq-dataset-v2.json")
    if meta is not None:
        info = json.loads(meta.read_text())
        category = {int(k): v.get("category", "training") for k, v in info.items()}
        source = "ffhq-dataset-v2.json"
    else:
        category, source = {}, "ffhq-index-rule"
    splits: dict[str, list[Path]] = {s: [] for s in SPLITS}
    for p in files:
        n = _number(p)
        if n is None:
            raise ZooError(f"FFHQ files are named by number (00000.png); found {p.name}")
        is_val = category.get(n, "validation" if n >= 60000 else "training") == "validation"
        if is_val:
            splits["val"].append(p)
            splits["test"].append(p)
        else:
            splits["train"].append(p)
    return Plan(splits, source, ["val and test are both FFHQ's validation images (60,000-69,999)"])


def _plan_places2(src: Path) -> Plan:
    def first_dir(*names: str) -> Path | None:
        for name in names:
            hits = [p for p in [src / name, *sorted(src.glob(f"*/{name}"))] if p.is_dir()]
            if hits:
                return hits[0]
        return None

    train_dir = first_dir("data_large", "data_256", "train")
    val_dir = first_dir("val_large", "val_256", "val")
    test_dir = first_dir("test_large", "test_256", "test")
    if train_dir is None and val_dir is None:
        raise ZooError(f"{src} does not look like Places365: expected data_large/ (or data_256/) and val_large/ from the official tar files")
    # LaMa and MAT/CoModGAN evaluate on Places365's labelled validation images (val_large:
    # 36,500; LaMa samples 30,000 of them), and LaMa draws its own val images from test_large.
    splits = {
        "train": list_images(train_dir) if train_dir else [],
        "val": list_images(test_dir) if test_dir else [],
        "test": list_images(val_dir) if val_dir else [],
    }
    notes = ["test = val_large (what LaMa, MAT and CoModGAN report on); val = test_large"]
    if test_dir is None:
        notes.append("no test_large/: the val split is empty")
    return Plan(splits, "places365-folders", notes)


def _plan_folder(src: Path, files: list[Path], seed: int, val: int, test: int) -> Plan:
    tops = {s: src / s for s in SPLITS if (src / s).is_dir()}
    if "train" in tops:
        return Plan({s: list_images(tops[s]) if s in tops else [] for s in SPLITS}, "subfolders")
    return Plan(_seeded_split(files, seed, val, test), "seeded-random")


def plan(layout: str, src: Path, seed: int = 0, split_lists: Path | None = None, val_count: int = 2000, test_count: int = 2000) -> Plan:
    if layout not in LAYOUTS:
        raise choices_error("layout", layout, LAYOUTS)
    for flag, count in (("--val-count", val_count), ("--test-count", test_count)):
        if count < 0:  # a negative count would put the same images in two splits
            raise ZooError(f"{flag} must be 0 or more (images held out of train), got {count}")
    if not src.is_dir():
        raise ZooError(f"SRC {src} is not a folder")
    if layout == "places2":
        result = _plan_places2(src)
    else:
        files = list_images(src)
        if not files:
            raise ZooError(f"no images ({IMAGE_TYPES}) found in {src}")
        if layout == "celeba-hq":
            result = _plan_celeba_hq(src, files, seed, split_lists, val_count, test_count)
        elif layout == "ffhq":
            result = _plan_ffhq(src, files, seed)
        else:
            result = _plan_folder(src, files, seed, val_count, test_count)
    if not any(result.splits.values()):
        raise ZooError(f"no images ({IMAGE_TYPES}) found in {src}")
    return result


def resize_short_side_center(img: Image.Image, size: int) -> Image.Image:
    from zoo.data import resize_and_crop

    return resize_and_crop(img, size, "center")


def _convert(src_path: Path, dst: Path, size: int, fmt: str) -> tuple[int, int]:
    with Image.open(src_path) as img:
        img.load()
        out = resize_short_side_center(to_rgb(img), size)
    with atomic_path(dst) as tmp:
        if fmt == "png":
            out.save(tmp, format="PNG")
        else:
            out.save(tmp, format="JPEG", quality=95, subsampling=0)
    return out.size


def prepare(
    layout: str,
    src: str | Path,
    out_dir: str | Path,
    size: int = 256,
    seed: int = 0,
    split_lists: str | Path | None = None,
    fmt: str = "png",
    strict: bool = False,
    workers: int = 2,
    limit: int | None = None,
    val_count: int = 2000,
    test_count: int = 2000,
    progress: bool = True,
    resume: bool = False,
) -> dict[str, Any]:
    """Resize every image of ``src`` (``layout``) into ``out_dir``; write split lists and a
    manifest. ``resume=True`` keeps output files that already exist (an interrupted run of a
    large dataset continues where it stopped; files are written atomically, so an existing
    file is complete)."""
    if fmt not in FORMATS:
        raise choices_error("format", fmt, FORMATS)
    if size < 8:
        raise ZooError("--size must be at least 8")
    if limit is not None and limit < 1:
        raise ZooError(f"--limit must be at least 1 (images per split), got {limit}")
    src, out = Path(src), Path(out_dir)
    # never into SRC or the split lists (nor around them); only its own names (images/, splits/, manifest.json) are written
    check_output_dir(out, {"SRC": src, "--split-lists": split_lists}, overwrite=True)
    p = plan(layout, src, seed, Path(split_lists) if split_lists else None, val_count, test_count)
    for note in p.notes:
        warnings.warn(note, stacklevel=2)
    jobs: dict[Path, Path] = {}  # source -> relative output path
    for split in SPLITS:
        files = p.splits.get(split, [])
        for f in files[:limit] if limit else files:
            jobs.setdefault(f, Path("images") / f.relative_to(src).with_suffix(f".{fmt}"))
    results: dict[Path, tuple[int, int] | Exception] = {}

    def run(item: tuple[Path, Path]):
        try:
            if resume and (out / item[1]).is_file():
                with Image.open(out / item[1]) as done:
                    return item[0], done.size
            return item[0], _convert(item[0], out / item[1], size, fmt)
        except Exception as exc:  # damaged file: reported below
            return item[0], exc

    skipped = []
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for source, res in tqdm(pool.map(run, jobs.items()), total=len(jobs), desc=f"prepare {layout}", disable=not progress):
            if isinstance(res, Exception):
                if strict:
                    raise ZooError(f"cannot read image {source} ({type(res).__name__}); stopped because of --strict")
                skipped.append(str(source))
                warnings.warn(ZooWarning(f"skipping unreadable image {source} ({type(res).__name__}); {len(skipped)} skipped so far", "unreadable images skipped"), stacklevel=2)
            else:
                results[source] = res
    if not results:
        raise ZooError(f"none of the {len(jobs)} images in {src} could be read")
    files, split_of = [], {}
    for split in SPLITS:
        chosen = [f for f in (p.splits.get(split, [])[:limit] if limit else p.splits.get(split, [])) if f in results]
        write_text(out / "splits" / f"{split}.txt", "".join(f"{jobs[f].as_posix()}\n" for f in chosen))
        for f in chosen:
            split_of.setdefault(f, []).append(split)
    for source, rel in sorted(jobs.items(), key=lambda kv: kv[1].as_posix()):
        if source in results:
            w, h = results[source]
            files.append({"path": rel.as_posix(), "width": w, "height": h, "sha256": hashlib.sha256((out / rel).read_bytes()).hexdigest(), "split": split_of.get(source, [])})
    manifest = {
        "version": 1,
        "layout": layout,
        "source": str(src),
        "size": size,
        "format": fmt,
        "split_source": p.source,
        "notes": p.notes,
        "counts": {s: sum(s in f["split"] for f in files) for s in SPLITS},
        "skipped": skipped,
        "files": files,
    }
    write_text(out / "manifest.json", json.dumps(manifest, indent=1))
    return manifest


def split_files(root: Path, split: str) -> list[Path] | None:
    """The files of ``split`` in a prepared folder, or None if ``root`` has no split lists."""
    lists = root / "splits"
    if not (lists.is_dir() and (root / "manifest.json").is_file()):
        return None
    path = lists / f"{split}.txt"
    if not path.is_file():
        raise choices_error(f"split of {root}", split, sorted(p.stem for p in lists.glob("*.txt")))
    files = [root / line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not files:
        raise ZooError(f"split {split!r} of {root} is empty; non-empty splits: " + ", ".join(sorted(p.stem for p in lists.glob("*.txt") if p.read_text().strip())))
    return files
