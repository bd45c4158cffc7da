"""A job's inputs on disk, as ``zoo sample`` would read them.

Both uploads are checked in memory first (:func:`zoo.serve.uploads.check_image`); only then
is the job's folder made. The image is stored as an RGB PNG of its decoded pixels
(``images/NAME.png``: lossless, so it reads back to the very tensor ``zoo sample`` makes of the
uploaded file) and the mask as a binary PNG, white = hole (``masks/NAME.png``), read with the
zoo's own readers. A mask of another size than the image, a mask with no hole and a mask that
is all hole are refused (the mask is never resized), and then the folder is removed again.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from zoo.errors import ZooError
from zoo.imageio import load_image, load_mask, save_image, save_mask
from zoo.serve.uploads import Limits, UploadError, check_image


def store_inputs(image: bytes, mask: bytes, folder: Path, stem: str, limits: Limits) -> tuple[int, int]:
    """Check and write ``folder/images/STEM.png`` and ``folder/masks/STEM.png``; returns the
    image's (width, height). UploadError leaves no folder."""
    size = check_image(image, "image", limits)
    msize = check_image(mask, "mask", limits)
    if msize != size:
        raise UploadError(f"the mask is {msize[0]}x{msize[1]} but the image is {size[0]}x{size[1]}; give a mask of the image's size (it is never resized)")
    try:
        for sub in ("upload", "images", "masks"):
            (folder / sub).mkdir(parents=True)
        (folder / "upload" / "image").write_bytes(image)
        (folder / "upload" / "mask").write_bytes(mask)
        try:
            pixels = load_image(folder / "upload" / "image")
            hole = load_mask(folder / "upload" / "mask")
        except ZooError as exc:
            raise UploadError(str(exc).replace(str(folder / "upload") + "/", "uploaded ")) from None
        fraction = float(hole.mean())
        if fraction == 0.0:
            raise UploadError("the mask has no hole (no white pixel); brush or upload the region to fill (white = hole)")
        if fraction == 1.0:
            raise UploadError("the mask covers the whole image (100 % hole): no known pixel is left to fill from; leave part of the image unmasked")
        save_image(folder / "images" / f"{stem}.png", pixels)
        save_mask(folder / "masks" / f"{stem}.png", hole)
        shutil.rmtree(folder / "upload")
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return size
