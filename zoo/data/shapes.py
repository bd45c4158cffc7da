"""``shapes``: the built-in procedural dataset (no files, no download).

Each image is a function of (index, seed, size) only, computed in float64 numpy so the
bytes are the same on every machine. The content makes inpainting a real task: a smooth
gradient or a periodic texture (stripes, grid or checkers at a random frequency and angle)
as background, then geometric shapes (discs, rectangles, triangles) and long straight lines
that cross wherever a hole may fall, all in varied colors.
"""

from __future__ import annotations

import numpy as np
import torch

from zoo.imageio import uint8_to_tensor


def _rng(index: int, seed: int) -> np.random.Generator:
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, int(index) & 0xFFFFFFFF, 0x5A4E])


def _color(rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(0.0, 1.0, size=3)


def _background(rng: np.random.Generator, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    kind = rng.choice(["gradient", "stripes", "grid", "checkers"], p=[0.25, 0.3, 0.2, 0.25])
    c0, c1 = _color(rng), _color(rng)
    angle = rng.uniform(0, np.pi)
    u = x * np.cos(angle) + y * np.sin(angle)
    v = -x * np.sin(angle) + y * np.cos(angle)
    if kind == "gradient":
        t = (u - u.min()) / max(np.ptp(u), 1e-9)
    else:
        freq = rng.uniform(3.0, 12.0)  # periods across the image
        phase = rng.uniform(0, 2 * np.pi)
        if kind == "stripes":
            t = 0.5 + 0.5 * np.sign(np.sin(2 * np.pi * freq * u + phase))
        elif kind == "grid":
            width = rng.uniform(0.1, 0.3)
            fu = np.mod(freq * u + phase, 1.0) < width
            fv = np.mod(freq * v + phase, 1.0) < width
            t = (fu | fv).astype(np.float64)
        else:
            t = ((np.floor(freq * u + phase) + np.floor(freq * v + phase)) % 2).astype(np.float64)
    return c0[None, None] * (1 - t[..., None]) + c1[None, None] * t[..., None]


def _paint(img: np.ndarray, inside: np.ndarray, color: np.ndarray) -> None:
    img[inside] = color


def _shapes(rng: np.random.Generator, img: np.ndarray, x: np.ndarray, y: np.ndarray, size: int) -> None:
    for _ in range(int(rng.integers(2, 6))):
        kind = rng.choice(["disc", "rect", "triangle"])
        cx, cy = rng.uniform(0.1, 0.9, size=2)
        r = rng.uniform(0.08, 0.25)
        color = _color(rng)
        if kind == "disc":
            inside = (x - cx) ** 2 + (y - cy) ** 2 <= r**2
        elif kind == "rect":
            a = rng.uniform(0, np.pi)
            du = (x - cx) * np.cos(a) + (y - cy) * np.sin(a)
            dv = -(x - cx) * np.sin(a) + (y - cy) * np.cos(a)
            inside = (np.abs(du) <= r) & (np.abs(dv) <= r * rng.uniform(0.4, 1.0))
        else:
            angles = rng.uniform(0, 2 * np.pi) + np.array([0, 2 * np.pi / 3, 4 * np.pi / 3])
            px, py = cx + r * np.cos(angles), cy + r * np.sin(angles)
            inside = np.ones_like(x, dtype=bool)
            for i in range(3):
                j = (i + 1) % 3
                cross = (px[j] - px[i]) * (y - py[i]) - (py[j] - py[i]) * (x - px[i])
                inside &= cross >= 0
        _paint(img, inside, color)
    # Straight lines across the whole image: they must be continued through any hole.
    for _ in range(int(rng.integers(1, 4))):
        a = rng.uniform(0, np.pi)
        offset = rng.uniform(-0.3, 0.3)
        width = max(rng.uniform(0.01, 0.04), 1.0 / size)
        dist = np.abs((x - 0.5) * np.sin(a) - (y - 0.5) * np.cos(a) - offset)
        _paint(img, dist <= width / 2, _color(rng))


def render(index: int, seed: int = 0, size: int = 64) -> np.ndarray:
    """The image ``index`` of the dataset with ``seed``: (size, size, 3) uint8."""
    rng = _rng(index, seed)
    coords = (np.arange(size, dtype=np.float64) + 0.5) / size
    x, y = np.meshgrid(coords, coords)
    img = _background(rng, x, y)
    _shapes(rng, img, x, y, size)
    return np.clip(np.floor(img * 255.0 + 0.5), 0, 255).astype(np.uint8)


class ShapesDataset(torch.utils.data.Dataset):
    """``length`` procedural images at ``resolution``; item ``i`` is ``render(i, seed)``.

    Splits use disjoint seeds so train, val and test never share an image. ``crop="random"``
    and ``flip`` are training augmentation, used by :meth:`draw` (the training engine's
    access): a random crop is a ``resolution`` window of the image rendered 1/8 larger, a
    flip mirrors it with probability 1/2. ``dataset[i]`` is always the fixed image.
    """

    SPLIT_OFFSETS = {"train": 0, "val": 1_000_003, "test": 2_000_006}

    def __init__(self, resolution: int = 64, seed: int = 0, length: int = 10_000, split: str = "train", crop: str = "center", flip: bool = False) -> None:
        self.resolution = int(resolution)
        self.seed = int(seed) + self.SPLIT_OFFSETS.get(split, 0)
        self.length = int(length)
        self.split = split
        if crop not in ("center", "random"):
            from zoo.errors import choices_error

            raise choices_error("crop", crop, ("center", "random"))
        self.crop, self.flip = crop, bool(flip)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict:
        arr = render(index, self.seed, self.resolution)
        return {"image": uint8_to_tensor(arr), "name": f"shapes_{index:06d}"}

    def draw(self, index: int, key: int | None) -> dict:
        """Item ``index`` with its crop and flip drawn for ``key`` (the sample position)."""
        if self.crop == "center" and not self.flip:
            return self[index]
        rng = np.random.default_rng([self.seed & 0xFFFFFFFF, int(index), 0 if key is None else int(key) & 0xFFFFFFFF, 0xC4])
        size = self.resolution
        if self.crop == "random":
            big = size + max(1, size // 8)
            top, left = (int(v) for v in rng.integers(0, big - size + 1, size=2))
            arr = render(index, self.seed, big)[top : top + size, left : left + size]
        else:
            arr = render(index, self.seed, size)
        if self.flip and rng.random() < 0.5:
            arr = arr[:, ::-1]
        return {"image": uint8_to_tensor(np.ascontiguousarray(arr)), "name": f"shapes_{index:06d}"}


def write_dataset(name: str, count: int, size: int, seed: int, out_dir, split: str = "train", progress: bool = True) -> dict:
    """Write items ``0..count-1`` of the registered dataset ``name`` as PNGs + manifest.json."""
    import hashlib
    import json
    from pathlib import Path

    from tqdm.auto import tqdm

    from zoo.data import open_data
    from zoo.errors import ZooError, choices_error
    from zoo.fsutil import check_output_dir, removed_on_failure, write_text
    from zoo.imageio import save_image

    from zoo.data import dataset_names

    if name not in dataset_names():
        raise choices_error("dataset", name, dataset_names())
    if count < 1:
        raise ZooError("--count must be at least 1")
    if size < 8:
        raise ZooError("--size must be at least 8")
    dataset = open_data(name, resolution=size, split=split, seed=seed)
    if count > len(dataset):
        raise ZooError(f"--count {count} is larger than the {len(dataset)} images of {name}")
    out = check_output_dir(out_dir, {}, overwrite=True)
    files = []
    with removed_on_failure(out):
        for i in tqdm(range(count), desc=f"synth {name}", disable=not progress):
            path = out / f"{i:06d}.png"
            save_image(path, dataset[i]["image"])
            files.append({"path": path.name, "index": i, "sha256": hashlib.sha256(path.read_bytes()).hexdigest()})
        manifest = {"version": 1, "dataset": name, "split": split, "seed": seed, "size": size, "count": count, "files": files}
        write_text(out / "manifest.json", json.dumps(manifest, indent=1))
    return manifest
