"""Self-describing checkpoints: safetensors weights + the full config in the metadata.

``zoo sample METHOD --checkpoint x.safetensors`` rebuilds the exact model from the file
alone. Metadata keys (all strings, as safetensors requires):

=================  ===================================================================
``zoo.format``     checkpoint format version (``"1"``)
``zoo.method``     method name, e.g. ``conv-l1``
``zoo.plugin``     plugin name and ``zoo.plugin_version`` its version
``zoo.config``     the full resolved config as JSON
``zoo.preset``     the preset the config started from
``zoo.step``       training step the weights are from
``zoo.version``    zoo version that wrote the file
``zoo.provenance`` JSON: how the weights came to be (trained, imported from URL/sha256)
=================  ===================================================================

Tensors are the model's ``state_dict()``; for a GAN whose training keeps an EMA average the
generator's tensors are the average (what sampling uses). An imported checkpoint may also hold,
under :data:`RAW_PREFIX`, the training weights where they differ from those (a StyleGAN-style
snapshot's ``G`` beside its ``G_ema``): sampling never reads them, ``zoo train --init`` starts
the trained weights from them and the EMA from the average (:mod:`zoo.train.init`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from zoo.config import config_from_dict, config_to_dict
from zoo.errors import ZooError
from zoo.fsutil import atomic_path

FORMAT_VERSION = "1"

#: Prefix of the non-averaged training weights a checkpoint may hold beside the exported ones
#: (``raw.generator.x`` for ``generator.x``); read only by :func:`load_checkpoint` with ``raw=True``.
RAW_PREFIX = "raw."


@dataclass
class CheckpointMeta:
    method: str
    config: dict[str, Any]
    preset: str
    step: int = 0
    plugin: str = ""
    plugin_version: str = ""
    zoo_version: str = ""
    provenance: dict[str, Any] = field(default_factory=dict)

    def to_metadata(self) -> dict[str, str]:
        return {
            "zoo.format": FORMAT_VERSION,
            "zoo.method": self.method,
            "zoo.plugin": self.plugin,
            "zoo.plugin_version": self.plugin_version,
            "zoo.config": json.dumps(self.config, sort_keys=True),
            "zoo.preset": self.preset,
            "zoo.step": str(self.step),
            "zoo.version": self.zoo_version,
            "zoo.provenance": json.dumps(self.provenance, sort_keys=True),
        }

    @classmethod
    def from_metadata(cls, meta: dict[str, str], path: Path) -> "CheckpointMeta":
        if not meta or "zoo.method" not in meta:
            raise ZooError(
                f"{path} is not a zoo checkpoint (no zoo metadata); "
                "convert an official file with `zoo import METHOD FILE --out CKPT`"
            )
        try:
            return cls(
                method=meta["zoo.method"],
                config=json.loads(meta["zoo.config"]),
                preset=meta.get("zoo.preset", ""),
                step=int(meta.get("zoo.step", "0")),
                plugin=meta.get("zoo.plugin", ""),
                plugin_version=meta.get("zoo.plugin_version", ""),
                zoo_version=meta.get("zoo.version", ""),
                provenance=json.loads(meta.get("zoo.provenance", "{}")),
            )
        except (KeyError, ValueError) as exc:
            raise ZooError(f"{path}: damaged zoo metadata ({exc})") from None


def save_checkpoint(path: str | Path, state_dict: dict[str, torch.Tensor], meta: CheckpointMeta) -> Path:
    """Write weights + metadata atomically. Tensors are made contiguous and de-aliased."""
    from zoo import __version__

    meta.zoo_version = meta.zoo_version or __version__
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state_dict.items()}
    path = Path(path)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta.to_metadata())
    return path


def read_meta(path: str | Path) -> CheckpointMeta:
    path = _existing(path)
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
    except Exception as exc:
        raise ZooError(f"{path} is not a readable safetensors checkpoint ({_short(exc)})") from None
    return CheckpointMeta.from_metadata(meta, path)


#: Where a run records its losses (zoo.train.watch.LOG_FILE; the training engine sits above this module).
LOG_FILE_HINT = "log.jsonl"


def load_checkpoint(path: str | Path, method: str | None = None, raw: bool = False) -> tuple[CheckpointMeta, dict[str, torch.Tensor]]:
    """Read a checkpoint; refuse one written for another method. The :data:`RAW_PREFIX`
    tensors (training weights beside an EMA average) are left out unless ``raw``."""
    path = _existing(path)
    meta = read_meta(path)
    if method is not None and meta.method != method:
        raise ZooError(f"{path} is a checkpoint of method {meta.method!r}, not {method!r}")
    tensors: dict[str, torch.Tensor] = {}
    with safe_open(str(path), framework="pt") as fh:
        for key in fh.keys():
            if raw or not key.startswith(RAW_PREFIX):
                tensors[key] = fh.get_tensor(key)
    check_finite(tensors, path, meta)
    return meta, tensors


def with_raw(state: dict[str, torch.Tensor], raw: Mapping[str, torch.Tensor], what: str) -> dict[str, torch.Tensor]:
    """``state`` plus the raw training weights ``raw`` (model names, the shapes of ``state``)
    under :data:`RAW_PREFIX`, ready to save; one ZooError when they do not fit."""
    if not raw:
        return state
    parts = key_problems({k: state[k] for k in raw if k in state}, raw, extra="with no place in the model")
    if parts:
        raise ZooError(f"{what}: its raw training weights do not fit the model: " + "; ".join(parts))
    return {**state, **{RAW_PREFIX + k: v.to(state[k].dtype).contiguous() for k, v in raw.items()}}


def split_raw(tensors: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(exported weights, raw training weights keyed by the model's names) of a checkpoint
    read with ``raw=True``."""
    n = len(RAW_PREFIX)
    return {k: v for k, v in tensors.items() if not k.startswith(RAW_PREFIX)}, {k[n:]: v for k, v in tensors.items() if k.startswith(RAW_PREFIX)}


