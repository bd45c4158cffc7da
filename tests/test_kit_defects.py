"""The contract kit fails each defective plugin of tests/fixtures/kit_defects.py, and names
the sub-check that failed: ``NAME: [CHECK/SUB-CHECK] ...``."""

from __future__ import annotations

import contextlib
import re

import pytest
import torch
from fixtures import kit_defects as d

from zoo.plugins import get_manager
from zoo.testing import CHECKS, KitFailure, check_metric, check_plugin, run_check


@contextlib.contextmanager
def registered(obj, name: str = "defect"):
    manager = get_manager()
    info = manager.register(obj, name=name)
    try:
        yield info
    finally:
        manager.unregister(name)


def fails(where: str, match: str, fn, *args, **kwargs) -> KitFailure:
    """``fn(*args)`` raises a KitFailure whose message names ``[where]`` and matches ``match``."""
    with pytest.raises(KitFailure) as info:
        fn(*args, **kwargs)
    exc = info.value
    text = str(exc)
    assert f"[{where}]" in text and re.search(match, text), text
    assert f"{exc.check}/{exc.subcheck}" == where and "\n" not in text
    return exc


def test_a_good_plugin_without_method_guards_passes_every_check_beside_all_built_ins(tmp_path):
    """No `if method != NAME` guard: every built-in method still builds its own model and samples."""
    with registered(d.Good(), "good"):
        for check in CHECKS:
            run_check("kit-good", check, tmp_path, plugin="good")
        check_plugin("good")
        manager = get_manager()
        for method, (spec, plugin) in manager.methods().items():
            if plugin != "good":
                from zoo.config import resolve_config

                config, _ = resolve_config(spec, spec.default)
                with torch.device("meta"):
                    assert not isinstance(manager.call("zoo_build_model", method, config=config), d.Flat), method
        for check in ("hooks", "sample"):
            run_check("telea", check, tmp_path / "telea")


METHOD_DEFECTS = [
    (d.EmptySummary, "registration", "registration/summary", "summary is empty"),
    (d.LearnedWithoutTiny, "registration", "registration/tiny-preset", "needs a 'tiny' preset"),
    (d.BuildFailsForAPreset, "presets", "presets/builds", "preset 'big'.*level > 0"),
    (d.TrainRaises, "train", "train/runs", "training the tiny preset.*the optimizer exploded"),
    (d.TrainRaises, "sample", "sample/model", "the optimizer exploded"),
    (d.ReturnsATensor, "sample", "sample/output", "returned a torch.Tensor; expected a zoo.SampleOutput"),
    (d.WrongShape, "sample", "sample/output", r"shape \(2, 3, 32, 31\)"),
    (d.NanFill, "sample", "sample/finite", "NaN"),
    (d.Stateful, "sample", "sample/same-seed", "not deterministic"),
    (d.GlobalTorchRng, "sample", "sample/generator-only", r"randomness other than the generator it is given \(torch's global RNG\?\).*use the `generator` argument"),
    (d.GlobalNumpyRng, "sample", "sample/generator-only", r"\(numpy's global RNG"),
    (d.OddSizeCrash, "sample", "sample/odd-size", "shape mismatch in conv"),
    (d.OddSizeLongRefusal, "sample", "sample/odd-size", "more than one line"),
    (d.NotInTheCheckpoint, "round-trip", "round-trip/same-samples", "samples differently"),
    (d.ScoreNan, "score", "score/finite", "nll=nan"),
    (d.ScoreList, "score", "score/type", "returned a list"),
    (d.MetricClash, "hooks", "hooks/refused", r"metric psnr \(registered first by zoo\)"),
    (d.Misspelled, "hooks", "hooks/registered", "did you mean zoo_sample"),
]


@pytest.mark.parametrize("cls, check, where, match", METHOD_DEFECTS, ids=[f"{c.__name__}-{w}" for c, _, w, _ in METHOD_DEFECTS])
def test_the_kit_names_the_failing_sub_check(cls, check, where, match, tmp_path):
    clash = pytest.warns(UserWarning, match="registered first") if cls is d.MetricClash else contextlib.nullcontext()
    with clash, registered(cls()):
        exc = fails(where, match, run_check, cls.NAME, check, tmp_path)
    assert exc.subject == cls.NAME


