"""Where metric backbones' weights come from, honestly.

* Inception (FID, KID, IS, P-IDS, U-IDS): torch-fidelity's converted TF-Inception file
  ``weights-inception-2015-12-05-6726825d.pth``, from ``--fid-weights PATH`` /
  ``$ZOO_FID_WEIGHTS``, else the torch hub cache (``$TORCH_HOME/hub/checkpoints``), else
  downloaded into that cache by torch's own downloader.
* LPIPS: the linear layers ship inside the ``lpips`` pip package; the AlexNet / VGG16
  backbone is torchvision's ImageNet file (``alexnet-owt-7be5be79.pth``,
  ``vgg16-397923af.pth``) in the same torch hub cache, downloaded there when missing.

``ZOO_OFFLINE=1`` forbids every download. A file that is missing and cannot be fetched is
a :class:`ZooError` naming the file, where to put it and where it comes from. No metric is
ever computed with random weights.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from zoo.errors import ZooError

FID_WEIGHTS_ENV = "ZOO_FID_WEIGHTS"
OFFLINE_ENV = "ZOO_OFFLINE"
INCEPTION_URL = "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth"


def offline() -> bool:
    return os.environ.get(OFFLINE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def hub_checkpoint(url: str) -> Path:
    """Where torch hub keeps the file of ``url``: ``$TORCH_HOME/hub/checkpoints/NAME``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)


def cached_or_download(url: str, what: str, hint: str = "") -> Path:
    """The hub-cache file of ``url``; downloaded with torch's downloader when missing and
    allowed. Raises a one-line ZooError naming the file and its folder otherwise."""
    dst = hub_checkpoint(url)
    if dst.is_file():
        return dst
    reason = f"{OFFLINE_ENV} is set"
    if not offline():
        stem = dst.name.rsplit(".", 1)[0]
        prefix = stem.rsplit("-", 1)[-1]  # torch hub names files NAME-<sha256 prefix>.pth
        try:
            dst.parent.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(url, str(dst), hash_prefix=prefix if len(prefix) >= 8 else None, progress=True)
        except Exception as exc:  # no network, proxy, bad hash: say what to do instead
            reason = f"download failed: {type(exc).__name__}"
        if dst.is_file():
            return dst
    raise ZooError(f"{what} weights {dst.name} are missing ({reason}): put {dst.name} (from {url}) in {dst.parent}{hint}")


def inception_weights(path: str | os.PathLike | None = None) -> Path:
    """The Inception weights file for FID/KID/IS/P-IDS/U-IDS (see the module docstring)."""
    given = path or os.environ.get(FID_WEIGHTS_ENV)
    if given:
        p = Path(given)
        if not p.is_file():
            source = "--fid-weights" if path else FID_WEIGHTS_ENV
            raise ZooError(f"Inception weights file {p} (from {source}) does not exist; it must be torch-fidelity's {os.path.basename(INCEPTION_URL)} from {INCEPTION_URL}")
        return p
    return cached_or_download(INCEPTION_URL, "Inception (FID/KID/IS/IDS)", f", or pass --fid-weights PATH / set {FID_WEIGHTS_ENV}")
