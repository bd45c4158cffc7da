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
