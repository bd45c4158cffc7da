"""MAT from published weights to a fine-tuned model (issue 26, item 4).

``tests/fixtures/mat_tiny_snapshot.pkl`` was written by the official persistence code
(``benchmarks/mat_official/make_pkl_fixture.py``: fenglinglwb/MAT's ``torch_utils.persistence``
and ``pickle.dump`` as its ``training_loop.py``, tiny sizes); ``mat_tiny_snapshot.json`` holds the
sha256 of the official ``G``, ``G_ema`` and ``D`` state dicts from that run. ``zoo import`` must
keep all three exactly, execute nothing (the fixture's stored module source creates the file
``$ZOO_PKL_TRAP`` when run), and ``zoo train mat --init`` must start the generator from ``G``,
the discriminator from ``D`` and the EMA from ``G_ema``."""

from __future__ import annotations

import hashlib
import json
import pickle
import sys
import types
from pathlib import Path

import pytest
import torch

from zoo import runner
from zoo.checkpoint import RAW_PREFIX, load_checkpoint, load_model, split_raw
from zoo.train import TrainOptions
from zoo.train.state import read_state

FIXTURE = Path(__file__).parent / "fixtures" / "mat_tiny_snapshot.pkl"
INFO = json.loads(FIXTURE.with_suffix(".json").read_text())
SETS = [x for k, v in INFO["overrides"].items() for x in ("--set", f"{k}={json.dumps(v)}")]
OVERRIDES = {k: json.dumps(v) for k, v in INFO["overrides"].items()}


