"""`zoo masks generate|stats|convert`: byte-identical output, conventions, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from zoo.imageio import load_mask, mask_from_array


def _gen(cli, out, kind="lama-thick", seed=3, count=6, size=48):
    return cli("masks", "generate", "--kind", kind, "--size", size, "--count", count, "--seed", seed, "--out", out)


def test_generate_is_byte_identical_for_the_same_seed(cli, tmp_path):
    assert _gen(cli, tmp_path / "a").exit_code == 0
    assert _gen(cli, tmp_path / "b").exit_code == 0
    assert _gen(cli, tmp_path / "c", seed=4).exit_code == 0
    names = sorted(p.name for p in (tmp_path / "a").glob("*.png"))
    assert names == [f"{i:06d}.png" for i in range(6)]
    for n in names:
        assert (tmp_path / "a" / n).read_bytes() == (tmp_path / "b" / n).read_bytes()
    assert any((tmp_path / "a" / n).read_bytes() != (tmp_path / "c" / n).read_bytes() for n in names)
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["kind"] == "lama-thick" and manifest["count"] == 6 and manifest["seed"] == 3
    for item in manifest["items"]:
        png = np.asarray(Image.open(tmp_path / "a" / item["file"]))
        assert png.dtype == np.uint8 and set(np.unique(png)) <= {0, 255}
        assert abs((png == 255).mean() - item["hole_ratio"]) < 1e-6


def test_stats_json_and_histogram(cli, tmp_path):
    _gen(cli, tmp_path / "m", kind="repaint-nn2", count=4)
    res = cli("masks", "stats", tmp_path / "m", "--json")
    assert res.exit_code == 0
    stats = json.loads(res.stdout)
    assert stats["count"] == 4 and stats["mean"] == pytest.approx(0.75) and stats["std"] == pytest.approx(0.0)
    assert stats["histogram"]["70-80%"] == 4
    text = cli("masks", "stats", tmp_path / "m").output
    assert "mean 0.7500" in text and "70-80%" in text and "#" in text


def test_conventions_round_trip(cli, tmp_path):
    _gen(cli, tmp_path / "white", kind="mat-small", count=4)
    black = tmp_path / "black"
    black.mkdir()
    for p in (tmp_path / "white").glob("*.png"):  # the RePaint / diffusers convention: 0 = hole
        Image.fromarray(255 - np.asarray(Image.open(p))).save(black / p.name)
    w = json.loads(cli("masks", "stats", tmp_path / "white", "--json").stdout)
    b = json.loads(cli("masks", "stats", black, "--json", "--mask-convention", "hole-black").stdout)
    assert b["mean"] == pytest.approx(w["mean"])
    assert cli("masks", "convert", black, "--mask-convention", "hole-black", "--out", tmp_path / "back").exit_code == 0
    for p in (tmp_path / "white").glob("*.png"):
        assert np.array_equal(np.asarray(Image.open(p)), np.asarray(Image.open(tmp_path / "back" / p.name)))


def test_gray_rgb_rgba_and_nonbinary_mask_files(tmp_path):
    hole = np.zeros((8, 10), np.uint8)
    hole[2:5, 3:7] = 255
    Image.fromarray(hole).save(tmp_path / "gray.png")
    Image.fromarray(np.stack([hole] * 3, -1)).save(tmp_path / "rgb.png")
    Image.fromarray(np.stack([hole] * 3 + [np.full_like(hole, 255)], -1)).save(tmp_path / "rgba.png")
    Image.fromarray(np.stack([np.zeros_like(hole)] * 3 + [hole], -1)).save(tmp_path / "alpha.png")  # mask in alpha
    expected = (hole > 0).astype(np.float32)
    for name in ("gray", "rgb", "rgba", "alpha"):
        assert np.array_equal(load_mask(tmp_path / f"{name}.png")[0].numpy(), expected), name
    assert np.array_equal(load_mask(tmp_path / "gray.png", "hole-black")[0].numpy(), 1 - expected)
    soft = hole.copy()
    soft[0, 0] = 200
    with pytest.warns(UserWarning, match="not binary.*thresholded at 128"):
        m = mask_from_array(soft, name="soft.png")
    assert m[0, 0, 0] == 1


def test_stats_warns_about_nonbinary_masks(cli, tmp_path):
    arr = np.zeros((8, 8), np.uint8)
    arr[:4] = 180
    Image.fromarray(arr).save(tmp_path / "soft.png")
    res = cli("masks", "stats", tmp_path, "--json")
    assert res.exit_code == 0
    assert "Warning: 1 mask(s)" in res.stderr and "thresholded at 128" in res.stderr
    assert json.loads(res.stdout)["mean"] == pytest.approx(0.5)


def test_bad_input_messages(cli, tmp_path):
    res = _gen(cli, tmp_path / "x", kind="lama-wide")
    assert res.exit_code == 2 and "unknown mask kind 'lama-wide'; valid choices:" in res.output and "lama-thick-512" in res.output
    (tmp_path / "empty").mkdir()
    res = cli("masks", "stats", tmp_path / "empty")
    assert res.exit_code == 2 and "no mask files" in res.output
    res = cli("masks", "stats", tmp_path / "missing")
    assert res.exit_code == 2 and "folder does not exist" in res.output
    res = cli("masks", "stats", tmp_path / "empty", "--mask-convention", "hole-grey")
    assert res.exit_code == 2 and "hole-white" in res.output and "hole-black" in res.output
    res = _gen(cli, tmp_path / "y", count=0)
    assert res.exit_code == 2 and "--count must be at least 1" in res.output


def test_list_json_names_every_protocol(cli):
    names = {k["name"] for k in json.loads(cli("masks", "list", "--json").stdout)}
    for kind in ("lama-thin", "lama-medium", "lama-thick", "lama-thick-512", "mat-small", "mat-large", "lama-train", "mat-train",
                 "repaint-every-second-line", "repaint-half", "repaint-expand", "repaint-nn2", "box", "center", "outpaint"):
        assert kind in names


def test_check_reports_every_problem(cli, image_folder, tmp_path):
    images, masks = image_folder
    res = cli("masks", "check", images, masks)
    assert res.exit_code == 0 and "3 pair(s), 0 problem(s)" in res.output
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(masks / "img1.png")  # wrong size
    soft = np.zeros((40, 48), np.uint8)
    soft[5:9, 5:9] = 200
    Image.fromarray(soft).save(masks / "img2.png")  # non-binary
    res = cli("masks", "check", images, masks)
    assert res.exit_code == 2
    assert "img1.png is 10x10 but image" in res.output and "is 48x40" in res.output
    assert "img2.png is not binary" in res.output
    (masks / "img0.png").unlink()
    res = cli("masks", "check", images, masks)
    assert res.exit_code == 2 and "have no mask of the same name" in res.output


def test_plugins_add_mask_kinds_and_datasets(cli, tmp_path):
    from zoo import hookimpl
    from zoo.plugins import get_manager
    from zoo.spec import DatasetSpec, MaskGeneratorSpec

    class Extra:
        @hookimpl
        def zoo_register_mask_generators(self):
            def stripe(h, w, rng):
                m = np.zeros((h, w), np.float32)
                m[:, : w // 4] = 1
                return m

            return [MaskGeneratorSpec("left-quarter", "left quarter of the image", stripe)]

        @hookimpl
        def zoo_register_datasets(self):
            from zoo.data import ShapesDataset

            return [DatasetSpec("tiny-shapes", "4 shapes images", lambda resolution, split, seed: ShapesDataset(resolution, seed, length=4, split=split))]

    get_manager().register(Extra(), "extra")
    res = _gen(cli, tmp_path / "m", kind="left-quarter", count=2, size=32)
    assert res.exit_code == 0
    assert json.loads(cli("masks", "stats", tmp_path / "m", "--json").stdout)["mean"] == pytest.approx(0.25)
    res = cli("data", "eval-set", "--data", "tiny-shapes", "--masks", "left-quarter", "--count", 4, "--size", 16, "--out", tmp_path / "e")
    assert res.exit_code == 0, res.output
    res = cli("data", "eval-set", "--data", "tiny-shapes", "--masks", "left-quarter", "--count", 5, "--size", 16, "--out", tmp_path / "f")
    assert res.exit_code == 2 and "larger than the 4 images of tiny-shapes" in res.output
