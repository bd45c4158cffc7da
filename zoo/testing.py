"""The contract kit: checks every method plugin must pass, for third-party authors and the zoo.

Use it from a plugin's own tests::

    from zoo.testing import check_method

    def test_my_method_keeps_the_contract(tmp_path):
        check_method("my-method", tmp_path)

or one pytest test per check::

    import pytest
    from zoo.testing import CHECKS, run_check

    @pytest.mark.parametrize("check", CHECKS)
    def test_contract(check, tmp_path):
        run_check("my-method", check, tmp_path)

Each check raises ``AssertionError`` with a sentence saying what the method did wrong. The
zoo's own suite runs the kit over every method ``zoo list`` shows (tests/test_contract_kit.py).

The checks (``CHECKS``):

- ``registration``: the ``MethodSpec`` is complete (summary, family from ``zoo.spec.FAMILIES``,
  a dataclass config, presets; a ``tiny`` preset for a learned method);
- ``presets``: every preset resolves and validates, and its model builds (on PyTorch's
  ``meta`` device, so a published 500 M-parameter preset costs no memory);
- ``bad-set``: an unknown ``--set`` key and a wrong-type value are one-line ``ZooError``s;
- ``train``: the ``tiny`` preset trains two steps through ``zoo train``'s code path, with
  finite losses, and leaves a checkpoint;
- ``sample``: known pixels are kept exactly, hole pixels of the input change nothing, the
  same seed gives the same output, an odd size (33 x 31) works or is one ``ZooError``;
- ``round-trip``: the checkpoint loads back into an equal model that samples the same;
- ``score``: ``zoo_score`` (if the method has one) returns finite floats.
"""

from __future__ import annotations

import dataclasses
import json
import math
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch

from zoo.checkpoint import load_model, save_checkpoint
from zoo.config import config_to_dict, resolve_config
from zoo.errors import ZooError
from zoo.inpaint import inpaint
from zoo.plugins import get_manager
from zoo.provenance import checkpoint_meta
from zoo.spec import FAMILIES, MethodSpec

CHECKS = ("registration", "presets", "bad-set", "train", "sample", "round-trip", "score")

#: Image side the kit samples at (the tiny presets train at 32 px).
SIZE = 32


