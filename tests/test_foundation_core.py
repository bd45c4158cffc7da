"""Core pieces: registry validation, configs and --set, checkpoints, the safe official loader,
and the baseline learning through the engine."""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional

import pytest
import torch
import yaml

from zoo import ZooError
from zoo.checkpoint import CheckpointMeta, load_checkpoint, load_model, read_meta, save_checkpoint
from zoo.config import apply_overrides, config_from_dict, parse_set_options, resolve_config
from zoo.official import Opaque, load_official
from zoo.plugins import get_manager
from zoo.registry import load_registry, parse_registry

REPO = Path(__file__).parents[1]


# -- registry -------------------------------------------------------------------------
def test_registry_loads_and_matches_the_plugins():
    registry = load_registry(REPO / "registry.yaml")
    methods = get_manager().methods()
    for name, entry in registry.items():
        assert entry.summary and entry.paper and entry.license
        if name in methods:
            spec, plugin = methods[name]
            assert plugin == entry.plugin, name
            assert list(entry.presets) == list(spec.presets), f"{name}: registry presets differ from the plugin's"
            assert entry.family == spec.family, name


def _good():
    return yaml.safe_load((REPO / "registry.yaml").read_text())


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d.pop("methods"), "missing key methods"),
        (lambda d: d["methods"]["telea"].pop("paper"), "missing key methods.telea.paper"),
        (lambda d: d["methods"]["telea"].update(family="magic"), "methods.telea.family 'magic' is not one of"),
        (lambda d: d["methods"]["telea"].update(presets="default"), "methods.telea.presets must be list"),
        (lambda d: d["methods"]["telea"].update(colour="red"), "unknown key methods.telea.colour"),
        (
            lambda d: d["methods"]["telea"].update(checkpoints={"x": {"url": "u", "sha256": "zz", "format": "pt", "license": "l", "resolution": 256, "preset": "default"}}),
            "methods.telea.checkpoints.x.sha256 must be 64 lowercase hex",
        ),
        (
            lambda d: d["methods"]["telea"].update(checkpoints={"x": {"url": "u", "sha256": "unknown", "sha256_reason": "r", "format": "pt", "license": "l", "resolution": 256, "preset": "nope"}}),
            "methods.telea.checkpoints.x.preset 'nope' is not in methods.telea.presets",
        ),
        (lambda d: d["methods"]["telea"].update(checkpoints={"x": {"url": "u"}}), "missing key methods.telea.checkpoints.x.sha256"),
    ],
)
def test_bad_registry_names_the_key(mutate, message):
    data = _good()
    mutate(data)
    with pytest.raises(ZooError, match="registry: ") as err:
        parse_registry(data)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_bad_registry_file_through_cli(cli, tmp_path, monkeypatch):
    bad = tmp_path / "registry.yaml"
    bad.write_text("methods:\n  telea:\n    plugin: baselines\n")
    monkeypatch.setenv("ZOO_REGISTRY", str(bad))
    res = cli("list")
    assert res.exit_code == 2
    assert res.output.strip() == "Error: registry: missing key methods.telea.summary"


# -- configs --------------------------------------------------------------------------
@dataclass
class Cfg:
    n: int = 1
    x: float = 0.5
    flag: bool = False
    name: str = "a"
    mode: Literal["fast", "slow"] = "fast"
    dims: tuple[int, ...] = (1, 2)
    maybe: Optional[int] = None


def test_overrides_are_parsed_by_field_type():
    cfg = apply_overrides(Cfg(), parse_set_options(["n=3", "x=2", "flag=true", "name=7", "mode=slow", "dims=[4, 5, 6]", "maybe=none"]))
    assert cfg == Cfg(n=3, x=2.0, flag=True, name="7", mode="slow", dims=(4, 5, 6), maybe=None)
    assert apply_overrides(Cfg(), {"maybe": "9"}).maybe == 9


@pytest.mark.parametrize(
    "items, message",
    [
        (["n=1.5"], "--set n: expected an integer, got 1.5"),
        (["x=abc"], "--set x: expected a number"),
        (["flag=maybe"], "--set flag: expected true or false"),
        (["mode=medium"], "--set mode: invalid value 'medium'; valid choices: fast, slow"),
        (["dims=3"], "--set dims: expected a list"),
        (["nope=1"], "unknown config key for this method 'nope'; valid choices: dims, flag, maybe, mode, n, name, x"),
    ],
)
def test_bad_overrides(items, message):
    with pytest.raises(ZooError) as err:
        apply_overrides(Cfg(), parse_set_options(items))
    assert message in str(err.value)


def test_presets_resolve_in_order():
    spec = get_manager().method("conv-l1")
    cfg, preset = resolve_config(spec, "tiny", {"channels": "24"})
    assert preset == "tiny" and cfg.channels == 24 and cfg.resolution == 32
    assert resolve_config(spec)[1] == "tiny"


# -- checkpoints ----------------------------------------------------------------------
def _conv_checkpoint(tmp_path, **over):
    spec = get_manager().method("conv-l1")
    cfg, preset = resolve_config(spec, "tiny", over)
    model = get_manager().call("zoo_build_model", "conv-l1", config=cfg)
    path = tmp_path / "c.safetensors"
    meta = CheckpointMeta("conv-l1", cfg.__dict__, preset, step=7, plugin="baselines", provenance={"kind": "test"})
    save_checkpoint(path, model.state_dict(), meta)
    return path, model, cfg


