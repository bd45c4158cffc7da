"""Every hook: documented with its signature, and called by a test through a throwaway plugin."""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from pathlib import Path

import click
import numpy as np
import pytest
import torch

from zoo import DatasetSpec, ImportedCheckpoint, MaskGeneratorSpec, MethodSpec, MetricSpec, SampleOutput, hookimpl, hookspecs
from zoo.errors import ZooError
from zoo.plugins import get_manager

HOOK_NAMES = sorted(n for n, f in vars(hookspecs).items() if n.startswith("zoo_") and callable(f))


def test_hook_names_are_the_documented_contract():
    assert HOOK_NAMES == sorted(
        [
            "zoo_register_methods",
            "zoo_register_metrics",
            "zoo_register_datasets",
            "zoo_register_mask_generators",
            "zoo_register_commands",
            "zoo_build_model",
            "zoo_train",
            "zoo_sample",
            "zoo_score",
            "zoo_import_checkpoint",
        ]
    )


def test_every_hookspec_has_a_docstring_saying_in_out_and_result_rule():
    for name in HOOK_NAMES:
        fn = getattr(hookspecs, name)
        doc = inspect.getdoc(fn) or ""
        assert len(doc) > 80, f"{name} needs a real docstring"
        assert "Receives" in doc and "Return" in doc, f"{name}: say what it receives and returns"
        firstresult = getattr(fn, "zoo_spec")["firstresult"]
        if firstresult:
            assert "only on the plugin that registered" in doc, name
        else:
            assert "collected" in doc or "every plugin" in doc, name


def test_every_hook_is_called_by_some_test():
    """Each hook name appears in a call ``hook.NAME(`` in a test file."""
    sources = "\n".join(p.read_text() for p in Path(__file__).parent.glob("test_*.py"))
    for name in HOOK_NAMES:
        assert re.search(rf"hook\.{name}\(|\.call\(\"{name}\"", sources), f"no test calls {name}"


@dataclass
class ThrowawayConfig:
    value: float = 0.5


