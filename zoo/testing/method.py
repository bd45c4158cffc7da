"""The method checks of the kit (``CHECKS``, :func:`run_check`, :func:`check_method`)."""

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
from zoo.errors import PluginError, ZooError
from zoo.inpaint import NonFiniteOutput, inpaint
from zoo.plugins import get_manager
from zoo.provenance import checkpoint_meta
from zoo.spec import FAMILIES, MethodSpec
from zoo.testing.common import _GLOBAL_NAMES, KitFailure, _global_rng, _one_line, example_batch
from zoo.testing.plugin import _check_plugin_hooks, _refusals

CHECKS = ("registration", "hooks", "presets", "bad-set", "train", "sample", "round-trip", "score")


class _Kit:
    """State shared by the checks of one method: the trained tiny model, built once."""

    def __init__(self, method: str, spec: MethodSpec, workdir: Path, overrides: dict[str, Any] | None) -> None:
        self.method, self.spec, self.workdir, self.overrides = method, spec, Path(workdir), dict(overrides or {})
        self._model: tuple[torch.nn.Module, Any] | None = None
        self.checkpoint: Path | None = None
        self.current = ""

    def fail(self, sub: str, message: str) -> KitFailure:
        return KitFailure(self.method, self.current, sub, message)

    def ensure(self, ok: Any, sub: str, message: str | Callable[[], str]) -> None:
        if not ok:
            raise self.fail(sub, message() if callable(message) else message)

    # -- helpers --------------------------------------------------------------------------
    def preset(self) -> str | None:
        return "tiny" if "tiny" in self.spec.presets else None

    def model(self, sub: str = "model") -> tuple[torch.nn.Module, Any]:
        """The tiny model: trained two steps for a learned method, else built from the preset."""
        if self._model is None:
            try:
                if self.spec.needs_training:
                    self.checkpoint = self.train()
                    model, config, _ = load_model(self.checkpoint, self.method, self.overrides or None)
                else:
                    config, _ = resolve_config(self.spec, self.preset(), self.overrides or None)
                    model = get_manager().call("zoo_build_model", self.method, config=config)
            except Exception as exc:
                what = "training the tiny preset two steps (zoo train)" if self.spec.needs_training else "building the model"
                raise self.fail(sub, f"{what} failed: {_one_line(exc)}") from exc
            self._model = (model.eval(), config)
        return self._model

    def train(self) -> Path:
        from zoo.runner import train
        from zoo.train import TrainOptions

        out = self.workdir / "kit-run"
        return train(self.method, "shapes", preset="tiny", steps=2, batch_size=2, seed=0, out_dir=out,
                     options=TrainOptions(progress=False, device="cpu", tensorboard=False), overrides=self.overrides or None)

    def sample(self, images: torch.Tensor, masks: torch.Tensor, seed: int, global_seed: int = 0, which: tuple[str, ...] = ("torch", "numpy", "random"),
               model: tuple[torch.nn.Module, Any] | None = None, sub: str = "runs") -> torch.Tensor:
        """``inpaint`` with a generator seeded ``seed``, every global RNG seeded ``global_seed``."""
        net, config = model or self.model()
        try:
            with torch.no_grad(), _global_rng(global_seed, which):
                out, _ = inpaint(self.method, net, config, images, masks, torch.Generator().manual_seed(seed))
        except NonFiniteOutput as exc:
            raise self.fail("finite", str(exc)) from exc
        except PluginError as exc:
            raise self.fail("output", str(exc)) from exc
        except ZooError as exc:
            if sub == "odd-size":  # refusing a size in one line is allowed
                raise
            raise self.fail(sub, f"zoo_sample refused a {tuple(images.shape[-2:])} batch: {exc}") from exc
        except Exception as exc:
            raise self.fail(sub, f"zoo_sample raised {_one_line(exc)}") from exc
        return out

    # -- the checks -----------------------------------------------------------------------
    def check_registration(self) -> None:
        s = self.spec
        self.ensure(s.summary.strip(), "summary", "MethodSpec.summary is empty")
        self.ensure(s.family in FAMILIES, "family", f"family {s.family!r} is not one of {FAMILIES}")
        self.ensure(dataclasses.is_dataclass(s.config) and isinstance(s.config, type), "config", "config must be a dataclass type")
        self.ensure(s.presets, "presets", "no presets")
        self.ensure(s.default in s.presets, "default-preset", f"default preset {s.default!r} is not a preset")
        if s.needs_training:
            self.ensure("tiny" in s.presets, "tiny-preset", "a learned method needs a 'tiny' preset (seconds on a CPU)")

    def check_hooks(self) -> None:
        manager = get_manager()
        plugin = manager.owner("methods", self.method)
        try:
            _check_plugin_hooks(plugin, check="hooks")
        except KitFailure as exc:
            raise self.fail(exc.subcheck, f"its plugin {plugin}: {exc.message}") from None
        clashes = _refusals("method", self.method)
        self.ensure(not clashes, "unique", lambda: f"plugin {plugin} registered it first; {' and '.join(clashes)} registered it too (refused); rename one")

    def check_presets(self) -> None:
        for preset in self.spec.presets:
            try:
                config, _ = resolve_config(self.spec, preset)
            except ZooError as exc:
                raise self.fail("resolves", f"preset {preset!r} does not resolve: {exc}") from exc
            try:
                json.dumps(config_to_dict(config), default=str)  # the config fits in checkpoint metadata
            except (TypeError, ValueError) as exc:
                raise self.fail("json", f"preset {preset!r}: the config is not JSON-serialisable: {exc}") from exc
            try:
                with torch.device("meta"):
                    model = get_manager().call("zoo_build_model", self.method, config=config)
            except Exception as exc:
                raise self.fail("builds", f"zoo_build_model failed for preset {preset!r}: {_one_line(exc)}") from exc
            self.ensure(isinstance(model, torch.nn.Module), "builds", f"zoo_build_model returned {type(model).__name__} for preset {preset}")

    def check_bad_set(self) -> None:
        for sub, bad in (("unknown-key", {"no_such_field_xyz": "1"}), ("wrong-type", {_first_typed_field(self.spec.config): "[[not a value"})):
            try:
                resolve_config(self.spec, self.preset(), bad)
            except ZooError as exc:
                self.ensure("\n" not in str(exc), sub, f"a bad --set gives a multi-line error: {exc}")
            else:
                raise self.fail(sub, f"--set {bad} was accepted")

    def check_train(self) -> None:
        if not self.spec.needs_training:
            return
        self.model(sub="runs")
        run = self.workdir / "kit-run"
        self.ensure((run / "model.safetensors").is_file(), "checkpoint", "zoo train left no model.safetensors")
        files = sorted(run.rglob("log.jsonl"))  # two-stage methods log each stage in its own folder
        self.ensure(files, "log", f"training wrote no log.jsonl under {run}")
        logs = [json.loads(line) for f in files for line in f.read_text().splitlines()]
        values = [v for r in logs if "step" in r and "event" not in r for k, v in r.items() if isinstance(v, float)]
        self.ensure(values and all(math.isfinite(v) for v in values), "finite-loss", f"training logged no or non-finite losses: {values[:8]}")

    def check_sample(self) -> None:
        images, masks = example_batch()
        out = self.sample(images, masks, seed=5)
        self.ensure(out.shape == images.shape, "output", f"output shape {tuple(out.shape)} for input {tuple(images.shape)}")
        self.ensure(torch.isfinite(out).all(), "finite", "output has NaN/Inf")
        keep = ~masks.bool().expand_as(images)
        self.ensure(torch.equal(out[keep], images[keep]), "known-pixels", "known pixels changed")
        # 1. determinism: the same generator seed with the same global RNG states
        again = self.sample(images, masks, seed=5)
        self.ensure(torch.equal(again, out), "same-seed", "the same seed gave a different output, even with every global RNG (torch, numpy, random) "
                    "seeded alike: sampling is not deterministic (state kept between calls, or a non-deterministic op?)")
        # 2. the generator must be the only randomness: other global states, same output
        if not torch.equal(self.sample(images, masks, seed=5, global_seed=98765), out):
            used = [name for name in _GLOBAL_NAMES if not torch.equal(self.sample(images, masks, seed=5, global_seed=98765, which=(name,)), out)]
            which = ", ".join(_GLOBAL_NAMES[n] for n in used) or "the global RNG states together"
            raise self.fail("generator-only", f"sampling uses randomness other than the generator it is given ({which}?): with the same generator "
                                              "seed, other global seeds changed the output; use the `generator` argument "
                                              "(e.g. torch.randn(shape, generator=generator))")
        # 3. only then: the hole content of the input is never read
        other = torch.where(masks.bool().expand_as(images), torch.rand(images.shape, generator=torch.Generator().manual_seed(9)) * 2 - 1, images)
        self.ensure(torch.equal(self.sample(other, masks, seed=5), out), "hole-ignored", "the hole content of the input changed the output")
        odd_images, odd_masks = example_batch(1, 33, 31)
        try:
            odd = self.sample(odd_images, odd_masks, seed=1, sub="odd-size")
        except ZooError as exc:
            self.ensure("\n" not in str(exc), "odd-size", f"refusing 33x31 takes more than one line: {exc}")
        else:
            self.ensure(odd.shape == odd_images.shape, "odd-size", f"33x31 input gave {tuple(odd.shape)}")

    def check_round_trip(self) -> None:
        model, config = self.model()
        path = self.workdir / "kit-roundtrip.safetensors"
        save_checkpoint(path, model.state_dict(), checkpoint_meta(self.method, config, self.preset() or self.spec.default, 0, {"kind": "kit"}))
        again, config2, _ = load_model(path, self.method)
        a, b = model.state_dict(), again.state_dict()
        self.ensure(a.keys() == b.keys(), "keys", "the checkpoint does not hold the same tensors")
        for k in a:
            self.ensure(torch.equal(a[k].cpu(), b[k].cpu()), "tensors", f"tensor {k} changed through the checkpoint")
        self.ensure(config_to_dict(config2) == config_to_dict(config), "config", "the config changed through the checkpoint")
        images, masks = example_batch(n=1)
        x = self.sample(images, masks, seed=2, model=(again.eval(), config2))
        self.ensure(torch.equal(x, self.sample(images, masks, seed=2)), "same-samples", "the reloaded model samples differently")

    def check_score(self) -> None:
        model, config = self.model()
        images, masks = example_batch(n=2)
        outputs = self.sample(images, masks, seed=0)
        try:
            with torch.no_grad():
                scores = get_manager().call("zoo_score", self.method, model=model, config=config, images=images, masks=masks, outputs=outputs)
        except PluginError as exc:
            raise self.fail("type", str(exc)) from exc
        except Exception as exc:
            raise self.fail("runs", f"zoo_score raised {_one_line(exc)}") from exc
        if scores is None:
            return
        self.ensure(isinstance(scores, dict), "type", f"zoo_score returned {type(scores).__name__}, not a dict")
        for k, v in scores.items():
            self.ensure(isinstance(k, str) and math.isfinite(float(v)), "finite", f"score {k}={v!r} is not a finite number")