class _Kit:
    """State shared by the checks of one method: the trained tiny model, built once."""

    def __init__(self, method: str, workdir: Path, overrides: dict[str, Any] | None) -> None:
        self.method, self.workdir, self.overrides = method, Path(workdir), dict(overrides or {})
        self.spec: MethodSpec = get_manager().method(method)
        self._model: tuple[torch.nn.Module, Any] | None = None
        self.checkpoint: Path | None = None

    # -- helpers --------------------------------------------------------------------------
    def preset(self) -> str | None:
        return "tiny" if "tiny" in self.spec.presets else None

    def model(self) -> tuple[torch.nn.Module, Any]:
        """The tiny model: trained two steps for a learned method, else built from the preset."""
        if self._model is None:
            if self.spec.needs_training:
                self.checkpoint = self.train()
                model, config, _ = load_model(self.checkpoint, self.method, self.overrides or None)
            else:
                config, _ = resolve_config(self.spec, self.preset(), self.overrides or None)
                model = get_manager().hook.zoo_build_model(method=self.method, config=config)
            self._model = (model.eval(), config)
        return self._model

    def train(self) -> Path:
        from zoo.runner import train
        from zoo.train import TrainOptions

        out = self.workdir / "kit-run"
        return train(self.method, "shapes", preset="tiny", steps=2, batch_size=2, seed=0, out_dir=out,
                     options=TrainOptions(progress=False, device="cpu", tensorboard=False), overrides=self.overrides or None)

    def batch(self, h: int = SIZE, w: int = SIZE, n: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
        from zoo.data import ShapesDataset

        data = ShapesDataset(resolution=max(h, w), seed=3, split="val")
        images = torch.stack([data[i]["image"][:, :h, :w] for i in range(n)])
        masks = torch.zeros(n, 1, h, w)
        masks[..., h // 4 : h // 2 + 3, w // 5 : w - w // 4] = 1
        return images, masks

    def sample(self, images: torch.Tensor, masks: torch.Tensor, seed: int) -> torch.Tensor:
        model, config = self.model()
        with torch.no_grad():
            out, _ = inpaint(self.method, model, config, images, masks, torch.Generator().manual_seed(seed))
        return out

    # -- the checks -----------------------------------------------------------------------
    def check_registration(self) -> None:
        s = self.spec
        assert s.summary.strip(), f"{s.name}: MethodSpec.summary is empty"
        assert s.family in FAMILIES, f"{s.name}: family {s.family!r} is not one of {FAMILIES}"
        assert dataclasses.is_dataclass(s.config), f"{s.name}: config must be a dataclass type"
        assert s.presets, f"{s.name}: no presets"
        assert s.default in s.presets, f"{s.name}: default preset {s.default!r} is not a preset"
        if s.needs_training:
            assert "tiny" in s.presets, f"{s.name}: a learned method needs a 'tiny' preset (seconds on a CPU)"
        info = get_manager().plugin_of(s.name)
        assert info.status == "ok", f"{s.name}: its plugin {info.name} is {info.status}"

    def check_presets(self) -> None:
        for preset in self.spec.presets:
            config, _ = resolve_config(self.spec, preset)
            json.dumps(config_to_dict(config), default=str)  # the config fits in checkpoint metadata
            with torch.device("meta"):
                model = get_manager().hook.zoo_build_model(method=self.method, config=config)
            assert isinstance(model, torch.nn.Module), f"{self.method}: zoo_build_model returned {type(model).__name__} for preset {preset}"

    def check_bad_set(self) -> None:
        for bad in ({"no_such_field_xyz": "1"}, {_first_typed_field(self.spec.config): "[[not a value"}):
            try:
                resolve_config(self.spec, self.preset(), bad)
            except ZooError as exc:
                assert "\n" not in str(exc), f"{self.method}: a bad --set gives a multi-line error: {exc}"
            else:
                raise AssertionError(f"{self.method}: --set {bad} was accepted")

    def check_train(self) -> None:
        if not self.spec.needs_training:
            return
        self.model()
        run = self.workdir / "kit-run"
        assert (run / "model.safetensors").is_file(), f"{self.method}: zoo train left no model.safetensors"
        files = sorted(run.rglob("log.jsonl"))  # two-stage methods log each stage in its own folder
        assert files, f"{self.method}: training wrote no log.jsonl under {run}"
        logs = [json.loads(line) for f in files for line in f.read_text().splitlines()]
        values = [v for r in logs if "step" in r and "event" not in r for k, v in r.items() if isinstance(v, float)]
        assert values and all(math.isfinite(v) for v in values), f"{self.method}: training logged no or non-finite losses: {values[:8]}"

    def check_sample(self) -> None:
        images, masks = self.batch()
        out = self.sample(images, masks, seed=5)
        assert out.shape == images.shape, f"{self.method}: output shape {tuple(out.shape)} for input {tuple(images.shape)}"
        keep = ~masks.bool().expand_as(images)
        assert torch.equal(out[keep], images[keep]), f"{self.method}: known pixels changed"
        assert torch.isfinite(out).all(), f"{self.method}: output has NaN/Inf"
        other = torch.where(masks.bool().expand_as(images), torch.rand_like(images) * 2 - 1, images)
        assert torch.equal(self.sample(other, masks, seed=5), out), f"{self.method}: the hole content of the input changed the output"
        assert torch.equal(self.sample(images, masks, seed=5), out), f"{self.method}: the same seed gave a different output"
        odd_images, odd_masks = self.batch(33, 31, n=1)
        try:
            odd = self.sample(odd_images, odd_masks, seed=1)
        except ZooError as exc:
            assert "\n" not in str(exc), f"{self.method}: refusing 33x31 takes more than one line: {exc}"
        else:
            assert odd.shape == odd_images.shape, f"{self.method}: 33x31 input gave {tuple(odd.shape)}"

    def check_round_trip(self) -> None:
        model, config = self.model()
        path = self.workdir / "kit-roundtrip.safetensors"
        save_checkpoint(path, model.state_dict(), checkpoint_meta(self.method, config, self.preset() or self.spec.default, 0, {"kind": "kit"}))
        again, config2, _ = load_model(path, self.method)
        a, b = model.state_dict(), again.state_dict()
        assert a.keys() == b.keys(), f"{self.method}: the checkpoint does not hold the same tensors"
        for k in a:
            assert torch.equal(a[k].cpu(), b[k].cpu()), f"{self.method}: tensor {k} changed through the checkpoint"
        assert config_to_dict(config2) == config_to_dict(config), f"{self.method}: the config changed through the checkpoint"
        images, masks = self.batch(n=1)
        with torch.no_grad():
            x, _ = inpaint(self.method, again.eval(), config2, images, masks, torch.Generator().manual_seed(2))
        assert torch.equal(x, self.sample(images, masks, seed=2)), f"{self.method}: the reloaded model samples differently"

    def check_score(self) -> None:
        model, config = self.model()
        images, masks = self.batch(n=2)
        outputs = self.sample(images, masks, seed=0)
        with torch.no_grad():
            scores = get_manager().hook.zoo_score(method=self.method, model=model, config=config, images=images, masks=masks, outputs=outputs)
        if scores is None:
            return
        assert isinstance(scores, dict), f"{self.method}: zoo_score returned {type(scores).__name__}, not a dict"
        for k, v in scores.items():
            assert isinstance(k, str) and isinstance(v, (int, float)) and math.isfinite(float(v)), f"{self.method}: score {k}={v!r} is not a finite number"


def _first_typed_field(cls: type) -> str:
    """A field that rejects the value ``[[not a value`` (an int, float or bool)."""
    from zoo.config import field_types

    for name, tp in field_types(cls).items():
        if tp in (int, float, bool):
            return name
    return "no_such_field_either"


_KITS: dict[tuple[str, str], _Kit] = {}


def run_check(method: str, check: str, workdir: str | Path | None = None, overrides: dict[str, Any] | None = None) -> None:
    """Run one check of :data:`CHECKS` on ``method``; files go under ``workdir``. The trained
    tiny model is shared by the checks of one ``(method, workdir)``."""
    if check not in CHECKS:
        raise ValueError(f"unknown check {check!r}; valid: {', '.join(CHECKS)}")
    workdir = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="zoo-kit-"))
    key = (method, str(workdir))
    kit = _KITS.get(key)
    if kit is None or kit.spec is not get_manager().method(method):
        kit = _KITS[key] = _Kit(method, workdir, overrides)
    fn: Callable[[], None] = getattr(kit, "check_" + check.replace("-", "_"))
    fn()


def check_method(method: str, workdir: str | Path | None = None, overrides: dict[str, Any] | None = None) -> None:
    """Run every check of :data:`CHECKS` on ``method`` (``overrides``: config values the
    tiny model trains and samples with, e.g. fewer sampling steps)."""
    for check in CHECKS:
        run_check(method, check, workdir, overrides)
