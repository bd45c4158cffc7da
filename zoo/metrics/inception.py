"""Inception features for FID, KID, IS and P-IDS/U-IDS, through torch-fidelity.

The extractor is torch-fidelity's ``inception-v3-compat`` (the TF-Inception graph of the
original FID code, bilinear resize to 299 like TF1). Images go in exactly as torch-fidelity
reads a folder: the 8-bit file decoded to RGB, as a uint8 tensor. Out come, per image, the
2048-d pool features (FID, KID, P-IDS, U-IDS) and the 1008 unbiased logits (IS).

``pool_layer`` may name one of torch-fidelity's shallower layers ("64", "192", "768") for
comparisons with numbers computed on them (torch-fidelity's ``feature_layer_fid``); the
standard, and the default everywhere, is "2048".
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from zoo.errors import ZooError
from zoo.fsutil import file_sha256
from zoo.metrics.weights import inception_weights

EXTRACTOR = "inception-v3-compat"
POOL_LAYERS = ("64", "192", "768", "2048")
LOGITS_LAYER = "logits_unbiased"


def read_uint8(path: Path) -> torch.Tensor:
    """(3, H, W) uint8, decoded the way torch-fidelity decodes a folder (PIL -> RGB), upright
    (EXIF orientation applied, as every image the zoo reads; files without one are unchanged)."""
    from zoo.imageio import upright

    try:
        with Image.open(path) as img:
            arr = np.asarray(upright(img).convert("RGB"))
    except Exception as exc:
        raise ZooError(f"cannot read image {path} ({type(exc).__name__})") from None
    return torch.from_numpy(arr.copy()).permute(2, 0, 1)


@functools.lru_cache(maxsize=4)
def _load(weights: str, device: str, layers: tuple[str, ...]) -> torch.nn.Module:
    from torch_fidelity.utils import create_feature_extractor

    try:  # refuse anything but plain tensors before torch-fidelity unpickles the file
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ZooError(f"{weights} is not a readable torch-fidelity Inception weights file ({type(exc).__name__})") from None
    if not isinstance(state, dict) or "Mixed_7c.branch_pool.conv.weight" not in state:
        raise ZooError(f"{weights} does not hold torch-fidelity InceptionV3 weights (key Mixed_7c.branch_pool.conv.weight missing)")
    del state
    try:
        model = create_feature_extractor(
            EXTRACTOR, list(layers), cuda=False, feature_extractor_weights_path=weights, verbose=False
        )
    except RuntimeError as exc:
        raise ZooError(f"{weights} does not fit torch-fidelity's InceptionV3 ({str(exc).splitlines()[0][:160]})") from None
    return model.to(device)


class InceptionFeatures:
    """One loaded extractor. ``ident`` names it for caches: extractor, layer, weights sha256."""

    def __init__(self, weights: str | Path | None = None, device: str | torch.device = "cpu", pool_layer: str = "2048") -> None:
        if pool_layer not in POOL_LAYERS:
            raise ZooError(f"unknown Inception feature layer {pool_layer!r}; valid choices: {', '.join(POOL_LAYERS)}")
        self.weights = inception_weights(weights)
        self.device = str(device)
        self.pool_layer = pool_layer
        self.ident = f"{EXTRACTOR}/{pool_layer}:{file_sha256(self.weights)[:16]}"

    def __call__(self, files: list[Path], logits: bool = False, batch_size: int = 32, progress: bool = True, desc: str = "inception") -> dict[str, np.ndarray]:
        """Features of image files, in order: {"pool": (N, D)[, "logits": (N, 1008)]}."""
        keys = {"pool": self.pool_layer, **({"logits": LOGITS_LAYER} if logits else {})}
        model = _load(str(self.weights), self.device, tuple(keys.values()))
        out: dict[str, list[np.ndarray]] = {k: [] for k in keys}
        bar = tqdm(total=len(files), desc=desc, disable=not progress, dynamic_ncols=True, leave=False)
        batch: list[torch.Tensor] = []

        def flush() -> None:
            x = torch.stack(batch).to(self.device)  # (B, 3, H, W) uint8
            with torch.no_grad():
                feats = model(x)
            for key, value in zip(keys, feats):
                out[key].append(value.float().cpu().numpy())
            bar.update(len(batch))
            batch.clear()

        for path in files:
            img = read_uint8(path)
            if batch and (len(batch) == batch_size or batch[0].shape != img.shape):
                flush()
            batch.append(img)
        if batch:
            flush()
        bar.close()
        return {k: np.concatenate(v) for k, v in out.items()}
