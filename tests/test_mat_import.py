"""mat import: plain state dicts (.pth, .safetensors) and the release .pkl, strict and inert."""

from __future__ import annotations

import os
import pickle
import sys
import types
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

from zoo.checkpoint import load_model
from zoo.config import resolve_config
from zoo.errors import ZooError
from zoo_plugins.mat.convert import import_mat, infer_preset
from zoo_plugins.mat.hooks import SPEC
from zoo_plugins.mat.layers import Draws
from zoo_plugins.mat.model import MAT


def official_generator_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """Random values in the published key layout (the tiny preset's shapes)."""
    torch.manual_seed(seed)
    config = resolve_config(SPEC, "tiny", {"discriminator": False})[0]
    state = MAT(config).generator.state_dict()
    return {k: v + 0.01 * torch.randn_like(v) if k.endswith("bias") else v for k, v in state.items()}


def same_function(state: dict[str, torch.Tensor], imported) -> None:
    model = MAT(imported.config).eval()
    model.load_state_dict(imported.state_dict)
    ref = MAT(imported.config).eval()
    ref.generator.load_state_dict(state)
    x, m = torch.rand(1, 3, 32, 32) * 2 - 1, torch.zeros(1, 1, 32, 32)
    m[..., 8:24, 8:24] = 1
    z = torch.randn(1, 32)
    with torch.no_grad():
        a = model(x, m, z, draws=Draws(torch.Generator().manual_seed(0)))[0]
        b = ref(x, m, z, draws=Draws(torch.Generator().manual_seed(0)))[0]
    assert torch.equal(a, b)


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_plain_state_dict_imports_strictly(tmp_path, suffix):
    state = official_generator_state()
    path = tmp_path / f"G{suffix}"
    if suffix == ".pth":
        torch.save(state, path)
    else:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    imported = import_mat(SPEC, path, "tiny")
    assert imported.preset == "tiny" and imported.config.discriminator is False
    assert set(imported.state_dict) == {"generator." + k for k in state}
    assert imported.provenance["format"] == ("state-dict" if suffix == ".pth" else "safetensors")
    same_function(state, imported)


def test_missing_extra_and_misshaped_keys_are_one_line(tmp_path):
    state = official_generator_state()
    missing = dict(state)
    del missing["synthesis.first_stage.tran.0.blocks.0.attn.q.weight"]
    torch.save(missing, tmp_path / "missing.pth")
    with pytest.raises(ZooError, match=r"1 missing \(e.g. synthesis.first_stage.tran.0.blocks.0.attn.q.weight\)") as exc:
        import_mat(SPEC, tmp_path / "missing.pth", "tiny")
    assert "\n" not in str(exc.value)
    extra = dict(state, **{"synthesis.extra.weight": torch.zeros(1)})
    torch.save(extra, tmp_path / "extra.pth")
    with pytest.raises(ZooError, match=r"1 unused \(e.g. synthesis.extra.weight\)"):
        import_mat(SPEC, tmp_path / "extra.pth", "tiny")
    wrong = dict(state, **{"mapping.fc0.weight": torch.zeros(3, 3)})
    torch.save(wrong, tmp_path / "wrong.pth")
    with pytest.raises(ZooError, match=r"of another shape \(e.g. mapping.fc0.weight"):
        import_mat(SPEC, tmp_path / "wrong.pth", "tiny")
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(ZooError, match="no MAT generator tensors"):
        import_mat(SPEC, tmp_path / "other.pth", None)


def test_preset_is_read_from_the_shapes():
    keys = {"synthesis.dec.Dec_512x512.conv0.weight": None, "synthesis.dec.Dec_256x256.conv0.weight": None}
    assert infer_preset(keys, Path("x")) == "mat-512"
    assert infer_preset({"synthesis.dec.Dec_256x256.conv0.weight": None}, Path("x")) == "mat-256"
    with pytest.raises(ZooError, match="32 px generator.*--preset"):
        infer_preset({"synthesis.dec.Dec_32x32.conv0.weight": None}, Path("x"))


