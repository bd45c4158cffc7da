"""Build the scenes benchmark's image folder from unpacked Debian packages (see README.md).

    python benchmarks/scenes/build.py --unpacked WORK/unpacked --out OUT

Reads ``photos.tsv`` (the kept photographs: package, path, sha256, licence, split) and
``crops.tsv`` (the fixed 64 px crops of the validation and test photographs) beside this
file, checks every photograph's sha256, and writes OUT in the layout of ``zoo data prepare``
(so ``--data OUT --split train|val|test`` works everywhere a dataset folder does)::

    images/train/<photo>__s<scale>_x<left>_y<top>.png   every 64 px cell of a grid, at 3 scales
    images/val/<photo>__c<k>.png, images/test/...         the committed crops
    splits/train.txt, val.txt, test.txt                 one path per line
    manifest.json                                       per crop: photo, split, scale, box; counts

A crop is taken after resizing the photograph so that its shorter side is ``scale`` px
(bicubic, antialiased); the crop name starts with the photograph's id, so a split by crop
is never needed: every crop of a photograph is in that photograph's split.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

from PIL import Image

HERE = Path(__file__).resolve().parent
CROP = 64
TRAIN_SCALES = (64, 128, 256)  # shorter side before the 64 px grid is cut


def read_tsv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def resized(img: Image.Image, scale: int) -> Image.Image:
    """Shorter side to ``scale`` px, bicubic with antialiasing (Pillow's resize filters the
    source when it shrinks)."""
    w, h = img.size
    f = scale / min(w, h)
    return img.resize((max(scale, round(w * f)), max(scale, round(h * f))), Image.BICUBIC)


def check_sources(photos: list[dict[str, str]], unpacked: Path) -> dict[str, Path]:
    """Path of every photograph under ``unpacked/<package>/``; exits naming each missing file or
    sha256 mismatch."""
    found, bad = {}, []
    for p in photos:
        path = unpacked / p["package"] / p["path"]
        if not path.is_file():
            bad.append(f"{p['id']}: {path} is missing")
            continue
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != p["sha256"]:
            bad.append(f"{p['id']}: sha256 {digest[:12]}... of {path} is not the manifest's {p['sha256'][:12]}...")
        found[p["id"]] = path
    if bad:
        sys.exit("Error: " + "; ".join(bad[:3]) + (f" (and {len(bad) - 3} more)" if len(bad) > 3 else ""))
    return found


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--unpacked", required=True, type=Path, help="folder with one unpacked package per sub-folder")
    ap.add_argument("--out", required=True, type=Path, help="output folder (must not exist)")
    ap.add_argument("--photos", type=Path, default=HERE / "photos.tsv", help="the kept photographs (default: the committed list)")
    ap.add_argument("--crops", type=Path, default=HERE / "crops.tsv", help="the val/test crops (default: the committed list)")
    args = ap.parse_args(argv)
    if args.out.exists():
        sys.exit(f"Error: --out {args.out} exists; remove it or pick another folder")
    photos = read_tsv(args.photos)
    crops = read_tsv(args.crops)
    unknown = sorted({c["id"] for c in crops} - {p["id"] for p in photos if p["split"] != "train"})
    if unknown:
        sys.exit(f"Error: {args.crops} names photographs that are not in the validation or test split: {', '.join(unknown[:3])}")
    sources = check_sources(photos, args.unpacked)
    tmp = args.out.with_name(args.out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    items: list[dict] = []
    try:
        for p in photos:
            with Image.open(sources[p["id"]]) as im:
                im.load()
                rgb = im.convert("RGB")
            split = p["split"]
            (tmp / "images" / split).mkdir(parents=True, exist_ok=True)
            if split == "train":
                boxes = []
                for scale in TRAIN_SCALES:
                    w, h = resized(rgb, scale).size
                    boxes += [(scale, x, y, f"s{scale}_x{x}_y{y}") for y in range(0, h - CROP + 1, CROP) for x in range(0, w - CROP + 1, CROP)]
            else:
                boxes = [(int(c["scale"]), int(c["left"]), int(c["top"]), f"c{int(c['crop']):02d}") for c in crops if c["id"] == p["id"]]
            cache: dict[int, Image.Image] = {}
            for scale, x, y, tag in boxes:
                if scale not in cache:
                    cache[scale] = resized(rgb, scale)
                w, h = cache[scale].size
                if not (0 <= x <= w - CROP and 0 <= y <= h - CROP):
                    sys.exit(f"Error: crop {tag} of {p['id']} at ({x}, {y}) leaves its {w}x{h} image at scale {scale}")
                rel = f"images/{split}/{p['id']}__{tag}.png"
                cache[scale].crop((x, y, x + CROP, y + CROP)).save(tmp / rel)
                items.append({"path": rel, "photo": p["id"], "split": split, "scale": scale, "left": x, "top": y})
        (tmp / "splits").mkdir()
        counts = {}
        for split in ("train", "val", "test"):
            paths = [it["path"] for it in items if it["split"] == split]
            (tmp / "splits" / f"{split}.txt").write_text("".join(f"{q}\n" for q in paths))
            counts[split] = {"crops": len(paths), "photos": sum(1 for p in photos if p["split"] == split)}
        manifest = {"layout": "scenes", "size": CROP, "train_scales": list(TRAIN_SCALES), "counts": counts,
                    "photos": {p["id"]: {k: p[k] for k in ("package", "path", "sha256", "license", "split")} for p in photos},
                    "items": items}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1))
        os.replace(tmp, args.out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(counts))


if __name__ == "__main__":
    main()
