"""docs/plugins.md stays in sync with the code: every hook with its exact signature, every
field of the typed objects a plugin uses with its current type, the engine's contract."""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path

import pytest

import zoo
from zoo import hookspecs
from zoo.train import Phase, TrainTask

DOC = (Path(__file__).resolve().parents[1] / "docs" / "plugins.md").read_text().replace("\\|", "|")
HOOKS = sorted(n for n, f in inspect.getmembers(hookspecs, inspect.isfunction) if n.startswith("zoo_"))
OBJECTS = ["MethodSpec", "MetricSpec", "DatasetSpec", "MaskGeneratorSpec", "TrainContext", "TrainResult", "SampleOutput", "ImportedCheckpoint"]


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_documented_with_its_signature(hook):
    params = ", ".join(inspect.signature(getattr(hookspecs, hook)).parameters)
    assert f"`{hook}({params})`" in DOC, f"docs/plugins.md lacks `{hook}({params})`"


@pytest.mark.parametrize("name", OBJECTS)
def test_every_field_of_the_typed_objects_is_documented(name):
    cls = getattr(zoo, name)
    assert f"### {name}" in DOC or f", {name}" in DOC or f"{name} (" in DOC, f"docs/plugins.md has no section for {name}"
    for f in dataclasses.fields(cls):
        assert f"`{f.name}: {f.type}`" in DOC, f"docs/plugins.md lacks `{f.name}: {f.type}` of {name}"


def test_the_engine_contract_is_documented():
    for f in dataclasses.fields(Phase):
        assert f"`{f.name}: {f.type}`" in DOC, f"Phase.{f.name}"
    public = [n for n, v in vars(TrainTask).items() if not n.startswith("_") and (callable(v) or n == "ema_decay")]
    for name in public:
        assert f"`{name}" in DOC, f"TrainTask.{name} is not in docs/plugins.md"
    assert "`fit(task, ctx)`" in DOC


def test_the_documented_families_and_core_fields_are_the_real_ones():
    from zoo.config import SIZE_FIELDS, SIZE_SUFFIXES
    from zoo.spec import FAMILIES

    assert ", ".join(f"`{f}`" for f in FAMILIES) in DOC
    for f in SIZE_FIELDS:
        assert f"`{f}`" in DOC, f
    assert ", ".join(f"`{f}`" for f in SIZE_SUFFIXES) in DOC
    for env in ("ZOO_LOAD_PLUGINS", "ZOO_DISABLE_PLUGINS", "ZOO_TRACE_HOOKS"):
        assert env in DOC


def test_the_contract_kit_api_is_documented():
    for sig in ("run_check(method, check, workdir=None, overrides=None, plugin=None)", "check_plugin(plugin)", "check_metric(name, plugin=None)",
                "example_batch(n=2, height=32, width=32)", 'TrainOptions(device="cpu", progress=False, tensorboard=False)'):
        assert sig in DOC, f"docs/plugins.md lacks {sig}"
    from zoo.testing import CHECKS

    for check in CHECKS:
        assert f"| `{check}` |" in DOC, f"docs/plugins.md does not describe the kit's check {check}"


def test_what_the_core_checks_is_documented():
    assert "### What the core checks for you" in DOC
    for phrase in ("did you mean zoo_sample?", "returned None after training", "NaN/inf left out", "refused", "plugin_origin"):
        assert phrase in DOC, phrase