def _first_typed_field(cls: type) -> str:
    """A field that rejects the value ``[[not a value`` (an int, float or bool)."""
    from zoo.config import field_types

    for name, tp in field_types(cls).items():
        if tp in (int, float, bool):
            return name
    return "no_such_field_either"


_KITS: dict[tuple[str, str], _Kit] = {}


def run_check(method: str, check: str, workdir: str | Path | None = None, overrides: dict[str, Any] | None = None, plugin: str | None = None) -> None:
    """Run one check of :data:`CHECKS` on ``method``; files go under ``workdir``. The trained
    tiny model is shared by the checks of one ``(method, workdir)``. ``plugin``: the plugin
    that must own the method (a name clash is then caught whichever plugin loads first)."""
    if check not in CHECKS:
        raise ValueError(f"unknown check {check!r}; valid: {', '.join(CHECKS)}")
    manager = get_manager()
    try:
        spec = manager.method(method)
    except ZooError as exc:
        raise KitFailure(method, check, "registered", f"the method is not registered: {exc}") from exc
    owner = manager.owner("methods", method)
    if plugin is not None and owner != plugin:
        sub = "unique" if check == "hooks" else "registered"
        raise KitFailure(method, check, sub, f"the method is registered by plugin {owner}, not {plugin}"
                         + (" (its registration was refused: a name clash; rename the method)" if _refusals("method", method) else ""))
    workdir = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="zoo-kit-"))
    key = (method, str(workdir))
    kit = _KITS.get(key)
    if kit is None or kit.spec is not spec:
        kit = _KITS[key] = _Kit(method, spec, workdir, overrides)
    kit.current = check
    fn: Callable[[], None] = getattr(kit, "check_" + check.replace("-", "_"))
    fn()


def check_method(method: str, workdir: str | Path | None = None, overrides: dict[str, Any] | None = None, plugin: str | None = None) -> None:
    """Run every check of :data:`CHECKS` on ``method`` (``overrides``: config values the
    tiny model trains and samples with, e.g. fewer sampling steps)."""
    for check in CHECKS:
        run_check(method, check, workdir, overrides, plugin)
