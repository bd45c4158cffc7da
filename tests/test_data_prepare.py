"""`zoo data prepare` for the published folder layouts, split lists, manifest, bad input."""

from __future__ import annotations

import hashlib
import json

from PIL import Image

from zoo.data import open_data, render


def _img(path, i, size=(40, 30)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(render(i, 0, max(size))[: size[1], : size[0]]).save(path)


def _prepare(cli, *args):
    return cli("data", "prepare", *args)


def test_folder_layout_with_split_subfolders(cli, tmp_path):
    src = tmp_path / "src"
    for i in range(3):
        _img(src / "train" / f"t{i}.png", i)
    _img(src / "val" / "v0.jpg", 5)
    _img(src / "test" / "deep" / "x0.png", 6)
    res = _prepare(cli, src, "--layout", "folder", "--size", 24, "--out", tmp_path / "out")
    assert res.exit_code == 0, res.output
    man = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert man["counts"] == {"train": 3, "val": 1, "test": 1} and man["split_source"] == "subfolders"
    for f in man["files"]:
        data = (tmp_path / "out" / f["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == f["sha256"] and (f["width"], f["height"]) == (24, 24)
    assert (tmp_path / "out" / "splits" / "test.txt").read_text() == "images/test/deep/x0.png\n"
    val = open_data(str(tmp_path / "out"), resolution=24, split="val")
    assert len(val) == 1 and val[0]["name"] == "images/val/v0"
    assert len(open_data(str(tmp_path / "out"), resolution=24, split="train")) == 3


def test_resume_keeps_existing_outputs(cli, tmp_path):
    src = tmp_path / "src"
    for i in range(3):
        _img(src / f"{i}.png", i)
    args = ["--layout", "folder", "--size", 16, "--out", tmp_path / "out", "--val-count", 0, "--test-count", 0]
    assert _prepare(cli, src, *args).exit_code == 0
    marker = tmp_path / "out" / "images" / "0.png"
    Image.new("RGB", (16, 16), (1, 2, 3)).save(marker)  # a file the resumed run must keep
    assert _prepare(cli, src, *args, "--resume").exit_code == 0
    assert Image.open(marker).getpixel((0, 0)) == (1, 2, 3)
    man = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert next(f for f in man["files"] if f["path"] == "images/0.png")["sha256"] == hashlib.sha256(marker.read_bytes()).hexdigest()
    assert _prepare(cli, src, *args).exit_code == 0  # without --resume: rewritten
    assert Image.open(marker).getpixel((0, 0)) != (1, 2, 3)


def test_celeba_hq_one_based_names_and_lama_lists(cli, tmp_path):
    src = tmp_path / "data256x256"
    for n in range(1, 11):  # data256x256.zip names 00001.jpg.. ; LaMa re-indexes to 0-based
        _img(src / f"{n:05d}.jpg", n, (32, 32))
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "train_shuffled.flist").write_text("".join(f"{i}.jpg\n" for i in (0, 2, 4, 5, 6, 7, 8, 9)))
    (lists / "val_shuffled.flist").write_text("3.jpg\n1.jpg\n")  # LaMa's visual-test images = our test
    res = _prepare(cli, src, "--layout", "celeba-hq", "--size", 16, "--out", tmp_path / "out", "--split-lists", lists)
    assert res.exit_code == 0, res.output
    man = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert man["split_source"] == "lama-flist"
    assert (tmp_path / "out" / "splits" / "test.txt").read_text().split() == ["images/00002.jpg".replace(".jpg", ".png"), "images/00004.png"]
    assert man["counts"]["train"] + man["counts"]["val"] == 8 and man["counts"]["val"] >= 0


def test_celeba_hq_official_partition(cli, tmp_path):
    src = tmp_path / "CelebA-HQ-img"
    for n in range(4):
        _img(src / f"{n}.jpg", n, (32, 32))
    (src / "CelebA-HQ-to-CelebA-mapping.txt").write_text("idx orig_idx orig_file\n0 1 000002.jpg\n1 2 000003.jpg\n2 3 000004.jpg\n3 4 000005.jpg\n")
    (src / "list_eval_partition.txt").write_text("000002.jpg 0\n000003.jpg 1\n000004.jpg 2\n000005.jpg 0\n")
    res = _prepare(cli, src, "--layout", "celeba-hq", "--size", 16, "--out", tmp_path / "out")
    assert res.exit_code == 0, res.output
    man = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert man["split_source"] == "celeba-partition" and man["counts"] == {"train": 2, "val": 1, "test": 1}
    assert (tmp_path / "out" / "splits" / "test.txt").read_text() == "images/2.png\n"


def test_ffhq_metadata_json_wins(cli, tmp_path):
    src = tmp_path / "ffhq"
    for n in (0, 1):
        _img(src / "images1024x1024" / "00000" / f"{n:05d}.png", n, (32, 32))
    (src / "ffhq-dataset-v2.json").write_text(json.dumps({"0": {"category": "validation"}, "1": {"category": "training"}}))
    assert _prepare(cli, src, "--layout", "ffhq", "--size", 16, "--out", tmp_path / "out").exit_code == 0
    man = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert man["split_source"] == "ffhq-dataset-v2.json"
    assert (tmp_path / "out" / "splits" / "test.txt").read_text() == "images/images1024x1024/00000/00000.png\n"


def test_ffhq_split_rule(cli, tmp_path):
    src = tmp_path / "images1024x1024"
    for n in (0, 59999, 60000, 69999):
        _img(src / f"{n // 1000 * 1000:05d}" / f"{n:05d}.png", n % 7, (32, 32))
    res = _prepare(cli, src, "--layout", "ffhq", "--size", 16, "--out", tmp_path / "out")
    assert res.exit_code == 0, res.output
    test = (tmp_path / "out" / "splits" / "test.txt").read_text().split()
    assert test == ["images/60000/60000.png", "images/69000/69999.png"]
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["counts"] == {"train": 2, "val": 2, "test": 2}


def test_places2_layout(cli, tmp_path):
    src = tmp_path / "places"
    _img(src / "data_large" / "a" / "abbey" / "00000001.jpg", 1, (48, 32))
    _img(src / "data_large" / "b" / "bakery" / "shop" / "00000001.jpg", 2, (48, 32))
    _img(src / "val_large" / "Places365_val_00000001.jpg", 3, (48, 32))
    res = _prepare(cli, src, "--layout", "places2", "--size", 16, "--out", tmp_path / "out")
    assert res.exit_code == 0, res.output
    man = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert man["counts"] == {"train": 2, "val": 0, "test": 1}  # test = val_large; no test_large: empty val
    assert (tmp_path / "out" / "splits" / "test.txt").read_text() == "images/val_large/Places365_val_00000001.png\n"
    assert "the val split is empty" in res.output
    res = _prepare(cli, tmp_path / "src_missing_layout", "--layout", "places2", "--out", tmp_path / "o2")
    assert res.exit_code == 2


def test_damaged_images_are_counted_or_stop_with_strict(cli, tmp_path):
    src = tmp_path / "src"
    _img(src / "a.png", 0)
    _img(src / "b.png", 1)
    (src / "c.png").write_bytes((src / "a.png").read_bytes()[:60])
    res = _prepare(cli, src, "--layout", "folder", "--size", 16, "--out", tmp_path / "out", "--val-count", 0, "--test-count", 0)
    assert res.exit_code == 0
    assert "Warning: skipping unreadable image" in res.output and "skipped 1 unreadable" in res.output
    assert len(json.loads((tmp_path / "out" / "manifest.json").read_text())["skipped"]) == 1
    res = _prepare(cli, src, "--layout", "folder", "--size", 16, "--out", tmp_path / "o2", "--strict")
    assert res.exit_code == 2 and "c.png" in res.output and "--strict" in res.output


def test_bad_layout_and_empty_folder(cli, tmp_path):
    (tmp_path / "empty").mkdir()
    res = _prepare(cli, tmp_path / "empty", "--layout", "imagenet", "--out", tmp_path / "o")
    assert res.exit_code == 2 and "unknown layout 'imagenet'; valid choices: celeba-hq, ffhq, folder, places2" in res.output
    res = _prepare(cli, tmp_path / "empty", "--layout", "folder", "--out", tmp_path / "o")
    assert res.exit_code == 2 and "no images" in res.output
    res = _prepare(cli, tmp_path / "absent", "--layout", "folder", "--out", tmp_path / "o")
    assert res.exit_code == 2 and "not a folder" in res.output


def test_unknown_split_of_prepared_folder(cli, tmp_path):
    src = tmp_path / "src"
    for i in range(3):
        _img(src / "train" / f"{i}.png", i)
    _prepare(cli, src, "--layout", "folder", "--size", 16, "--out", tmp_path / "out")
    res = cli("data", "eval-set", "--data", tmp_path / "out", "--masks", "box", "--count", 1, "--size", 16, "--split", "holdout", "--out", tmp_path / "e")
    assert res.exit_code == 2 and "valid choices: test, train, val" in res.output
    res = cli("data", "eval-set", "--data", tmp_path / "out", "--masks", "box", "--count", 1, "--size", 16, "--out", tmp_path / "e")
    assert res.exit_code == 2 and "split 'test'" in res.output and "is empty" in res.output
