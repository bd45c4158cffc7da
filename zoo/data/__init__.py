"""Datasets: image folders, the built-in ``shapes`` dataset, and named datasets from plugins.

``open_data(DATA, resolution)`` takes a registered dataset name or a folder of images and
returns a ``torch.utils.data.Dataset`` of dicts ``{"image": (3, H, W) in [-1, 1], "name"}``.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from zoo.errors import ZooError, ZooWarning, choices_error
from zoo.imageio import IMAGE_TYPES, list_images, to_rgb, uint8_to_tensor
from zoo.data.shapes import ShapesDataset, render

CROPS = ("center", "random")

__all__ = ["Augmented", "ImageFolderDataset", "ShapesDataset", "render", "open_data", "dataset_names", "resize_and_crop"]


def resize_and_crop(img: Image.Image, size: int, crop: str = "center", rng: np.random.Generator | None = None) -> Image.Image:
    """Resize the shorter side to ``size`` (bicubic, antialiased), then crop ``size``x``size``."""
    w, h = img.size
    scale = size / min(w, h)
    if (w, h) != (size, size):
        nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
        img = img.resize((nw, nh), Image.BICUBIC, reducing_gap=None)
        w, h = nw, nh
    if crop == "random":
        rng = rng or np.random.default_rng()
        left = int(rng.integers(0, w - size + 1))
        top = int(rng.integers(0, h - size + 1))
    else:
        left, top = (w - size) // 2, (h - size) // 2
    return img.crop((left, top, left + size, top + size))


class ImageFolderDataset(torch.utils.data.Dataset):
    """Images under a folder (recursive; png/jpg/jpeg/webp/bmp), resized and cropped.

    A damaged file is skipped with a warning and counted in ``skipped`` (``strict=True``
    raises instead). ``files`` may restrict the set to a split list.
    """

    def __init__(
        self,
        root: str | Path,
        resolution: int = 256,
        crop: str = "center",
        flip: bool = False,
        files: list[Path] | None = None,
        strict: bool = False,
        seed: int = 0,
    ) -> None:
        if crop not in CROPS:
            raise choices_error("crop", crop, CROPS)
        self.root = Path(root)
        self.files = files if files is not None else list_images(self.root)
        if not self.files:
            raise ZooError(f"no images ({IMAGE_TYPES}) found in {self.root}")
        self.resolution, self.crop, self.flip, self.strict, self.seed = resolution, crop, flip, strict, seed
        self.skipped: set[str] = set()

    def __len__(self) -> int:
        return len(self.files)

    def name_of(self, index: int) -> str:
        """File ``index``'s item name: its path under the root, without the suffix."""
        return self.files[index].relative_to(self.root).with_suffix("").as_posix()

    def _read(self, path: Path, index: int, key: int | None = None) -> np.ndarray:
        draw = torch.initial_seed() % (2**32) if key is None else int(key) & 0xFFFFFFFF
        rng = np.random.default_rng([self.seed, index, draw]) if self.crop == "random" or self.flip else None
        with Image.open(path) as img:
            img.load()
            rgb = resize_and_crop(to_rgb(img), self.resolution, self.crop, rng)
        arr = np.asarray(rgb)
        if self.flip and rng is not None and rng.random() < 0.5:
            arr = arr[:, ::-1]
        return arr

    def __getitem__(self, index: int) -> dict:
        return self.draw(index, None)

    def draw(self, index: int, key: int | None) -> dict:
        """Item ``index`` with its random crop / flip (when on) drawn for ``key``: the
        training engine passes the sample position, so each epoch sees other crops and
        flips, and the same key gives the same pixels (resumable). ``key=None`` draws from
        the process's torch seed (``dataset[index]``)."""
        for attempt in range(len(self.files)):
            i = (index + attempt) % len(self.files)
            path = self.files[i]
            try:
                arr = self._read(path, index, key)
            except Exception as exc:
                if self.strict:
                    raise ZooError(f"cannot read image {path} ({type(exc).__name__}); stopped because of --strict") from None
                if str(path) not in self.skipped:
                    self.skipped.add(str(path))
                    warnings.warn(ZooWarning(f"skipping unreadable image {path} ({type(exc).__name__}); {len(self.skipped)} skipped so far", "unreadable images skipped"), stacklevel=2)
                continue
            return {"image": uint8_to_tensor(arr), "name": self.name_of(i)}
        raise ZooError(f"no readable image in {self.root}")


