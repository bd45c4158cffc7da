"""Watching a run: JSONL log, TensorBoard (when installed), validation metrics, sample grids.

Everything here runs on the main process only.
"""

from __future__ import annotations

import json
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import torch

from zoo.masks import make_mask

#: Seed offset of the fixed validation masks (distinct from every training mask).
VAL_MASK_SEED = 7_777_777


LOG_FILE = "log.jsonl"  # one record per logged training step: step, losses, lr/NAME, it_s
EVENTS_FILE = "events.jsonl"  # start, resume, val, checkpoint, nonfinite, interrupted, done


class RunLog:
    """Append-only JSONL logs (one JSON object per line) + optional TensorBoard.

    Step records go to ``RUN/log.jsonl``, records with an ``"event"`` key to
    ``RUN/events.jsonl``; TensorBoard gets the numbers of both."""

    def __init__(self, run_dir: Path, enabled: bool, tensorboard: bool) -> None:
        self.run_dir = Path(run_dir)
        self.enabled = enabled
        self.start = time.time()
        self.tb = None
        if enabled and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(Path(run_dir) / "tb"))
            except Exception:  # tensorboard is optional
                self.tb = None

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        record = {"time": round(time.time() - self.start, 3), **record}
        with open(self.run_dir / (EVENTS_FILE if "event" in record else LOG_FILE), "a") as fh:
            fh.write(json.dumps(record, default=str) + "\n")
            fh.flush()
        if self.tb is not None and "step" in record:
            prefix = f"{record['event']}/" if "event" in record else "train/"
            for key, value in record.items():
                if key not in ("step", "time", "event") and isinstance(value, (int, float)) and not isinstance(value, bool):
                    self.tb.add_scalar(prefix + key, value, record["step"])

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def read_events(run_dir: Path) -> list[dict[str, Any]]:
    """All records of ``RUN/events.jsonl``."""
    return read_log(run_dir, EVENTS_FILE)


def read_log(run_dir: Path, name: str = LOG_FILE) -> list[dict[str, Any]]:
    """All records of ``RUN/log.jsonl`` (a torn last line from a killed run is skipped)."""
    path = Path(run_dir) / name
    out = []
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
    return out


def validation_batch(data: torch.utils.data.Dataset, masks: Any, seed: int, size: int) -> dict[str, torch.Tensor]:
    """A fixed small validation set: ``size`` evenly spaced images and seeded masks."""
    n = len(data)  # type: ignore[arg-type]
    size = max(1, min(size, n))
    images = [data[i * n // size]["image"] for i in range(size)]
    h, w = images[0].shape[1:]
    mks = [make_mask(masks, h, w, seed + VAL_MASK_SEED, i) for i in range(size)]
    return {"image": torch.stack(images), "mask": torch.stack(mks)}


class Validator:
    """Computes the requested metrics on the validation batch; skips what is unavailable.

    Metrics are looked up through :func:`zoo.metrics.metric` (plugins may add some); a
    metric's ``prepare()`` (weights present?) runs once up front. Per-image metrics get
    ``fn(pred, gt, mask)``; distribution metrics (FID, ...) are scored on PNG folders of
    the validation images with :func:`zoo.metrics.scoring.score_folders` (on a handful of
    images they only show a trend). A metric that is unknown, not ready or fails is
    skipped with one warning and not tried again.
    """

    def __init__(self, names: list[str]) -> None:
        self.names = [n for n in names if n]
        self.specs: dict[str, Any] = {}
        for name in self.names:
            spec = self._lookup(name)
            if spec is not None:
                self.specs[name] = spec

    @staticmethod
    def _lookup(name: str):
        try:
            from zoo.metrics import metric

            spec = metric(name)
        except Exception as exc:  # noqa: BLE001 - another plugin's metric may be missing
            if name == "psnr":
                from zoo.metrics import psnr
                from zoo.spec import MetricSpec

                return MetricSpec("psnr", "PSNR (dB)", True, psnr)
            warnings.warn(f"validation metric {name!r} is not available ({exc}); skipped", stacklevel=3)
            return None
        try:
            prepare = getattr(spec, "prepare", None)
            if prepare is not None:
                prepare()
            if getattr(spec, "features", ""):
                from zoo.metrics.scoring import preflight

                preflight([spec])
        except Exception as exc:  # noqa: BLE001 - e.g. weights not downloaded
            warnings.warn(f"validation metric {name!r} is not ready ({str(exc)[:150]}); skipped", stacklevel=3)
            return None
        return spec

    def higher_is_better(self, name: str) -> bool:
        spec = self.specs.get(name)
        return True if spec is None else bool(spec.higher_is_better)

    def __call__(self, pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor) -> dict[str, float]:
        out: dict[str, float] = {}
        for name, spec in list(self.specs.items()):
            try:
                if getattr(spec, "per_image", True):
                    value = spec.fn(pred.float().cpu(), gt.float().cpu(), mask.float().cpu())
                    out[name] = float(torch.as_tensor(value).float().mean())
                else:
                    out[name] = float(self._folder_metric(spec, pred, gt, mask))
            except Exception as exc:  # noqa: BLE001 - weights missing, too few images, ...
                warnings.warn(f"validation metric {name!r} failed ({type(exc).__name__}: {str(exc)[:100]}); skipped from now on", stacklevel=2)
                del self.specs[name]
        return out

    @staticmethod
    def _folder_metric(spec: Any, pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor) -> float:
        from zoo.imageio import save_image, save_mask

        with tempfile.TemporaryDirectory() as tmp:
            pd, gd, md = Path(tmp) / "pred", Path(tmp) / "gt", Path(tmp) / "mask"
            for d in (pd, gd, md):
                d.mkdir()
            for i in range(pred.shape[0]):
                save_image(pd / f"{i:05d}.png", pred[i].float().cpu())
                save_image(gd / f"{i:05d}.png", gt[i].float().cpu())
                save_mask(md / f"{i:05d}.png", mask[i].float().cpu())
            if getattr(spec, "features", ""):
                from zoo.metrics.scoring import score_folders

                result = score_folders(pd, gd, [spec], md, bootstrap=0, progress=False)
                return float(result.metrics[spec.name]["value"])
            return spec.fn(str(pd), str(gd))


@torch.no_grad()
def predict(model: torch.nn.Module, sample_fn: Callable, batch: dict[str, torch.Tensor], device: torch.device, seed: int) -> torch.Tensor:
    """Composited predictions (B, 3, H, W) of ``sample_fn(images, masks, generator)``."""
    images, masks = batch["image"].to(device), batch["mask"].to(device)
    was_training = model.training
    model.eval()
    try:
        pred = sample_fn(images, masks, torch.Generator(device="cpu").manual_seed(seed))
    finally:
        model.train(was_training)
    pred = pred.to(images.dtype).clamp(-1, 1)
    return images * (1 - masks) + pred * masks


def save_grid(path: Path, batch: dict[str, torch.Tensor], pred: torch.Tensor) -> None:
    """One PNG: a column per image; rows = masked input (holes grey), result, ground truth."""
    from torchvision.utils import make_grid

    from zoo.imageio import save_image

    images, masks = batch["image"].float().cpu(), batch["mask"].float().cpu()
    masked = images * (1 - masks)  # holes at 0 = mid grey in [-1, 1]
    rows = torch.cat([masked, pred.float().cpu(), images])  # (3B, 3, H, W)
    grid = make_grid(rows, nrow=images.shape[0], padding=2, pad_value=1.0)
    save_image(path, grid)
