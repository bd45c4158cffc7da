"""The contract kit (zoo.testing) over every method `zoo list` shows, every loaded plugin and
every built-in metric: every built-in method, and any plugin installed beside the zoo,
passes it. (What the kit catches on defective plugins: tests/test_kit_defects.py.)"""

from __future__ import annotations

import pytest

from zoo.plugins import get_manager, reset_manager
from zoo.testing import CHECKS, check_metric, check_plugin, run_check


def _names(what: str) -> list[str]:
    reset_manager()
    manager = get_manager()
    if what == "plugins":
        names = sorted(p.name for p in manager.plugins() if p.status != "disabled")
    else:
        names = sorted(manager.names(what))
    reset_manager()
    return names


@pytest.fixture(scope="module")
def kit_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("kit")


@pytest.mark.parametrize("check", CHECKS)
@pytest.mark.parametrize("method", _names("methods"))
def test_every_method_passes_the_contract_kit(method, check, kit_dir):
    run_check(method, check, kit_dir / method)


@pytest.mark.parametrize("plugin", _names("plugins"))
def test_every_plugin_passes_the_hooks_check(plugin):
    check_plugin(plugin)


@pytest.mark.parametrize("metric", _names("metrics"))
def test_every_metric_passes_the_metric_check(metric):
    spec = get_manager().specs("metrics")[metric]
    if spec.prepare is not None:  # weights (LPIPS): tests download nothing; their own tests build small files
        pytest.skip(f"{metric} needs weights")
    check_metric(metric)