def test_checkpoint_round_trip_rebuilds_the_exact_model(tmp_path):
    path, model, cfg = _conv_checkpoint(tmp_path, channels=24)
    loaded, cfg2, meta = load_model(path)
    assert cfg2 == cfg and meta.step == 7 and meta.preset == "tiny" and meta.zoo_version
    for k, v in model.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k])
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    m = torch.zeros(1, 1, 32, 32)
    m[..., 8:20, 8:20] = 1
    model.eval()
    assert torch.equal(model(x, m), loaded(x, m))


def test_checkpoint_is_safetensors_with_no_pickle(tmp_path):
    path, _, _ = _conv_checkpoint(tmp_path)
    head = path.read_bytes()[:16]
    assert not head.startswith(b"PK") and not head.startswith(b"\x80")  # not a zip/pickle
    meta = read_meta(path)
    assert meta.method == "conv-l1"


def test_incompatible_config_is_refused_with_a_clear_message(tmp_path):
    path, _, _ = _conv_checkpoint(tmp_path)
    meta, tensors = load_checkpoint(path)
    meta.config["channels"] = 32  # the weights are 16 wide
    bad = tmp_path / "bad.safetensors"
    save_checkpoint(bad, tensors, meta)
    with pytest.raises(ZooError, match="does not fit this config: .* of another shape"):
        load_model(bad)
    meta.config["unknown_field"] = 1
    save_checkpoint(bad, tensors, meta)
    with pytest.raises(ZooError, match="keys unknown_field"):
        load_model(bad)


def test_non_zoo_file_is_refused(tmp_path):
    from safetensors.torch import save_file

    plain = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, str(plain))
    with pytest.raises(ZooError, match="not a zoo checkpoint"):
        read_meta(plain)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ZooError, match="not a readable safetensors"):
        read_meta(junk)


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    path, model, _ = _conv_checkpoint(tmp_path)
    before = path.read_bytes()
    import zoo.checkpoint as ck

    def crash(*a, **k):
        Path(a[1]).write_bytes(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(ck, "save_file", crash)
    with pytest.raises(OSError):
        save_checkpoint(path, model.state_dict(), read_meta(path))
    assert path.read_bytes() == before, "the old checkpoint must survive a failed write"
    assert [p.name for p in tmp_path.iterdir()] == ["c.safetensors"], "no temporary file left behind"


def test_config_from_dict_restores_tuples():
    spec = get_manager().method("conv-l1")
    cfg = config_from_dict(spec.config, {"dilations": [1, 3]})
    assert cfg.dilations == (1, 3)


# -- official checkpoints are read without executing anything -------------------------
class TrainingConfig:  # stands in for OmegaConf / argparse objects pickled in Lightning files
    def __init__(self, lr):
        self.lr = lr


_MARKER: list[str] = []


class Exploit:
    def __reduce__(self):
        return (_MARKER.append, ("executed",))


def test_official_loader_keeps_tensors_and_neutralises_objects(tmp_path):
    weights = {"generator.model.1.weight": torch.randn(4, 3)}
    ckpt = {"state_dict": weights, "hyper_parameters": TrainingConfig(0.001), "callbacks": Exploit(), "epoch": 3}
    path = tmp_path / "best.ckpt"
    torch.save(ckpt, path)
    loaded = load_official(path)
    assert torch.equal(loaded["state_dict"]["generator.model.1.weight"], weights["generator.model.1.weight"])
    assert isinstance(loaded["hyper_parameters"], Opaque)
    assert loaded["epoch"] == 3
    assert _MARKER == [], "the loader executed code from the file"


def test_official_loader_plain_state_dict_and_errors(tmp_path):
    path = tmp_path / "w.pt"
    torch.save({"a": torch.ones(2)}, path)
    assert torch.equal(load_official(path)["a"], torch.ones(2))
    (tmp_path / "bad.pt").write_bytes(b"garbage")
    with pytest.raises(ZooError, match="not a readable PyTorch checkpoint"):
        load_official(tmp_path / "bad.pt")
    with pytest.raises(ZooError, match="does not exist"):
        load_official(tmp_path / "missing.pt")
    with open(tmp_path / "legacy.pkl", "wb") as fh:
        pickle.dump({"x": 1}, fh)


# -- the learned baseline learns ------------------------------------------------------
def test_conv_l1_loss_falls_on_a_tiny_fixed_batch(tmp_path):
    from zoo.masks import mask_kind
    from zoo.spec import TrainContext
    from zoo.train import TrainOptions
    from zoo_plugins.baselines.model import ConvL1Net
    from zoo_plugins.baselines.train import ConvL1Task
    from zoo.train import fit
    from zoo.data import ShapesDataset

    spec = get_manager().method("conv-l1")
    cfg, _ = resolve_config(spec, "tiny")
    torch.manual_seed(0)
    data = ShapesDataset(resolution=32, length=4)
    ctx = TrainContext("conv-l1", cfg, "tiny", data, mask_kind("center"), steps=60, batch_size=4, seed=0, out_dir=tmp_path, options=TrainOptions(progress=False, device="cpu"))
    fit(ConvL1Task(ConvL1Net(cfg), cfg), ctx)
    import json

    logs = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    first = sum(r["l1_hole"] for r in logs[:5]) / 5
    last = sum(r["l1_hole"] for r in logs[-5:]) / 5
    assert last < 0.6 * first, (first, last)
