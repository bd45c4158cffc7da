"""`shapes` determinism and variety; `zoo data synth`; eval sets."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from zoo.data import ShapesDataset, render
from zoo.data.evalset import load_eval_set


def test_shapes_is_deterministic_per_index_and_seed():
    assert np.array_equal(render(3, 7, 48), render(3, 7, 48))
    assert not np.array_equal(render(3, 7, 48), render(4, 7, 48))
    assert not np.array_equal(render(3, 7, 48), render(3, 8, 48))
    a, b = ShapesDataset(32, seed=1, split="train"), ShapesDataset(32, seed=1, split="test")
    assert not np.array_equal(a[0]["image"], b[0]["image"])  # splits never share an image


def test_shapes_is_varied():
    imgs = [render(i, 0, 64).astype(np.int16) for i in range(24)]
    flat = np.stack([im.reshape(-1) for im in imgs])
    assert len({im.tobytes() for im in imgs}) == 24
    assert np.abs(flat[:, None] - flat[None]).mean(-1)[~np.eye(24, dtype=bool)].min() > 5  # no near-duplicates
    colors = [len(np.unique(im.reshape(-1, 3), axis=0)) for im in imgs]
    assert min(colors) >= 3 and np.median(colors) >= 6  # background + shapes + lines
    # structure everywhere: every image has strong edges (shapes/lines/texture), not flat color
    edges = [np.abs(np.diff(im, axis=1)).max() for im in imgs]
    assert min(edges) > 40


def test_synth_writes_identical_files(cli, tmp_path):
    for out in ("a", "b"):
        res = cli("data", "synth", "--name", "shapes", "--count", 3, "--size", 40, "--seed", 5, "--out", tmp_path / out)
        assert res.exit_code == 0, res.output
    for i in range(3):
        a = (tmp_path / "a" / f"{i:06d}.png").read_bytes()
        assert a == (tmp_path / "b" / f"{i:06d}.png").read_bytes()
        assert np.array_equal(np.asarray(Image.open(tmp_path / "a" / f"{i:06d}.png")), ShapesDataset(40, seed=5)[i]["image"].add(1).mul(127.5).round().byte().permute(1, 2, 0).numpy())
    res = cli("data", "synth", "--name", "imagenet", "--count", 1, "--out", tmp_path / "c")
    assert res.exit_code == 2 and "unknown dataset 'imagenet'; valid choices: shapes" in res.output


def test_eval_set_from_kind(cli, tmp_path):
    args = ["data", "eval-set", "--data", "shapes", "--masks", "lama-thick", "--count", 8, "--size", 32, "--seed", 2]
    assert cli(*args, "--out", tmp_path / "a").exit_code == 0
    assert cli(*args, "--out", tmp_path / "b", "--json").exit_code == 0
    a, b = load_eval_set(tmp_path / "a"), load_eval_set(tmp_path / "b")
    assert a.hash == b.hash and len(a) == 8 and a.resolution == 32
    assert sum(a.manifest["bin_counts"].values()) == 8
    for i, item in enumerate(a.items):
        img, mask = a.load(i)
        assert img.shape == (3, 32, 32) and mask.shape == (1, 32, 32)
        assert abs(float(mask.mean()) - item["hole_ratio"]) < 1e-6
        assert item["bin"] == f"{min(int(item['hole_ratio'] * 10), 9) * 10}-{min(int(item['hole_ratio'] * 10), 9) * 10 + 10}%"
    c = cli(*args[:-1], 3, "--out", tmp_path / "c")
    assert c.exit_code == 0 and load_eval_set(tmp_path / "c").hash != a.hash


def test_eval_set_from_mask_folder_with_convention_and_size_check(cli, tmp_path):
    black = tmp_path / "black"
    black.mkdir()
    for i in range(3):
        m = np.full((32, 32), 255, np.uint8)
        m[4 : 10 + i, 4:20] = 0  # hole-black: 0 = hole
        Image.fromarray(m).save(black / f"m{i}.png")
    res = cli("data", "eval-set", "--data", "shapes", "--masks", black, "--mask-convention", "hole-black", "--count", 3, "--size", 32, "--out", tmp_path / "e")
    assert res.exit_code == 0, res.output
    es = load_eval_set(tmp_path / "e")
    assert es.load(0)[1][0, 4:10, 4:20].all() and es.load(0)[1].sum() == 6 * 16
    res = cli("data", "eval-set", "--data", "shapes", "--masks", black, "--count", 3, "--size", 48, "--out", tmp_path / "f")
    assert res.exit_code == 2 and "is 32x32 but the images are 48x48" in res.output
    res = cli("data", "eval-set", "--data", "shapes", "--masks", black, "--mask-convention", "hole-black", "--count", 3, "--size", 64, "--resize-masks", "--out", tmp_path / "g")
    assert res.exit_code == 0 and "Warning: resized 3 mask(s) to 64x64" in res.output
    big = load_eval_set(tmp_path / "g").load(0)[1]
    assert big.shape == (1, 64, 64) and big[0, 8:20, 8:40].all() and big.sum() == 4 * 6 * 16


def test_eval_set_bad_input(cli, tmp_path):
    res = cli("data", "eval-set", "--data", "shapes", "--masks", "wide", "--count", 2, "--out", tmp_path / "x")
    assert res.exit_code == 2 and "unknown mask kind 'wide'; valid choices:" in res.output
    Image.fromarray(render(0, 0, 32)).save(tmp_path / "one.png")
    res = cli("data", "eval-set", "--data", tmp_path, "--masks", "box", "--count", 5, "--size", 32, "--out", tmp_path / "y")
    assert res.exit_code == 2 and "larger than the 1 images" in res.output
    res = cli("data", "eval-set", "--data", "nowhere", "--masks", "box", "--count", 1, "--out", tmp_path / "z")
    assert res.exit_code == 2 and "neither a folder nor a registered dataset" in res.output
    assert "Error" in cli("data", "eval-set", "--data", "shapes", "--masks", "box", "--count", 0, "--out", tmp_path / "w").output


def test_eval_set_manifest_is_compatible(tmp_path):
    from zoo.data.evalset import build_eval_set

    es = build_eval_set("shapes", "center", 2, 0, tmp_path / "e", resolution=16, progress=False)
    man = json.loads((tmp_path / "e" / "manifest.json").read_text())
    assert {"hash", "resolution", "items"} <= set(man)
    assert set(man["items"][0]) >= {"name", "image", "mask", "hole_ratio", "bin"}
    assert es.image_dir.is_dir() and es.mask_dir.is_dir()


def test_eval_set_spreads_over_photographs(tmp_path):
    """A small eval set of a folder of crops takes one crop of every photograph before a
    second of any (benchmarks/scenes names crops PHOTO__cNN); plain names keep their order."""
    from zoo.data.evalset import build_eval_set, spread_order

    rng = np.random.default_rng(0)
    src = tmp_path / "crops"
    src.mkdir()
    for photo in ("alpha", "beta", "gamma"):
        for c in range(4):
            Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(src / f"{photo}__c{c:02d}.png")
    es = build_eval_set(str(src), "center", 5, 0, tmp_path / "e", resolution=16, progress=False)
    man = json.loads((tmp_path / "e" / "manifest.json").read_text())
    sources = [it["source"] for it in man["items"]]
    assert sources == ["alpha__c00", "beta__c00", "gamma__c00", "alpha__c01", "beta__c01"]
    assert man["selection"] == "round-robin by photograph" and len(es.manifest["items"]) == 5
    assert spread_order(["a", "b", "c"]) == [0, 1, 2]  # every name its own photograph: order kept
    assert spread_order(["p__1", "p__2", "q__1", "p__3"]) == [0, 2, 1, 3]
