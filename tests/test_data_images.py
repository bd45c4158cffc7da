"""Image folders: formats and modes, resize + crop, flips, damaged files, split lists."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from zoo.data import ImageFolderDataset, open_data, render
from zoo.errors import ZooError


def _write_formats(root):
    (root / "sub" / "deeper").mkdir(parents=True)
    rgb = render(0, 1, 40)
    Image.fromarray(rgb).save(root / "a.jpg", quality=95)
    Image.fromarray(rgb).save(root / "sub" / "b.webp")
    Image.fromarray(rgb).save(root / "sub" / "c.bmp")
    Image.fromarray(rgb[..., 0]).save(root / "sub" / "gray.png")
    Image.fromarray(np.concatenate([rgb, np.full((40, 40, 1), 255, np.uint8)], -1)).save(root / "sub" / "deeper" / "rgba.png")
    Image.fromarray((rgb[..., 1].astype(np.uint16) * 257)).save(root / "sub" / "deeper" / "16bit.png")
    Image.fromarray(rgb).convert("CMYK").save(root / "cmyk.jpg")
    (root / "notes.txt").write_text("not an image")


def test_every_format_and_mode_becomes_rgb(tmp_path):
    _write_formats(tmp_path)
    ds = ImageFolderDataset(tmp_path, resolution=32)
    names = sorted(ds[i]["name"] for i in range(len(ds)))
    assert names == ["a", "cmyk", "sub/b", "sub/c", "sub/deeper/16bit", "sub/deeper/rgba", "sub/gray"]
    for i in range(len(ds)):
        img = ds[i]["image"]
        assert img.shape == (3, 32, 32) and img.min() >= -1 and img.max() <= 1
    by = {ds[i]["name"]: ds[i]["image"] for i in range(len(ds))}
    g = by["sub/gray"]
    assert np.allclose(g[0], g[1]) and np.allclose(g[1], g[2])  # gray -> 3 equal channels
    assert np.allclose(by["sub/deeper/16bit"][0], by["sub/deeper/16bit"][2])
    assert np.allclose(by["sub/deeper/rgba"], by["sub/c"])  # opaque alpha dropped; bmp lossless
    assert (by["cmyk"] - by["sub/c"]).abs().mean() < 0.1  # CMYK round trip


def test_resize_shorter_side_then_center_crop(tmp_path):
    img = np.zeros((40, 80, 3), np.uint8)
    img[:, :20] = (255, 0, 0)  # left quarter red: cropped away by the center crop
    img[:, 20:60] = (0, 255, 0)
    Image.fromarray(img).save(tmp_path / "wide.png")
    x = ImageFolderDataset(tmp_path, resolution=20)[0]["image"]
    assert x.shape == (3, 20, 20)
    assert x[1, :, 1:-1].min() > 0.9 and x[0, :, 1:-1].max() < -0.9  # green (edge columns blend through the bicubic kernel)


def test_random_crop_and_flip_are_seeded(tmp_path):
    arr = np.tile(np.arange(64, dtype=np.uint8)[None, :, None] * 4, (32, 1, 3))
    Image.fromarray(arr).save(tmp_path / "ramp.png")
    a = ImageFolderDataset(tmp_path, resolution=16, crop="random", flip=True, seed=1)
    b = ImageFolderDataset(tmp_path, resolution=16, crop="random", flip=True, seed=1)
    assert all(np.array_equal(a[0]["image"], b[0]["image"]) for _ in range(3))
    outs = {ImageFolderDataset(tmp_path, resolution=16, crop="random", flip=True, seed=s)[0]["image"][0, 0, 0].item() for s in range(12)}
    assert len(outs) > 2  # different crops/flips for different seeds


def test_damaged_images_are_skipped_counted_or_stop_with_strict(tmp_path):
    Image.fromarray(render(0, 0, 32)).save(tmp_path / "a.png")
    Image.fromarray(render(1, 0, 32)).save(tmp_path / "c.png")
    good = (tmp_path / "a.png").read_bytes()
    (tmp_path / "b.png").write_bytes(good[: len(good) // 2])  # truncated
    (tmp_path / "d.jpg").write_bytes(b"garbage")  # corrupt
    ds = ImageFolderDataset(tmp_path, resolution=32)
    with pytest.warns(UserWarning, match="skipping unreadable image .*b.png"):
        item = ds[1]
    assert item["name"] == "c"
    with pytest.warns(UserWarning, match="2 skipped so far"):
        ds[3]
    assert len(ds.skipped) == 2
    with pytest.raises(ZooError, match="stopped because of --strict"):
        ImageFolderDataset(tmp_path, resolution=32, strict=True)[1]


def test_empty_and_missing_folders(tmp_path):
    with pytest.raises(ZooError, match="no images"):
        ImageFolderDataset(tmp_path, resolution=32)
    with pytest.raises(ZooError, match="does not exist"):
        ImageFolderDataset(tmp_path / "nope", resolution=32)
    with pytest.raises(ZooError, match="valid names: shapes"):
        open_data(str(tmp_path / "nope"), 32)


def test_unknown_crop_is_a_user_error(tmp_path):
    Image.fromarray(render(0, 0, 16)).save(tmp_path / "a.png")
    with pytest.raises(ZooError, match="unknown crop 'corner'; valid choices: center, random"):
        ImageFolderDataset(tmp_path, resolution=16, crop="corner")