def _registered() -> dict:
    from zoo.plugins import get_manager

    return {d.name: d for d in get_manager().collect("zoo_register_datasets")}


def dataset_names() -> list[str]:
    return sorted(_registered())


def open_data(data: str | Path, resolution: int = 64, split: str = "train", seed: int = 0, **kwargs) -> torch.utils.data.Dataset:
    """A registered dataset name or a folder of images -> Dataset.

    A folder written by ``zoo data prepare`` (``splits/*.txt`` + ``manifest.json``) yields
    the images of ``split``; any other folder yields all its images for every split.
    ``kwargs`` go to :class:`ImageFolderDataset` (``crop``, ``flip``, ``strict``); a
    registered dataset takes ``crop`` and ``flip`` (training augmentation, see
    :func:`_open_registered`).
    """
    named = _registered()
    if str(data) in named:
        return _open_registered(named[str(data)], resolution, split, seed, **kwargs)
    path = Path(data)
    if path.is_dir():
        from zoo.data.prepare import split_files

        files = split_files(path, split)  # a folder written by `zoo data prepare`: its split list
        if files is not None:
            kwargs.setdefault("files", files)
        return ImageFolderDataset(path, resolution=resolution, seed=seed, **kwargs)
    raise ZooError(f"DATA {str(data)!r} is neither a folder nor a registered dataset; valid names: {', '.join(sorted(named))}")


def _open_registered(spec, resolution: int, split: str, seed: int, crop: str = "center", flip: bool = False, **kwargs) -> torch.utils.data.Dataset:
    """A registered dataset, with training augmentation: passed to its ``open`` when that
    takes ``crop`` / ``flip`` (``shapes`` does), otherwise applied by :class:`Augmented`."""
    import inspect

    if crop not in CROPS:
        raise choices_error("crop", crop, CROPS)
    if crop == "center" and not flip:
        return spec.open(resolution=resolution, split=split, seed=seed)
    params = inspect.signature(spec.open).parameters
    if "crop" in params and "flip" in params:
        return spec.open(resolution=resolution, split=split, seed=seed, crop=crop, flip=flip)
    return Augmented(spec.open(resolution=resolution, split=split, seed=seed), crop, flip, seed)


class Augmented(torch.utils.data.Dataset):
    """Random crop and horizontal flip for a dataset that has none of its own: a random crop
    takes a ``resolution`` window of the image enlarged by 1/8 (bilinear); a flip mirrors
    it with probability 1/2. Both are drawn for (seed, index, key) like
    :meth:`ImageFolderDataset.draw`; ``dataset[index]`` is the item unchanged."""

    def __init__(self, base: torch.utils.data.Dataset, crop: str, flip: bool, seed: int) -> None:
        self.base, self.crop, self.flip, self.seed = base, crop, flip, seed

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> dict:
        return self.base[index]

    def draw(self, index: int, key: int | None) -> dict:
        import torch.nn.functional as F

        item = dict(self.base[index])
        image = item["image"]  # (3, H, W)
        rng = np.random.default_rng([self.seed, index, 0 if key is None else int(key) & 0xFFFFFFFF, 0xA6])
        if self.crop == "random":
            h, w = image.shape[-2:]
            big = F.interpolate(image[None], size=(h + max(1, h // 8), w + max(1, w // 8)), mode="bilinear", align_corners=False)[0]
            top, left = int(rng.integers(0, big.shape[-2] - h + 1)), int(rng.integers(0, big.shape[-1] - w + 1))
            image = big[:, top : top + h, left : left + w].clamp(-1, 1)
        if self.flip and rng.random() < 0.5:
            image = image.flip(-1)
        item["image"] = image.contiguous()
        return item
