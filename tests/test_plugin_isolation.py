"""What the core checks for a plugin author: each slip of the failure table in issue 23,
rebuilt as a throwaway plugin, gives one line naming the plugin and the hook (or needs no
guard any more), and leaves every other plugin working."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from PIL import Image

from zoo import DatasetSpec, MaskGeneratorSpec, MethodSpec, MetricSpec, SampleOutput, TrainResult, hookimpl
from zoo.errors import PluginError, plugin_origin
from zoo.plugins import get_manager


@dataclass
class FillConfig:
    value: float = 0.0
    resolution: int = 32
    steps: int = 2
    batch_size: int = 2


class Tiny(torch.nn.Module):
    def __init__(self, width: int = 3):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(width))


def _spec(name: str, **kw) -> MethodSpec:
    kw.setdefault("needs_training", False)
    return MethodSpec(name, "a test method", "classical", FillConfig, {"tiny": {}}, **kw)


def _register(obj, name: str):
    return get_manager().register(obj, name=name)


def _sample_batch():
    images = torch.rand(2, 3, 16, 16) * 2 - 1
    masks = torch.zeros(2, 1, 16, 16)
    masks[..., 4:12, 4:12] = 1
    return images, masks


def _telea_still_works():
    from zoo.inpaint import inpaint
    from zoo.runner import build_model

    model, config = build_model("telea", None)
    images, masks = _sample_batch()
    out, _ = inpaint("telea", model, config, images, masks, torch.Generator().manual_seed(0))
    assert torch.equal(out * (1 - masks), images * (1 - masks))


# -- 2. hook names and arguments ------------------------------------------------------------
class Misspelled:
    @hookimpl
    def zoo_register_methods(self):
        return [_spec("misspelled")]

    @hookimpl
    def zoo_sampel(self, method, model, config, images, masks, generator):
        return None

    @hookimpl
    def zoo_build_model(self, method, cfg):  # the hook passes `config`
        return Tiny()

    def zoo_score(self, method, model, config, images, masks, outputs):  # no @hookimpl
        return {}


def test_misspelled_hooks_wrong_arguments_and_missing_markers_mark_the_plugin_broken(cli):
    info = _register(Misspelled(), "misspelled")
    assert info.status == "broken"
    lines = info.error.splitlines()
    assert len(lines) == 3, lines  # one line per problem, none cut
    assert any("zoo_sampel is not a hook of the zoo (did you mean zoo_sample?" in line for line in lines)
    assert any("zoo_build_model: argument(s) 'cfg' are declared in the hookimpl but can not be found in the hookspec (it passes method, config)" in line
               for line in lines)
    assert any("zoo_score is not marked @hookimpl" in line for line in lines)
    assert "misspelled" not in get_manager().methods()
    res = cli("plugins")
    assert res.exit_code == 0
    assert "did you mean zoo_sample?" in res.output and "'cfg'" in res.output and "not marked @hookimpl" in res.output
    rows = {p["name"]: p for p in json.loads(cli("plugins", "--json").output)}
    assert rows["misspelled"]["error"].count("\n") == 2
    _telea_still_works()


# -- 3. name clashes -------------------------------------------------------------------------
class Clashing:
    @hookimpl
    def zoo_register_methods(self):
        return [_spec("telea"), _spec("clash-own")]

    @hookimpl
    def zoo_build_model(self, method, config):
        return Tiny()

    @hookimpl
    def zoo_sample(self, method, model, config, images, masks, generator):
        return SampleOutput(images)

    @hookimpl
    def zoo_register_metrics(self):
        return [MetricSpec("psnr", "not the real psnr", True, lambda p, g, m: torch.zeros(p.shape[0])),
                MetricSpec("clash-metric", "its own", True, lambda p, g, m: torch.zeros(p.shape[0]))]

    @hookimpl
    def zoo_register_datasets(self):
        return [DatasetSpec("shapes", "not the real shapes", lambda resolution, split, seed: [])]

    @hookimpl
    def zoo_register_mask_generators(self):
        return [MaskGeneratorSpec("box", "not the real box", lambda h, w, rng: np.zeros((h, w), np.float32))]


def test_a_name_another_plugin_registered_first_is_refused_with_one_warning(cli):
    from zoo.masks import kinds
    from zoo.metrics import metric, metrics

    info = _register(Clashing(), "zz-clash")
    with pytest.warns(UserWarning) as caught:
        manager = get_manager()
        assert manager.methods()["telea"][1] == "baselines"
    texts = [str(w.message) for w in caught]
    for noun, name, first in (("method", "telea", "baselines"), ("metric", "psnr", "zoo"), ("dataset", "shapes", "zoo"), ("mask kind", "box", "zoo")):
        hits = [t for t in texts if f"the {noun} {name!r}" in t]
        assert len(hits) == 1 and f"plugin {first!r} registered first" in hits[0] and "'zz-clash'" in hits[0], texts
    assert info.status == "ok" and info.methods == ["clash-own"] and info.metrics == ["clash-metric"]
    assert sorted(info.refused) == ["dataset shapes (registered first by zoo)", "mask kind box (registered first by zoo)",
                                    "method telea (registered first by baselines)", "metric psnr (registered first by zoo)"]
    assert metric("psnr").description.startswith("PSNR") and "clash-metric" in metrics()
    assert get_manager().specs("datasets")["shapes"].description.startswith("procedural") and kinds()["box"].description != "not the real box"
    assert manager.owner("metrics", "psnr") == "zoo" and manager.owner("metrics", "clash-metric") == "zz-clash"
    _telea_still_works()
    out = cli("plugins").output
    assert "refused method telea (registered first by baselines)" in out and "metrics clash-metric" in out


# -- 4. a broken plugin contributes nothing --------------------------------------------------
class BrokenAtRegistration:
    @hookimpl
    def zoo_register_methods(self):
        raise ValueError("bad spec")

    @hookimpl
    def zoo_register_metrics(self):
        return [MetricSpec("ghost-metric", "from a broken plugin", True, lambda p, g, m: torch.zeros(p.shape[0]))]

    @hookimpl
    def zoo_register_datasets(self):
        return [DatasetSpec("ghost-data", "from a broken plugin", lambda resolution, split, seed: [])]

    @hookimpl
    def zoo_register_mask_generators(self):
        return [MaskGeneratorSpec("ghost-mask", "from a broken plugin", lambda h, w, rng: np.zeros((h, w), np.float32))]


def test_a_plugin_broken_at_registration_serves_no_metric_dataset_or_mask_kind(cli):
    from zoo.masks import kinds
    from zoo.metrics import metrics

    _register(BrokenAtRegistration(), "ghostly")
    info = {p.name: p for p in get_manager().plugins()}["ghostly"]
    assert info.status == "broken" and info.error.startswith("zoo_register_methods: ValueError: bad spec")
    assert "ghost-metric" not in metrics() and "ghost-data" not in get_manager().specs("datasets") and "ghost-mask" not in kinds()
    res = cli("score", "--pred", ".", "--gt", ".", "--metric", "ghost-metric")
    assert res.exit_code == 2 and "unknown metric 'ghost-metric'" in res.output


class BrokenWithACommand(BrokenAtRegistration):
    @hookimpl
    def zoo_register_commands(self, cli):
        import click

        cli.add_command(click.Command("ghost-cmd", callback=lambda: None))


class FailingCommand:
    @hookimpl
    def zoo_register_commands(self, cli):
        raise RuntimeError("cannot build my command")


def test_a_broken_plugin_adds_no_command_and_a_failing_one_leaves_the_others():
    import click

    _register(BrokenWithACommand(), "ghostly")
    _register(FailingCommand(), "failingcmd")
    group = click.Group("t")
    with pytest.warns(UserWarning, match=r"plugin 'failingcmd' failed to add its commands \(zoo_register_commands: RuntimeError: cannot build my command"):
        get_manager().add_commands(group)
    assert "ghost-cmd" not in group.commands


class WrongRegistrationType:
    @hookimpl
    def zoo_register_metrics(self):
        return [{"name": "dict-metric"}]


def test_registration_of_the_wrong_type_names_the_hook_and_the_expected_type():
    _register(WrongRegistrationType(), "wrongtype")
    info = {p.name: p for p in get_manager().plugins()}["wrongtype"]
    assert info.status == "broken"
    assert info.error == "zoo_register_metrics: returned a dict in its list; expected zoo.MetricSpec"


# -- 5. config instance, wrong return types and shapes ---------------------------------------
class ConfigInstance:
    @hookimpl
    def zoo_register_methods(self):
        return [MethodSpec("instance-cfg", "config given as an instance", "classical", FillConfig(), {"tiny": {}}, needs_training=False)]


def test_a_config_instance_is_one_line_in_info_and_train(cli):
    _register(ConfigInstance(), "instancecfg")
    for args in (("info", "instance-cfg"), ("train", "instance-cfg", "--data", "shapes")):
        res = cli(*args)
        assert res.exit_code == 2, res.output
        line = res.output.strip()
        assert "\n" not in line and "Traceback" not in line
        assert "instancecfg (broken: zoo_register_methods: method 'instance-cfg': config is an instance of FillConfig; pass the class itself (config=FillConfig))" in line


class BadSampler:
    """``mode`` picks the slip: a bare tensor, the wrong shape, a crash in its own code."""

    mode = "tensor"

    @hookimpl
    def zoo_register_methods(self):
        return [_spec("bad-sampler")]

    @hookimpl
    def zoo_build_model(self, method, config):
        return Tiny()

    @hookimpl
    def zoo_sample(self, method, model, config, images, masks, generator):
        if self.mode == "tensor":
            return images
        if self.mode == "shape":
            return SampleOutput(images[:, :, :-1])
        return SampleOutput(torch.cat([images, masks], dim=2))  # raises: a bug in the plugin's own code


@pytest.mark.parametrize("mode, expected", [
    ("tensor", "Error: plugin 'badsampler' (zoo_sample, method 'bad-sampler'): returned a torch.Tensor; expected a zoo.SampleOutput(images=..., info={...})"),
    ("shape", "Error: plugin 'badsampler' (zoo_sample, method 'bad-sampler'): returned images of shape (3, 3, 39, 48) for input (3, 3, 40, 48); expected (3, 3, 40, 48) (B, 3, H, W)"),
])
def test_a_wrong_sample_output_is_one_line_naming_plugin_and_hook(cli, tmp_path, image_folder, mode, expected):
    plugin = BadSampler()
    plugin.mode = mode
    _register(plugin, "badsampler")
    images, masks = image_folder
    res = cli("sample", "bad-sampler", "--images", images, "--masks", masks, "--out", tmp_path / "out")
    assert res.exit_code == 2
    assert res.stderr.strip().splitlines()[-1] == expected  # after the progress bar, one line
    assert not (tmp_path / "out").exists()


def test_an_exception_in_plugin_code_names_plugin_and_hook_first_and_keeps_the_traceback(cli, tmp_path, image_folder):
    plugin = BadSampler()
    plugin.mode = "crash"
    _register(plugin, "badsampler")
    images, masks = image_folder
    res = cli("sample", "bad-sampler", "--images", images, "--masks", masks, "--out", tmp_path / "out")
    assert res.exit_code == 1
    lines = [line for line in res.stderr.splitlines() if line.strip() and not line.startswith("sample bad-sampler:")]  # no progress bar
    assert lines[0].startswith("Error: plugin 'badsampler' raised RuntimeError in zoo_sample (method 'bad-sampler'): Sizes of tensors must match")
    assert lines[1] == "Traceback (most recent call last):"
    assert f'File "{__file__}"' in res.output and "in zoo_sample" in res.output  # it points at the plugin's own line
    # in the library the exception keeps its type, tagged with where it came from
    from zoo.inpaint import inpaint

    images_t, masks_t = _sample_batch()
    with pytest.raises(RuntimeError) as caught:
        inpaint("bad-sampler", Tiny(), FillConfig(), images_t, masks_t, torch.Generator())
    assert plugin_origin(caught.value) == ("badsampler", "zoo_sample", "bad-sampler")


class BadTrainer:
    mode = "none"

    @hookimpl
    def zoo_register_methods(self):
        return [_spec("bad-trainer", needs_training=True)]

    @hookimpl
    def zoo_build_model(self, method, config):
        return Tiny(3)

    @hookimpl
    def zoo_train(self, method, ctx):
        if self.mode == "mismatch":
            return TrainResult({"w": torch.zeros(5), "extra": torch.zeros(1)}, step=ctx.steps)
        TrainResult(Tiny(3).state_dict(), step=ctx.steps)  # the `return` is forgotten

    @hookimpl
    def zoo_sample(self, method, model, config, images, masks, generator):
        return SampleOutput(images)


@pytest.mark.parametrize("mode, expected", [
    ("none", "Error: plugin 'badtrainer' (zoo_train, method 'bad-trainer'): returned None after training; expected a zoo.TrainResult(state_dict=..., step=...) (is a `return` missing?)"),
    ("mismatch", "Error: plugin 'badtrainer' (zoo_train, method 'bad-trainer'): returned weights that do not load into the model zoo_build_model builds for the run's config: "
                 "1 with no place in the model (e.g. extra); 1 of another shape (e.g. w: file (5,), model (3,))"),
])
def test_a_wrong_training_result_is_caught_before_the_run_is_reported_done(cli, tmp_path, mode, expected):
    plugin = BadTrainer()
    plugin.mode = mode
    _register(plugin, "badtrainer")
    res = cli("train", "bad-trainer", "--data", "shapes", "--steps", "2", "--out", tmp_path / "run")
    assert res.exit_code == 2
    assert res.output.strip().splitlines()[-1] == expected
    assert not (tmp_path / "run" / "model.safetensors").exists()


def test_wrong_build_and_score_results_are_plugin_errors():
    class BadModel:
        @hookimpl
        def zoo_register_methods(self):
            return [_spec("bad-model")]

        @hookimpl
        def zoo_build_model(self, method, config):
            return {"w": torch.zeros(1)}

        @hookimpl
        def zoo_score(self, method, model, config, images, masks, outputs):
            return {"hole": torch.zeros(4)}

    _register(BadModel(), "badmodel")
    manager = get_manager()
    with pytest.raises(PluginError, match=r"^plugin 'badmodel' \(zoo_build_model, method 'bad-model'\): returned a dict; expected a torch.nn.Module$"):
        manager.call("zoo_build_model", "bad-model", config=FillConfig())
    with pytest.raises(PluginError, match=r"zoo_score, method 'bad-model'\): returned 'hole': Tensor; expected a dict of name -> float"):
        manager.call("zoo_score", "bad-model", model=None, config=None, images=None, masks=None, outputs=None)
    with pytest.raises(PluginError, match="registers method 'bad-model' but does not implement zoo_sample"):
        manager.call("zoo_sample", "bad-model", model=None, config=None, images=None, masks=None, generator=None)


# -- 5. metric shapes and NaN values --------------------------------------------------------
class OddMetrics:
    @hookimpl
    def zoo_register_metrics(self):
        def half_nan(pred, gt, mask):
            v = (pred - gt).abs().flatten(1).mean(1)
            v[::2] = float("nan")
            return v

        return [MetricSpec("half-nan", "NaN for every other image", False, half_nan),
                MetricSpec("wrong-shape", "one value per pixel", False, lambda p, g, m: (p - g).abs()),
                MetricSpec("not-a-tensor", "a list", False, lambda p, g, m: [0.0] * p.shape[0])]


def _pred_gt(tmp_path, n=4):
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    pred.mkdir()
    gt.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(pred / f"{i}.png")
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(gt / f"{i}.png")
    return pred, gt


def test_nan_metric_values_are_counted_in_a_warning_and_marked_in_the_table(cli, tmp_path):
    _register(OddMetrics(), "oddmetrics")
    pred, gt = _pred_gt(tmp_path)
    res = cli("score", "--pred", pred, "--gt", gt, "--metric", "half-nan,psnr")
    assert res.exit_code == 0, res.output
    assert "Warning: metric 'half-nan' (plugin oddmetrics) gave NaN or infinite values for 2 of 4 images; they are left out of its mean (n=2)" in res.output
    assert "(2 NaN/inf left out)" in res.output
    data = json.loads(cli("score", "--pred", pred, "--gt", gt, "--metric", "half-nan", "--json").stdout)
    assert data["metrics"]["half-nan"]["non_finite"] == 2 and data["metrics"]["half-nan"]["n"] == 2
    assert math.isfinite(data["metrics"]["half-nan"]["value"])


@pytest.mark.parametrize("name, expected", [
    ("wrong-shape", "Error: plugin 'oddmetrics' (zoo_register_metrics): metric 'wrong-shape' returned shape (4, 3, 16, 16) for a batch of 4; expected (4,), one value per image"),
    ("not-a-tensor", "Error: plugin 'oddmetrics' (zoo_register_metrics): metric 'not-a-tensor' returned list; expected a tensor of shape (4,), one value per image"),
])
def test_a_wrong_metric_shape_is_one_line_naming_the_plugin(cli, tmp_path, name, expected):
    _register(OddMetrics(), "oddmetrics")
    pred, gt = _pred_gt(tmp_path)
    res = cli("score", "--pred", pred, "--gt", gt, "--metric", name)
    assert res.exit_code == 2
    assert res.stderr.strip().splitlines()[-1].strip() == expected


# -- 4. `zoo plugins` lists every kind of thing ------------------------------------------------
def test_zoo_plugins_lists_methods_metrics_datasets_and_mask_kinds(cli):
    rows = {p["name"]: p for p in json.loads(cli("plugins", "--json").output)}
    core = rows["zoo"]
    assert "psnr" in core["metrics"] and core["datasets"] == ["shapes"] and "lama-medium" in core["mask_kinds"]
    assert rows["baselines"]["methods"] == ["telea", "conv-l1"] and rows["baselines"]["metrics"] == []
    table = cli("plugins").output
    assert "zoo: metrics psnr, psnr-hole" in table and "datasets shapes" in table and "mask kinds box" in table