def digest(state: dict[str, torch.Tensor]) -> str:
    """The fixture generator's digest: sorted keys, each key's bytes then float32 values."""
    h = hashlib.sha256()
    for k in sorted(state):
        h.update(k.encode())
        h.update(state[k].detach().to(torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()


def networks(tensors: dict[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
    """G_ema, G, D (official names) from a zoo checkpoint's tensors read with raw=True."""
    avg, raw = split_raw(tensors)
    sub = lambda d, p: {k[len(p):]: v for k, v in d.items() if k.startswith(p)}  # noqa: E731
    g_ema, d = sub(avg, "generator."), sub(avg, "discriminator.")
    return {"G_ema": g_ema, "G": {**g_ema, **sub(raw, "generator.")}, "D": d}


@pytest.fixture
def trap(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "code-ran"
    monkeypatch.setenv(INFO["trap_env"], str(path))
    return path


@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("mat") / "mat.safetensors"
    runner.import_checkpoint("mat", FIXTURE, out, preset="tiny", overrides=OVERRIDES)
    return out


def test_the_fixtures_trap_fires_under_a_loader_that_runs_the_stored_source(trap, monkeypatch):
    """What ``torch_utils.persistence._reconstruct_persistent_obj`` does with ``module_src``
    (exec it as a module), so the next test's check can fail."""

    def _reconstruct_persistent_obj(meta):
        module = types.ModuleType("_imported_module_")
        exec(compile(meta["module_src"], "<module_src>", "exec"), module.__dict__)  # noqa: S102 - the point of the test
        return torch.nn.Module()

    mod = types.ModuleType("torch_utils.persistence")
    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    mod._reconstruct_persistent_obj = _reconstruct_persistent_obj
    monkeypatch.setitem(sys.modules, "torch_utils", types.ModuleType("torch_utils"))
    monkeypatch.setitem(sys.modules, "torch_utils.persistence", mod)
    with open(FIXTURE, "rb") as f:
        snap = pickle.load(f)  # noqa: S301 - a plain loader, on purpose
    assert trap.exists() and set(snap) >= {"G", "D", "G_ema", "augment_pipe"}


def test_import_keeps_the_official_G_G_ema_and_D_and_runs_nothing(cli, tmp_path, trap, image_folder):
    out = tmp_path / "mat.safetensors"
    r = cli("import", "mat", FIXTURE, "--preset", "tiny", *SETS, "--out", out)
    assert r.exit_code == 0, r.output
    assert not trap.exists()
    meta, tensors = load_checkpoint(out, "mat", raw=True)
    assert meta.config["discriminator"] is True
    assert meta.provenance["networks"] == ["G_ema", "G", "D"] and meta.provenance["format"] == "stylegan-pkl"
    assert meta.provenance["ignored_entries"] == 3  # augment_pipe, training_set_kwargs, val_set_kwargs
    nets = networks(tensors)
    for name, want in INFO["networks"].items():
        assert len(nets[name]) == want["tensors"], name
        assert digest(nets[name]) == want["sha256"], name  # the official state_dict, value for value
    assert any(k.startswith(RAW_PREFIX) for k in tensors)
    # sampling reads G_ema and ignores the raw G
    model, _, _ = load_model(out, "mat")
    assert digest({k[len("generator."):]: v for k, v in model.state_dict().items() if k.startswith("generator.")}) == INFO["networks"]["G_ema"]["sha256"]
    images, masks = image_folder
    r = cli("sample", "mat", "--checkpoint", out, "--images", images, "--masks", masks, "--out", tmp_path / "o")
    assert r.exit_code == 0, r.output


def test_init_starts_G_from_G_D_from_D_and_the_ema_from_G_ema(imported, tmp_path, monkeypatch):
    from zoo_plugins.mat import train as mat_train

    nets = networks(load_checkpoint(imported, "mat", raw=True)[1])
    seen: list[dict[str, torch.Tensor]] = []
    real_g_loss = mat_train.MatTask.g_loss

    def g_loss(self, batch, step):  # the first loss of the run: before any update
        if not seen:
            seen.append({k: v.detach().clone() for k, v in self.model.state_dict().items()})
        return real_g_loss(self, batch, step)

    monkeypatch.setattr(mat_train.MatTask, "g_loss", g_loss)
    opts = TrainOptions(init=str(imported), progress=False, device="cpu", tensorboard=False, save_every=1)
    final = runner.train("mat", "shapes", steps=1, batch_size=2, seed=1, out_dir=tmp_path / "ft", options=opts)

    start = seen[0]
    for name, prefix in (("G", "generator."), ("D", "discriminator.")):
        for k, v in nets[name].items():
            assert torch.equal(start[prefix + k], v), f"{name} {k}"
    assert any(not torch.equal(nets["G"][k], nets["G_ema"][k]) for k in nets["G"])  # the check tells G from G_ema

    # after one step: exported = EMA = decay * G_ema + (1 - decay) * G_1 (the EMA started from G_ema)
    state = read_state(next((tmp_path / "ft" / "checkpoints").iterdir()))
    decay = 0.5 ** (2 / (0.02 * 1000))  # tiny: ema_kimg 0.02, batch 2
    _, exported = load_checkpoint(final, "mat")
    k = "generator.synthesis.first_stage.conv_first.conv.weight"
    want = nets["G_ema"][k[len("generator."):]] * decay + state["model"][k] * (1 - decay)
    assert torch.allclose(exported[k], want, atol=1e-6)
    from_g = nets["G"][k[len("generator."):]] * decay + state["model"][k] * (1 - decay)
    assert not torch.allclose(exported[k], from_g, atol=1e-4)
    meta, _ = load_checkpoint(final, "mat")
    assert meta.provenance["init"]["source"]["networks"] == ["G_ema", "G", "D"]


def test_a_folder_of_state_dicts_imports_like_the_pickle(imported, cli, tmp_path):
    nets = networks(load_checkpoint(imported, "mat", raw=True)[1])
    folder = tmp_path / "exported"
    folder.mkdir()
    for name, state in nets.items():
        torch.save(state, folder / f"{name}.pth")
    out = tmp_path / "f.safetensors"
    r = cli("import", "mat", folder, "--preset", "tiny", *SETS, "--out", out)
    assert r.exit_code == 0, r.output
    _, a = load_checkpoint(out, "mat", raw=True)
    _, b = load_checkpoint(imported, "mat", raw=True)
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)
    assert load_checkpoint(out, "mat")[0].provenance["format"] == "state-dict-folder"


def test_a_generator_only_import_fine_tunes_with_a_fresh_discriminator(imported, cli, tmp_path):
    nets = networks(load_checkpoint(imported, "mat", raw=True)[1])
    folder = tmp_path / "g"
    folder.mkdir()
    torch.save(nets["G_ema"], folder / "G_ema.pth")
    out = tmp_path / "g.safetensors"
    r = cli("import", "mat", folder, "--preset", "tiny", *SETS, "--out", out)
    assert r.exit_code == 0, r.output
    assert "has no discriminator" in r.output
    assert load_checkpoint(out, "mat")[0].config["discriminator"] is False
    r = cli("train", "mat", "--init", out, "--data", "shapes", "--steps", "1", "--batch-size", "2", "--out", tmp_path / "ft", "--device", "cpu")
    assert r.exit_code == 0, r.output
    assert "Note: g.safetensors has no discriminator (a generator-only checkpoint): fine-tuning with a freshly initialised" in r.output


def test_bad_inputs_are_one_line(imported, cli, tmp_path):
    nets = networks(load_checkpoint(imported, "mat", raw=True)[1])
    empty = tmp_path / "empty"
    empty.mkdir()
    r = cli("import", "mat", empty, "--preset", "tiny", "--out", tmp_path / "x.safetensors")
    assert r.exit_code == 2 and "holds no generator: give a folder with G_ema.pth" in r.output and len(r.output.strip().splitlines()) == 1
    bad = tmp_path / "bad"
    bad.mkdir()
    torch.save(nets["G_ema"], bad / "G_ema.pth")
    torch.save({k: v for k, v in nets["D"].items() if not k.startswith("fc1.")}, bad / "D.pth")
    r = cli("import", "mat", bad, "--preset", "tiny", *SETS, "--out", tmp_path / "x.safetensors")
    assert r.exit_code == 2 and "D does not match the mat tiny discriminator: 2 missing (e.g. fc1.bias)" in r.output
    assert len(r.output.strip().splitlines()) == 1 and not (tmp_path / "x.safetensors").exists()
    r = cli("import", "mat", FIXTURE, "--preset", "tiny", "--out", tmp_path / "x.safetensors")  # without the --set
    assert r.exit_code == 2 and "G_ema does not match the mat tiny generator" in r.output and not (tmp_path / "x.safetensors").exists()