# -- the release pickle ---------------------------------------------------------------------
class _Persistent:
    """Pickles like a ``torch_utils.persistence`` object: its source code and its __dict__."""

    def __init__(self, state: dict, reconstruct) -> None:
        self.state, self.reconstruct = state, reconstruct

    def __reduce__(self):
        meta = dict(type="class", version=4, module_src="import os\nos.system('echo pwned')\nclass X: pass", class_name="X", state=self.state)
        return (self.reconstruct, (meta,))


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def module_tree(state: dict[str, torch.Tensor], reconstruct) -> object:
    """Nested persistent objects (and one real nn.ModuleList, pickled as torch pickles it)."""
    tree: dict = {}
    for key, value in state.items():
        node = tree
        *path, name = key.split(".")
        for part in path:
            node = node.setdefault(part, {})
        node[name] = value

    def build(node: dict, name: str):
        params, buffers, modules = OrderedDict(), OrderedDict(), OrderedDict()
        for k, v in node.items():
            if isinstance(v, dict):
                modules[k] = build(v, k)
            elif k in ("resample_filter", "noise_const", "w_avg", "attn_mask"):
                buffers[k] = v
            else:
                params[k] = torch.nn.Parameter(v)
        state = {"training": False, "_parameters": params, "_buffers": buffers, "_non_persistent_buffers_set": set(), "_modules": modules}
        if name == "tran":  # a plain container: NEWOBJ + BUILD with its __dict__
            ml = torch.nn.ModuleList()
            ml.__dict__.update(state)
            return ml
        return _Persistent(state, reconstruct)

    return build(tree, "")


def test_release_pickle_is_read_without_running_anything(tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    ran = []

    def _reconstruct_persistent_obj(meta):  # what the official loader would call
        ran.append(meta)
        raise AssertionError("the snapshot's reconstruct function ran")

    pkg, mod = types.ModuleType("torch_utils"), types.ModuleType("torch_utils.persistence")
    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    mod._reconstruct_persistent_obj = _reconstruct_persistent_obj
    monkeypatch.setitem(sys.modules, "torch_utils", pkg)
    monkeypatch.setitem(sys.modules, "torch_utils.persistence", mod)

    g_ema = official_generator_state(seed=1)
    snapshot = {
        "G": module_tree(official_generator_state(seed=2), _reconstruct_persistent_obj),
        "D": _Evil(marker),
        "G_ema": module_tree(g_ema, _reconstruct_persistent_obj),
        "augment_pipe": None,
        "training_set_kwargs": {"path": "x", "hook": _Evil(marker)},
    }
    path = tmp_path / "CelebA-HQ_512.pkl"
    with open(path, "wb") as f:
        pickle.dump(snapshot, f)
    monkeypatch.delitem(sys.modules, "torch_utils.persistence")  # as on a machine without MAT's code

    imported = import_mat(SPEC, path, "tiny")
    assert not marker.exists() and not ran
    assert imported.provenance["format"] == "stylegan-pkl"
    for k, v in g_ema.items():  # G_ema, not G
        assert torch.equal(imported.state_dict["generator." + k], v)
    same_function(g_ema, imported)


def test_pickle_of_another_layout_is_refused_with_the_way_out(tmp_path):
    path = tmp_path / "x.pkl"
    with open(path, "wb") as f:
        pickle.dump({"generator": {"w": torch.zeros(1)}}, f)
    with pytest.raises(ZooError, match="no 'G_ema' entry.*plain state dict"):
        import_mat(SPEC, path, "tiny")
    path.write_bytes(b"not a pickle")
    with pytest.raises(ZooError, match="could not be read as a MAT snapshot"):
        import_mat(SPEC, path, "tiny")


def test_cli_import_writes_a_checkpoint_that_samples(cli, tmp_path, image_folder):
    state = official_generator_state()
    torch.save(state, tmp_path / "G.pth")
    out = tmp_path / "mat.safetensors"
    result = cli("import", "mat", tmp_path / "G.pth", "--preset", "tiny", "--out", out)
    assert result.exit_code == 0, result.output
    model, config, meta = load_model(out, "mat")
    assert config.discriminator is False and meta.preset == "tiny"
    images, masks = image_folder
    result = cli("sample", "mat", "--checkpoint", out, "--images", images, "--masks", masks, "--out", tmp_path / "o")
    assert result.exit_code == 0, result.output