class Throwaway:
    """A plugin object registered for one test and unregistered after."""

    @hookimpl
    def zoo_register_methods(self):
        return [MethodSpec("throwaway", "fills with a constant", "classical", ThrowawayConfig, {"default": {}}, needs_training=False)]

    @hookimpl
    def zoo_build_model(self, method, config):
        return torch.nn.Identity() if method == "throwaway" else None

    @hookimpl
    def zoo_sample(self, method, model, config, images, masks, generator):
        if method != "throwaway":
            return None
        noise = torch.rand(images.shape, generator=generator)
        return SampleOutput(images * (1 - masks) + (config.value * noise) * masks, {"nfe": 0})

    @hookimpl
    def zoo_score(self, method, model, config, images, masks, outputs):
        if method != "throwaway":
            return None
        return {"hole_mean": float((outputs * masks).sum() / masks.sum() / 3)}

    @hookimpl
    def zoo_import_checkpoint(self, method, source, preset):
        if method != "throwaway":
            return None
        return ImportedCheckpoint(ThrowawayConfig(float(Path(source).read_text())), "default", {}, {"note": "from text"})

    @hookimpl
    def zoo_register_metrics(self):
        return [MetricSpec("mean-abs", "mean |pred - gt|", False, lambda p, g, m: (p - g).abs().flatten(1).mean(1))]

    @hookimpl
    def zoo_register_datasets(self):
        return [DatasetSpec("zeros", "all-zero images", lambda resolution, split, seed: [{"image": torch.zeros(3, resolution, resolution)}])]

    @hookimpl
    def zoo_register_mask_generators(self):
        return [MaskGeneratorSpec("left-half", "left half", lambda h, w, rng: np.pad(np.ones((h, w // 2), np.float32), ((0, 0), (0, w - w // 2))))]

    @hookimpl
    def zoo_register_commands(self, cli):
        @click.command("hello")
        def hello():
            click.echo("hello from a plugin")

        cli.add_command(hello)


def _with_throwaway():
    manager = get_manager()
    manager.register(Throwaway(), name="throwaway")
    return manager


def test_method_hooks_are_called_on_the_owning_plugin_only():
    manager = _with_throwaway()
    try:
        model = manager.call("zoo_build_model", "throwaway", config=ThrowawayConfig())
        assert isinstance(model, torch.nn.Identity)
        images = torch.zeros(2, 3, 8, 8)
        masks = torch.zeros(2, 1, 8, 8)
        masks[:, :, 2:6, 2:6] = 1
        g = torch.Generator().manual_seed(1)
        out = manager.call("zoo_sample", "throwaway", model=model, config=ThrowawayConfig(), images=images, masks=masks, generator=g)
        again = manager.call("zoo_sample", "throwaway", model=model, config=ThrowawayConfig(), images=images, masks=masks, generator=torch.Generator().manual_seed(1))
        assert torch.equal(out.images, again.images)
        assert torch.equal(out.images * (1 - masks), images * (1 - masks))
        score = manager.call("zoo_score", "throwaway", model=model, config=ThrowawayConfig(), images=images, masks=masks, outputs=out.images)
        assert 0 < score["hole_mean"] < 0.5
        # the baselines plugin owns conv-l1 and has no zoo_score: nothing is asked of the throwaway
        assert manager.call("zoo_score", "conv-l1", model=model, config=None, images=images, masks=masks, outputs=images) is None
        assert not manager.implements("conv-l1", "zoo_score") and manager.implements("throwaway", "zoo_score")
        with pytest.raises(ZooError, match="unknown method 'nobody'"):
            manager.call("zoo_train", "nobody", ctx=None)
        # pluggy's broadcast still reaches every implementation (the core never uses it for method hooks)
        assert manager.hook.zoo_build_model(method="throwaway", config=ThrowawayConfig()) is not None
    finally:
        manager.unregister("throwaway")
    assert "throwaway" not in manager.methods()


def test_import_hook_through_the_cli(cli, tmp_path):
    manager = _with_throwaway()
    src = tmp_path / "official.txt"
    src.write_text("0.25")
    res = cli("import", "throwaway", src, "--out", tmp_path / "t.safetensors")
    assert res.exit_code == 0, res.output
    from zoo.checkpoint import read_meta

    meta = read_meta(tmp_path / "t.safetensors")
    assert meta.config == {"value": 0.25} and meta.provenance["kind"] == "imported"
    assert manager.call("zoo_import_checkpoint", "conv-l1", source=src, preset=None, overrides={}) is None
    res = cli("import", "conv-l1", src, "--out", tmp_path / "x.safetensors")
    assert res.exit_code == 2 and "no importer" in res.output


def test_registration_hooks_extend_metrics_datasets_masks_and_commands():
    manager = _with_throwaway()
    from zoo.data import open_data
    from zoo.masks import make_mask
    from zoo.metrics import metric

    declared = [spec.name for specs in manager.hook.zoo_register_methods() for spec in specs]
    assert "throwaway" in declared and "conv-l1" in declared
    assert "mean-abs" in {m.name for lst in manager.hook.zoo_register_metrics() for m in lst}
    assert "zeros" in {d.name for lst in manager.hook.zoo_register_datasets() for d in lst}
    assert "left-half" in {k.name for lst in manager.hook.zoo_register_mask_generators() for k in lst}
    assert float(metric("mean-abs").fn(torch.ones(1, 3, 2, 2), torch.zeros(1, 3, 2, 2), None)[0]) == 1.0
    assert open_data("zeros", resolution=4)[0]["image"].shape == (3, 4, 4)
    mask = make_mask("left-half", 4, 6, seed=0, index=0)
    assert mask[0, :, :3].eq(1).all() and mask[0, :, 3:].eq(0).all()

    group = click.Group("t")
    manager.hook.zoo_register_commands(cli=group)
    assert "hello" in group.commands
    from click.testing import CliRunner

    assert CliRunner().invoke(group, ["hello"]).output.strip() == "hello from a plugin"
