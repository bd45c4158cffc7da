"""Reading and writing images and masks at the zoo's conventions.

Images on disk are 8-bit RGB files; in memory float tensors (3, H, W) in [-1, 1].
Masks on disk are 8-bit PNG, white = hole; in memory float tensors (1, H, W), 1 = hole.

Every image and mask is read upright: an EXIF orientation tag (phone photos) is applied on
read, so pixels are where a viewer shows them. Folders are read by :func:`list_images`: the
types of :data:`IMAGE_SUFFIXES` (the first frame of an animated GIF or a multi-page TIFF);
two files of one name that differ only in the suffix (``a.png`` and ``a.jpg``) are refused,
and files of other image types are named in a warning, never skipped silently.
"""

from __future__ import annotations

import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from zoo.errors import ZooError, ZooWarning, choices_error
from zoo.fsutil import atomic_path

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif")
IMAGE_TYPES = ", ".join(s.lstrip(".") for s in IMAGE_SUFFIXES)  # for messages
# image types a folder may hold that the zoo does not read: named in a warning, not skipped silently
OTHER_IMAGE_SUFFIXES = (".ppm", ".pgm", ".pbm", ".pnm", ".tga", ".ico", ".heic", ".heif", ".avif", ".jp2", ".j2k", ".jxl", ".psd",
                        ".svg", ".exr", ".hdr", ".dng", ".cr2", ".nef", ".arw", ".raw", ".dds", ".pcx", ".sgi", ".xbm", ".apng")
MASK_CONVENTIONS = ("hole-white", "hole-black")
EXIF_ORIENTATION = 0x0112  # TIFF/EXIF tag 274: 1 = upright; 2-8 = mirrored and/or rotated


def upright(img: Image.Image) -> Image.Image:
    """``img`` as a viewer shows it: its EXIF orientation applied (``ImageOps.exif_transpose``);
    ``img`` itself when it has none."""
    if img.getexif().get(EXIF_ORIENTATION, 1) in (2, 3, 4, 5, 6, 7, 8):
        return ImageOps.exif_transpose(img)
    return img


def upright_size(img: Image.Image) -> tuple[int, int]:
    """(width, height) after :func:`upright`, read from the header (orientations 5-8 swap them)."""
    w, h = img.size
    return (h, w) if img.getexif().get(EXIF_ORIENTATION, 1) in (5, 6, 7, 8) else (w, h)


