"""Plugin status everywhere: a broken or disabled plugin is named wherever its methods are
missing; ZOO_DISABLE_PLUGINS; ZOO_TRACE_HOOKS."""

from __future__ import annotations

import json
from importlib import metadata

import yaml

import zoo.plugins as plugins
from zoo.plugins import ZooPluginManager, reset_manager


def _with_broken_plugin(monkeypatch, tmp_path):
    """A manager with every installed plugin plus one that fails to import, and a registry
    entry that says the method `ghost` comes from it."""
    from zoo.registry import registry_path

    eps = [*metadata.entry_points(group=plugins.ENTRY_POINT_GROUP), metadata.EntryPoint("ghostly", "zoo_no_such_module_xyz.hooks", plugins.ENTRY_POINT_GROUP)]
    manager = ZooPluginManager(entry_points=eps)
    monkeypatch.setattr(plugins, "_MANAGER", manager)
    data = yaml.safe_load(registry_path().read_text())
    data["methods"]["ghost"] = {"plugin": "ghostly", "summary": "a method whose plugin is broken", "paper": "-", "license": "MIT",
                                "family": "classical", "presets": ["default"]}
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(data))
    monkeypatch.setenv("ZOO_REGISTRY", str(tmp_path / "r.yaml"))
    return manager


def test_a_broken_plugin_is_named_in_list_info_and_sample(cli, monkeypatch, tmp_path, image_folder):
    _with_broken_plugin(monkeypatch, tmp_path)
    res = cli("list")
    assert res.exit_code == 0
    assert "Warning: plugin 'ghostly'" in res.stderr and "failed to load" in res.stderr and "ModuleNotFoundError" in res.stderr
    row = next(line for line in res.stdout.splitlines() if line.startswith("ghost "))
    assert "no (plugin 'ghostly' is broken: ModuleNotFoundError" in row
    rows = {r["name"]: r for r in json.loads(cli("list", "--json").stdout)}
    assert rows["ghost"]["available"] is False and "broken" in rows["ghost"]["reason"]
    assert "NOT LOADED: plugin 'ghostly' is broken" in cli("info", "ghost").output
    images, masks = image_folder
    res = cli("sample", "ghost", "--images", images, "--masks", masks, "--out", tmp_path / "o")
    assert res.exit_code == 2
    assert "unknown method 'ghost'" in res.output and "not loaded: ghostly (broken: ModuleNotFoundError" in res.output


def test_disable_plugins(cli, monkeypatch):
    monkeypatch.setenv("ZOO_DISABLE_PLUGINS", "lama,nosuch")
    reset_manager()
    res = cli("plugins", "--json")
    status = {p["name"]: (p["status"], p["error"]) for p in json.loads(res.stdout)}
    assert status["lama"] == ("disabled", "in $ZOO_DISABLE_PLUGINS") and status["repaint"][0] == "ok" and status["zoo"][0] == "ok"
    assert "ZOO_DISABLE_PLUGINS: no plugin named 'nosuch'" in res.stderr
    res = cli("train", "lama", "--data", "shapes")
    assert res.exit_code == 2 and "not loaded: lama (disabled: in $ZOO_DISABLE_PLUGINS)" in res.output


def test_an_empty_allow_list_is_warned(cli, monkeypatch):
    monkeypatch.setenv("ZOO_LOAD_PLUGINS", "")
    reset_manager()
    res = cli("plugins")
    assert "ZOO_LOAD_PLUGINS is set but empty" in res.stderr


def test_trace_logs_hook_calls(cli, monkeypatch, image_folder, tmp_path):
    monkeypatch.setenv("ZOO_TRACE_HOOKS", "1")
    reset_manager()
    images, masks = image_folder
    res = cli("sample", "telea", "--images", images, "--masks", masks, "--out", tmp_path / "o")
    assert res.exit_code == 0
    assert "[hook] zoo_sample(" in res.stderr and "'method': 'telea'" in res.stderr and "[hook] zoo_sample returned SampleOutput" in res.stderr