def test_global_rng_use_is_not_blamed_on_the_hole(tmp_path):
    with registered(d.GlobalTorchRng()):
        exc = fails("sample/generator-only", "torch", run_check, d.GlobalTorchRng.NAME, "sample", tmp_path)
    assert "hole" not in str(exc) and "same seed gave" not in str(exc)


def test_the_kit_leaves_the_global_rng_as_it_found_it(tmp_path):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    with registered(d.Good(), "good"):
        run_check("kit-good", "sample", tmp_path)
    assert torch.equal(torch.rand(3), expected)


def test_unknown_hook_names_wrong_arguments_and_missing_markers_are_caught():
    for cls, where, match in ((d.Misspelled, "hooks/names", "@hookimpl zoo_sampel is not a hook of the zoo.*did you mean zoo_sample"),
                              (d.WrongArgument, "hooks/args", "zoo_build_model.*'cfg'"),
                              (d.MissingMarker, "hooks/marker", "zoo_score is not marked @hookimpl")):
        obj = cls()
        with registered(obj) as info:
            assert info.status == "broken"
            fails(where, match, check_plugin, obj)  # the object: what exactly is wrong
            fails("hooks/status", "broken: .*" + match.split(".*")[-1], check_plugin, "defect")  # by name: the plugin is broken, and why
    fails("hooks/found", "no plugin named 'nope'", check_plugin, "nope")


def test_name_clashes_are_caught_for_methods_and_metrics(tmp_path):
    with pytest.warns(UserWarning, match="registered first"), registered(d.MetricClash()):
        fails("hooks/refused", "metric psnr", check_plugin, "defect")
        fails("metric/unique", r"plugin zoo registered it first; plugin defect's is refused", check_metric, "psnr", plugin="defect")
        fails("metric/unique", "plugin defect's is refused", check_metric, "psnr")
        run_check(d.MetricClash.NAME, "sample", tmp_path)  # the rest of the plugin works
    with pytest.warns(UserWarning, match="registered first"), registered(d.MethodClash()):
        fails("hooks/unique", "plugin baselines registered it first; plugin defect registered it too", run_check, "telea", "hooks", tmp_path / "a")
        fails("registration/registered", "registered by plugin baselines, not defect", run_check, "telea", "registration", tmp_path / "b", plugin="defect")
        fails("hooks/refused", "method telea", check_plugin, "defect")
    fails("sample/registered", "unknown method 'nope'", run_check, "nope", "sample", tmp_path)


METRIC_DEFECTS = [
    ("kit-ring", "metric/separates", "does not tell them apart"),
    ("kit-whole", "metric/hole-only", "more than 8 px from the hole changed the value"),
    ("kit-scalar", "metric/shape", r"returned shape \(\); expected \(3,\)"),
    ("kit-upside-down", "metric/identical-best", "pred == gt scores .* worse than"),
    ("kit-narrow", "metric/range", r"outside value_range \(0.0, 0.001\)"),
    ("kit-inf", "metric/finite", "expected finite values"),
    ("kit-needs-weights", "metric/prepare", "weights file .* not found"),
]


@pytest.mark.parametrize("name, where, match", METRIC_DEFECTS)
def test_the_metric_check_names_the_failing_sub_check(name, where, match):
    with registered(d.Metrics(), "kitm"):
        check_plugin("kitm")
        check_metric("kit-l1-hole", plugin="kitm")  # the good one passes
        fails(where, match, check_metric, name, plugin="kitm")


def test_the_metric_check_wants_the_right_owner_and_a_registered_name():
    with registered(d.Metrics(), "kitm"):
        fails("metric/unique", "plugin kitm registered it first, not other", check_metric, "kit-l1-hole", plugin="other")
        fails("metric/registered", "no metric of that name; metrics: .*kit-l1-hole", check_metric, "kit-nope")
