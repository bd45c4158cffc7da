"""benchmarks/scenes: the committed photo manifest, split and crop list agree with each other
(the benchmark itself is built by prepare.sh, never by the tests)."""

from __future__ import annotations

import csv
import re
from collections import Counter
from pathlib import Path

SCENES = Path(__file__).resolve().parents[1] / "benchmarks" / "scenes"


def _tsv(name: str) -> list[dict[str, str]]:
    with open(SCENES / name, newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def test_every_photo_is_in_exactly_one_split_with_a_checksum_and_a_licence():
    photos = _tsv("photos.tsv")
    assert len(photos) >= 40
    ids = [p["id"] for p in photos]
    assert len(set(ids)) == len(ids), [i for i, n in Counter(ids).items() if n > 1]
    assert all(re.fullmatch(r"[0-9a-f]{64}", p["sha256"]) for p in photos)
    assert len({p["sha256"] for p in photos}) == len(photos), "the same file is listed twice"
    assert len({(p["package"], p["path"]) for p in photos}) == len(photos)
    assert all(p["license"].strip() and p["copyright"].strip() for p in photos)
    packages = {row["package"] for row in _tsv("packages.tsv")}
    assert {p["package"] for p in photos} <= packages
    splits = Counter(p["split"] for p in photos)
    assert set(splits) == {"train", "val", "test"}
    assert 0.6 <= splits["train"] / len(photos) <= 0.8
    assert 0.1 <= splits["val"] / len(photos) <= 0.2 and 0.1 <= splits["test"] / len(photos) <= 0.2


def test_fixed_crops_lie_inside_validation_and_test_photos():
    photos = {p["id"]: p for p in _tsv("photos.tsv")}
    crops = _tsv("crops.tsv")
    assert len({(c["id"], c["crop"]) for c in crops}) == len(crops)
    assert len({(c["id"], c["scale"], c["left"], c["top"]) for c in crops}) == len(crops), "a crop is listed twice"
    for c in crops:
        p = photos[c["id"]]
        assert c["split"] == p["split"] and p["split"] in ("val", "test")
        w, h, scale = int(p["width"]), int(p["height"]), int(c["scale"])
        f = scale / min(w, h)
        rw, rh = max(scale, round(w * f)), max(scale, round(h * f))
        assert 0 <= int(c["left"]) <= rw - 64 and 0 <= int(c["top"]) <= rh - 64, c
    per_split = Counter(c["split"] for c in crops)
    assert per_split["test"] >= 200 and per_split["val"] >= 200  # the study's 200 test pairs
    assert {c["id"] for c in crops} == {i for i, p in photos.items() if p["split"] != "train"}


def _build(*argv: str) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("scenes_build", SCENES / "build.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.main(list(argv))


def test_build_writes_a_prepared_folder_that_zoo_reads_by_split(tmp_path):
    """build.py on two synthetic 'photographs': crops per split, split lists zoo's data code
    reads, and a file whose sha256 differs from the manifest stops it with nothing written."""
    import hashlib

    import pytest
    from PIL import Image

    from zoo.data import open_data, render

    unpacked = tmp_path / "unpacked"
    rows, crops = [], []
    for i, split in enumerate(("train", "test")):
        path = unpacked / "pkg" / "usr" / f"p{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(render(i, 0, 200)).resize((300, 200)).save(path)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        rows.append(f"p{i}\tpkg\tusr/p{i}.png\t{digest}\t300\t200\tGPL-2+\tsomeone\t{split}")
    crops = ["p1\ttest\t0\t128\t0\t0", "p1\ttest\t1\t128\t64\t64", "p1\ttest\t2\t256\t320\t192"]
    photos_tsv, crops_tsv = tmp_path / "photos.tsv", tmp_path / "crops.tsv"
    photos_tsv.write_text("id\tpackage\tpath\tsha256\twidth\theight\tlicense\tcopyright\tsplit\n" + "\n".join(rows) + "\n")
    crops_tsv.write_text("id\tsplit\tcrop\tscale\tleft\ttop\n" + "\n".join(crops) + "\n")
    out = tmp_path / "scenes"
    _build("--unpacked", str(unpacked), "--out", str(out), "--photos", str(photos_tsv), "--crops", str(crops_tsv))
    test = open_data(out, resolution=64, split="test")
    assert len(test) == 3 and test[0]["name"].startswith("images/test/p1__c")
    train = open_data(out, resolution=64, split="train")
    # 64 px: 1 cell; 128 px (192x128): 3 x 2; 256 px (384x256): 6 x 4
    assert len(train) == 1 + 6 + 24 and all(f.name.startswith("p0__") for f in train.files)
    assert tuple(test[0]["image"].shape) == (3, 64, 64)

    (unpacked / "pkg" / "usr" / "p1.png").write_bytes(b"changed")
    with pytest.raises(SystemExit, match="sha256"):
        _build("--unpacked", str(unpacked), "--out", str(tmp_path / "again"), "--photos", str(photos_tsv), "--crops", str(crops_tsv))
    assert not (tmp_path / "again").exists() and not (tmp_path / "again.partial").exists()