def to_rgb(img: Image.Image) -> Image.Image:
    """Upright (EXIF orientation applied), then grayscale, palette, RGBA (alpha dropped onto
    black), 16-bit, float (TIFF) and CMYK -> 8-bit RGB."""
    img = upright(img)
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = float(np.nanmax(arr)) if arr.size else 0.0
        peak = 65535.0 if top > 255 else 1.0 if img.mode == "F" and top <= 1.0 else 255.0  # float TIFFs are often in [0, 1]
        img = Image.fromarray(np.clip(np.nan_to_num(arr) / peak * 255.0 + 0.5, 0, 255).astype(np.uint8), mode="L")
    if img.mode == "RGBA" or img.mode == "LA" or (img.mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
        background = Image.new("RGBA", img.size, (0, 0, 0, 255))
        img = Image.alpha_composite(background, img)
    return img.convert("RGB")


def uint8_to_tensor(arr: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 -> (3, H, W) float in [-1, 1]."""
    return torch.from_numpy(np.array(arr, dtype=np.uint8, copy=True)).permute(2, 0, 1).float().div(127.5).sub(1.0)


def tensor_to_uint8(img: torch.Tensor) -> np.ndarray:
    """(3, H, W) float in [-1, 1] -> (H, W, 3) uint8 (exact inverse of uint8_to_tensor)."""
    arr = img.detach().float().cpu().add(1.0).mul(127.5).round().clamp(0, 255).to(torch.uint8)
    return arr.permute(1, 2, 0).numpy()


def load_image(path: str | Path) -> torch.Tensor:
    """Read one image file as (3, H, W) in [-1, 1]; a damaged file is a ZooError."""
    path = Path(path)
    try:
        with Image.open(path) as img:
            img.load()
            rgb = to_rgb(img)
    except FileNotFoundError:
        raise ZooError(f"image {path} does not exist") from None
    except Exception as exc:
        raise ZooError(f"cannot read image {path} ({type(exc).__name__}: {exc})") from None
    return uint8_to_tensor(np.asarray(rgb))


def save_image(path: str | Path, img: torch.Tensor, inside: str | Path | None = None) -> None:
    """Write (3, H, W) in [-1, 1] as an 8-bit PNG, atomically (``inside``: see
    :func:`zoo.fsutil.atomic_path`)."""
    path = Path(path)
    with atomic_path(path, inside) as tmp:
        Image.fromarray(tensor_to_uint8(img)).save(tmp, format="PNG")


def mask_from_array(arr: np.ndarray, convention: str = "hole-white", name: str = "mask") -> torch.Tensor:
    """A decoded mask image (H, W[, C]) -> (1, H, W) float, 1 = hole.

    Grayscale, RGB and RGBA files are accepted (RGB: mean of channels; RGBA: the alpha is
    ignored unless the color is constant, then the alpha carries the mask). Values other
    than 0 and 255 are thresholded at 128 with a warning.
    """
    if convention not in MASK_CONVENTIONS:
        raise choices_error("mask convention", convention, MASK_CONVENTIONS)
    arr = np.asarray(arr)
    if arr.ndim == 3:
        if arr.shape[2] == 4:
            rgb = arr[..., :3]
            arr = arr[..., 3] if rgb.min() == rgb.max() else rgb.mean(axis=2)
        else:
            arr = arr[..., :3].mean(axis=2)
    if arr.dtype != np.uint8:
        arr = arr.astype(np.float64)
        if arr.max() <= 1.0:
            arr = arr * 255.0
    binary = arr >= 128
    if not np.all((arr == 0) | (arr == 255)):
        warnings.warn(ZooWarning(f"{name} is not binary (values besides 0 and 255); thresholded at 128", "masks that were not binary (thresholded at 128)"), stacklevel=2)
    if convention == "hole-black":
        binary = ~binary
    return torch.from_numpy(binary.astype(np.float32))[None]


def readable_size(path: str | Path, what: str = "image") -> tuple[int, int]:
    """(width, height) of an image or mask file after decoding it whole (so a truncated or
    damaged file is found now); the same one-line errors as :func:`load_image`."""
    path = Path(path)
    try:
        with Image.open(path) as img:
            img.load()
            return upright_size(img)
    except FileNotFoundError:
        raise ZooError(f"{what} {path} does not exist") from None
    except Exception as exc:
        raise ZooError(f"cannot read {what} {path} ({type(exc).__name__}: {exc})") from None


def load_mask(path: str | Path, convention: str = "hole-white") -> torch.Tensor:
    path = Path(path)
    try:
        with Image.open(path) as img:
            img.load()
            img = upright(img)
            if img.mode in ("P", "CMYK", "YCbCr", "HSV"):
                img = img.convert("RGBA" if "transparency" in img.info else "RGB")
            if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
                arr = (np.nan_to_num(np.asarray(img, dtype=np.float64)) > 0).astype(np.uint8) * 255
            else:
                arr = np.asarray(img.convert("LA") if img.mode == "LA" else img)
                if img.mode == "LA":
                    arr = arr[..., 0]
                if img.mode == "1":
                    arr = arr.astype(np.uint8) * 255
    except FileNotFoundError:
        raise ZooError(f"mask {path} does not exist") from None
    except Exception as exc:
        raise ZooError(f"cannot read mask {path} ({type(exc).__name__}: {exc})") from None
    return mask_from_array(arr, convention, name=str(path))


def encode_gray_png(arr: np.ndarray) -> bytes:
    """(H, W) uint8 -> the bytes of an 8-bit grayscale PNG.

    Written by hand (filter 0 on every row, Python's zlib at level 9, no timestamps or
    other metadata) so the bytes depend only on the pixels and the zlib library, not on
    Pillow's bundled compressor; any PNG reader decodes it.
    """
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    if arr.ndim != 2:
        raise ValueError(f"expected an (H, W) array, got shape {arr.shape}")
    h, w = arr.shape
    raw = np.concatenate([np.zeros((h, 1), np.uint8), arr], axis=1).tobytes()

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)  # 8-bit, grayscale, deflate, filter 0, no interlace
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def save_mask(path: str | Path, mask: torch.Tensor | np.ndarray) -> None:
    """Write a mask (1 = hole) as an 8-bit PNG, white = hole, atomically."""
    arr = mask.detach().cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
    arr = np.squeeze(arr)
    png = np.where(arr > 0.5, 255, 0).astype(np.uint8)
    with atomic_path(path) as tmp:
        tmp.write_bytes(encode_gray_png(png))


def list_images(folder: str | Path) -> list[Path]:
    """Image files under ``folder`` (recursive), sorted by relative path.

    Two files whose relative paths differ only in the suffix (``a.png`` and ``a.jpg``, or
    ``a.PNG``) are refused in one line naming both: they would be one image to every command
    that pairs files by name (masks, predictions, prepared names). Files of image types the
    zoo does not read (:data:`OTHER_IMAGE_SUFFIXES`, e.g. ``.heic``) are named in a warning."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ZooError(f"folder {folder} does not exist")
    files, others = [], []
    for p in folder.rglob("*"):
        if p.name.startswith(".") or not p.is_file():
            continue
        suffix = p.suffix.lower()
        if suffix in IMAGE_SUFFIXES:
            files.append(p)
        elif suffix in OTHER_IMAGE_SUFFIXES:
            others.append(p)
    files.sort(key=lambda p: p.relative_to(folder).as_posix())
    seen: dict[str, Path] = {}
    for p in files:
        key = p.relative_to(folder).with_suffix("").as_posix()
        if key in seen:
            raise ZooError(f"{seen[key]} and {p} have the same name but for the suffix; the zoo pairs files by name, so keep one of them (rename or move the other)")
        seen[key] = p
    if others:
        types = ", ".join(sorted({p.suffix.lower() for p in others}))
        warnings.warn(ZooWarning(f"{len(others)} file(s) in {folder} of a type the zoo does not read ({types}; first: {sorted(others)[0]}) are not used; "
                                 f"convert them to one of {IMAGE_TYPES}", "folders with files of types the zoo does not read"), stacklevel=2)
    return files


def keyed_images(folder: str | Path) -> dict[str, Path]:
    """Image files under ``folder`` keyed by relative path without suffix (``a/b.png`` ->
    ``a/b``): the key that pairs an image with its mask or its prediction."""
    folder = Path(folder)
    return {p.relative_to(folder).with_suffix("").as_posix(): p for p in list_images(folder)}


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) of an image file without decoding it; a damaged file is a ZooError."""
    try:
        with Image.open(path) as img:
            return upright_size(img)
    except Exception as exc:
        raise ZooError(f"cannot read image {path} ({type(exc).__name__})") from None


def pair_images_and_masks(images: str | Path, masks: str | Path) -> list[tuple[Path, Path]]:
    """Match image and mask files by relative path without suffix; refuse mismatches."""
    images, masks = Path(images), Path(masks)
    img_files = keyed_images(images)
    by_key = keyed_images(masks)
    if not img_files:
        raise ZooError(f"no images ({IMAGE_TYPES}) found in {images}")
    if not by_key:
        raise ZooError(f"no mask files found in {masks}")
    pairs, missing = [], []
    for key, p in img_files.items():
        if key in by_key:
            pairs.append((p, by_key[key]))
        else:
            missing.append(key)
    if missing:
        raise ZooError(f"{len(missing)} image(s) in {images} have no mask of the same name in {masks} (first: {missing[0]})")
    return pairs
