"""What an upload must be before the server writes anything: a real image within the limits.

Every check here runs on the bytes in memory and reads only the file's header, so a refused
upload leaves nothing behind and a decompression bomb (a small file that declares a huge
image) is refused before a single pixel is decoded: the declared pixel count is checked
against ``--max-pixels`` first, the same test PIL makes with ``Image.MAX_IMAGE_PIXELS``
(whose :class:`PIL.Image.DecompressionBombError` is caught too). Only the formats the zoo
reads are opened (PIL never guesses among the others), and nothing uploaded is ever executed.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass

from PIL import Image

from zoo.imageio import upright_size

#: PIL format names the server accepts (the suffixes ``zoo sample`` reads, zoo.imageio.IMAGE_SUFFIXES).
FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "TIFF", "GIF")


class UploadError(Exception):
    """An upload the server refuses: ``status`` (HTTP code) and a one-line message."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Limits:
    """``--max-upload-mb`` (per file) and ``--max-pixels WxH``."""

    max_upload_bytes: int = 20 * 1024 * 1024
    max_width: int = 4096
    max_height: int = 4096

    @property
    def request_bytes(self) -> int:
        """A whole request: two files and a few small fields."""
        return 2 * self.max_upload_bytes + 64 * 1024


def parse_pixels(text: str) -> tuple[int, int]:
    """``"4096x4096"`` -> (4096, 4096); ValueError with the expected form otherwise."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text or "")
    if not m or int(m.group(1)) < 1 or int(m.group(2)) < 1:
        raise ValueError(f"--max-pixels {text!r}: give WIDTHxHEIGHT, e.g. 4096x4096")
    return int(m.group(1)), int(m.group(2))


def check_image(data: bytes, what: str, limits: Limits) -> tuple[int, int]:
    """(width, height) of an uploaded image as a viewer shows it (EXIF orientation applied, as
    ``zoo sample`` reads it and a browser displays it) after decoding it whole; UploadError when it is
    too large (413), not an image of the accepted formats, damaged, or over the pixel limit."""
    if not data:
        raise UploadError(f"the {what} is empty; upload a PNG, JPEG, WebP, BMP, TIFF or GIF file")
    if len(data) > limits.max_upload_bytes:
        raise UploadError(f"the {what} is {len(data) / 2**20:.1f} MB, over the limit of {limits.max_upload_bytes / 2**20:g} MB (--max-upload-mb)", 413)
    try:
        img = Image.open(io.BytesIO(data), formats=FORMATS)
    except Image.DecompressionBombError as exc:
        raise UploadError(f"the {what} declares too many pixels, refused as a decompression bomb ({exc}); the limit is {limits.max_width}x{limits.max_height} (--max-pixels)", 413) from None
    except Exception:
        raise UploadError(f"the {what} is not an image the zoo reads ({', '.join(FORMATS)})") from None
    with img:
        over = f"over the limit of {limits.max_width}x{limits.max_height} (--max-pixels)"
        w, h = img.size  # the header's size, before anything is decoded (a bomb stops here)
        if w * h > limits.max_width * limits.max_height:
            raise UploadError(f"the {what} is {w}x{h} pixels, {over}", 413)
        try:
            img.load()
        except Image.DecompressionBombError as exc:
            raise UploadError(f"the {what} declares too many pixels, refused as a decompression bomb ({exc}); the limit is {limits.max_width}x{limits.max_height} (--max-pixels)", 413) from None
        except Exception as exc:
            raise UploadError(f"the {what} is damaged and cannot be decoded ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
        w, h = upright_size(img)  # as a viewer shows it and zoo sample reads it (EXIF orientation)
        if w > limits.max_width or h > limits.max_height:
            raise UploadError(f"the {what} is {w}x{h} pixels, {over}", 413)
        return w, h


def safe_stem(filename: str | None, default: str = "image") -> str:
    """A file name's stem reduced to ``[A-Za-z0-9._-]`` (at most 64 characters), never a path."""
    stem = (filename or "").replace("\\", "/").rsplit("/", 1)[-1].rsplit(".", 1)[0]
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._")[:64]
    return stem or default