def check_finite(tensors: Mapping[str, torch.Tensor], path: str | Path, meta: CheckpointMeta | None = None) -> None:
    """Refuse weights with NaN or Inf values in one line naming the first such tensor (in the
    file's order) and how to find the training step that produced them."""
    for key, t in tensors.items():
        if not t.is_floating_point():
            continue
        bad = int((~torch.isfinite(t)).sum())
        if bad:
            step = f" (written at step {meta.step})" if meta is not None and meta.step else ""
            raise ZooError(
                f"checkpoint {path}{step}: tensor {key!r} holds {bad} NaN/Inf value(s) of {t.numel()} (the first such tensor); "
                f"training diverged before it was saved: the run's {LOG_FILE_HINT} shows the step where the loss turned NaN "
                "(\"event\": \"nonfinite\"), and `zoo train METHOD --resume RUN/checkpoints/step_N` continues from an earlier checkpoint"
            )


def load_model(path: str | Path, method: str | None = None, overrides: dict[str, Any] | None = None):
    """Rebuild the model of a checkpoint: returns ``(model, config, meta)``.

    ``overrides`` may change sampling-time settings; a change that alters the weights'
    shapes is refused with the names of the mismatched tensors.
    """
    from zoo.config import apply_overrides, validate_config
    from zoo.plugins import get_manager

    meta, tensors = load_checkpoint(path, method)
    manager = get_manager()
    spec = manager.method(meta.method)
    config = config_from_dict(spec.config, meta.config, meta.method)
    if overrides:
        config = validate_config(apply_overrides(config, overrides, meta.method), meta.method)
    model = manager.call("zoo_build_model", meta.method, config=config)
    load_state_strict(model, tensors, what=str(path))
    model.eval()
    return model, config, meta


def key_problems(own: Mapping[str, Any], found: Mapping[str, Any], extra: str = "unexpected") -> list[str]:
    """What keeps the tensors ``found`` from being a state with the keys and shapes of ``own``
    (values: tensors or shapes), one part each: ``"3 missing (e.g. K)"``, ``"1 <extra> (e.g. K)"``,
    ``"2 of another shape (e.g. K: file (..), model (..))"``; empty when they fit. Importers
    join the parts into their one-line error."""

    def shape(v: Any) -> tuple[int, ...]:
        return tuple(v.shape) if hasattr(v, "shape") else tuple(v)

    missing = sorted(set(own) - set(found))
    surplus = sorted(set(found) - set(own))
    wrong = sorted(k for k in set(own) & set(found) if shape(own[k]) != shape(found[k]))
    parts = [f"{len(missing)} missing (e.g. {missing[0]})"] if missing else []
    parts += [f"{len(surplus)} {extra} (e.g. {surplus[0]})"] if surplus else []
    if wrong:
        k = wrong[0]
        parts.append(f"{len(wrong)} of another shape (e.g. {k}: file {shape(found[k])}, model {shape(own[k])})")
    return parts


def check_trained_state(method: str, config: Any, state: dict[str, Any]) -> None:
    """The state a plugin's ``zoo_train`` returned loads into the model its
    ``zoo_build_model`` builds for ``config`` (same keys and shapes, tensors only); else one
    line naming plugin and hook, raised before the run is reported done (instead of at the
    first ``zoo sample``). The model is built on the meta device (no memory)."""
    from zoo.errors import plugin_error
    from zoo.plugins import get_manager

    manager = get_manager()
    plugin = manager.owner("methods", method)
    odd = sorted(k for k, v in state.items() if not isinstance(v, torch.Tensor))
    if odd:
        raise plugin_error(plugin, "zoo_train", f"returned a state_dict whose {odd[0]!r} is {type(state[odd[0]]).__name__}; expected tensors only (model.state_dict())", method)
    with torch.device("meta"):
        own = manager.call("zoo_build_model", method, config=config).state_dict()
    parts = key_problems(own, state, extra="with no place in the model")
    if parts:
        raise plugin_error(plugin, "zoo_train", "returned weights that do not load into the model zoo_build_model builds for the run's config: " + "; ".join(parts), method)


def load_state_strict(model: torch.nn.Module, tensors: dict[str, torch.Tensor], what: str) -> None:
    """``load_state_dict(strict=True)`` with one readable message instead of a wall of keys."""
    parts = key_problems(model.state_dict(), tensors)
    if parts:
        raise ZooError(f"{what} does not fit this config: " + "; ".join(parts))
    model.load_state_dict(tensors, strict=True)


def _existing(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise ZooError(f"checkpoint {path} does not exist")
    return path


def _short(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__


def config_dict(config: Any) -> dict[str, Any]:
    return config_to_dict(config)
