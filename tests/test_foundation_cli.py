"""The `zoo` CLI surface: catalog commands, train -> sample end to end, one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

import zoo


def test_version(cli):
    res = cli("--version")
    assert res.exit_code == 0
    assert zoo.__version__ in res.output


def test_plugins_lists_core_and_baselines(cli):
    res = cli("plugins", "--json")
    assert res.exit_code == 0
    rows = {r["name"]: r for r in json.loads(res.output)}
    assert rows["zoo"]["status"] == "ok" and rows["zoo"]["source"] == "core"
    base = rows["baselines"]
    assert base["status"] == "ok"
    assert base["source"] == "inpaint-zoo"
    assert set(base["methods"]) == {"telea", "conv-l1"}
    assert {"zoo_register_methods", "zoo_train", "zoo_sample", "zoo_build_model"} <= set(base["hooks"])
    table = cli("plugins").output
    assert "baselines" in table and "telea,conv-l1" in table


def test_list_and_wildcard(cli):
    rows = json.loads(cli("list", "--json").output)
    names = {r["name"]: r for r in rows}
    assert names["telea"]["family"] == "classical" and names["telea"]["available"]
    assert names["conv-l1"]["in_registry"]
    filtered = json.loads(cli("list", "conv*", "--json").output)
    assert [r["name"] for r in filtered] == ["conv-l1"]


def test_info_shows_fields_presets_and_paper(cli):
    data = json.loads(cli("info", "conv-l1", "--json").output)
    assert data["family"] == "regression"
    assert set(data["presets"]) == {"tiny", "small", "base"}
    fields = {f["name"]: f for f in data["config_fields"]}
    assert fields["channels"]["default"] == 32 and fields["channels"]["type"] == "int"
    assert data["preset_values"]["tiny"]["channels"] == 16
    assert "Context Encoders" in data["paper"]
    text = cli("info", "telea").output
    assert "navier-stokes" in text and "license" in text


def _read(path):
    return np.asarray(Image.open(path).convert("RGB")).astype(np.int16)


def test_train_then_sample_keeps_known_pixels(cli, tmp_path, image_folder):
    images, masks = image_folder
    run = tmp_path / "run"
    res = cli("train", "conv-l1", "--data", "shapes", "--preset", "tiny", "--steps", "3", "--out", run)
    assert res.exit_code == 0, res.output
    ckpt = run / "model.safetensors"
    assert ckpt.is_file()
    from zoo.checkpoint import read_meta

    meta = read_meta(ckpt)
    assert meta.method == "conv-l1" and meta.preset == "tiny" and meta.step == 3
    assert meta.config["channels"] == 16
    run_info = json.loads((run / "run.json").read_text())
    assert run_info["seed"] == 0 and "torch" in run_info["versions"]

    out = tmp_path / "out"
    res = cli("sample", "conv-l1", "--checkpoint", ckpt, "--images", images, "--masks", masks, "--out", out)
    assert res.exit_code == 0, res.output
    for img_path in sorted(images.iterdir()):
        src, dst = _read(img_path), _read(out / img_path.name)
        hole = np.asarray(Image.open(masks / img_path.name)) > 127
        assert dst.shape == src.shape
        assert np.array_equal(dst[~hole], src[~hole]), "known pixels changed"
        assert not np.array_equal(dst[hole], src[hole]), "holes were not filled"


def test_sample_is_deterministic_per_seed(cli, tmp_path, image_folder):
    images, masks = image_folder
    for name in ("a", "b"):
        res = cli("sample", "telea", "--images", images, "--masks", masks, "--out", tmp_path / name, "--seed", "3")
        assert res.exit_code == 0, res.output
    for f in sorted((tmp_path / "a").iterdir()):
        assert f.read_bytes() == (tmp_path / "b" / f.name).read_bytes()


def test_num_samples_writes_one_file_per_sample(cli, tmp_path, image_folder):
    images, masks = image_folder
    res = cli("sample", "telea", "--images", images, "--masks", masks, "--out", tmp_path / "o", "--num-samples", "2")
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == sorted(f"img{i}_s{k}.png" for i in range(3) for k in range(2))


@pytest.mark.parametrize(
    "args, expected",
    [
        (["train", "nope", "--data", "shapes"], "unknown method 'nope'; valid choices: conv-l1, "),
        (["train", "conv-l1", "--data", "shapes", "--preset", "huge"], "valid choices: base, small, tiny"),
        (["train", "conv-l1", "--data", "shapes", "--set", "foo=1"], "unknown config key for conv-l1 'foo'; valid choices: batch_size"),
        (["train", "conv-l1", "--data", "shapes", "--set", "channels=abc"], "--set channels: expected an integer"),
        (["train", "conv-l1", "--data", "shapes", "--set", "channels"], "--set expects key=value"),
        (["train", "conv-l1", "--data", "/no/such/dir"], "neither a folder nor a registered dataset; valid names: shapes"),
        (["train", "telea", "--data", "shapes"], "has nothing to train"),
        (["sample", "conv-l1", "--images", "/no/x", "--masks", "/no/y", "--out", "o"], "--images /no/x: folder does not exist"),
        (["info", "nope"], "unknown method 'nope'"),
        (["sample", "telea", "--checkpoint", "/no/file.safetensors", "--images", ".", "--masks", ".", "--out", "o"], "does not exist"),
    ],
)
def test_user_errors_are_one_line_exit_2(cli, args, expected):
    res = cli(*args)
    assert res.exit_code == 2, res.output
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1, res.output
    assert lines[0].startswith("Error: ")
    assert expected in lines[0]
    assert "Traceback" not in res.output


def test_sample_with_checkpoint_of_another_method_is_refused(cli, tmp_path, image_folder):
    images, masks = image_folder
    run = tmp_path / "run"
    assert cli("train", "conv-l1", "--data", "shapes", "--preset", "tiny", "--steps", "1", "--out", run).exit_code == 0
    res = cli("sample", "telea", "--checkpoint", run / "model.safetensors", "--images", images, "--masks", masks, "--out", tmp_path / "o")
    assert res.exit_code == 2
    assert "is a checkpoint of method 'conv-l1', not 'telea'" in res.output


def test_sample_without_checkpoint_for_learned_method(cli, tmp_path, image_folder):
    images, masks = image_folder
    res = cli("sample", "conv-l1", "--images", images, "--masks", masks, "--out", tmp_path / "o")
    assert res.exit_code == 2
    assert "needs --checkpoint" in res.output


def test_mask_of_other_size_is_refused(cli, tmp_path, image_folder):
    images, masks = image_folder
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(masks / "img0.png")
    res = cli("sample", "telea", "--images", images, "--masks", masks, "--out", tmp_path / "o")
    assert res.exit_code == 2
    assert "is 10x10 but image" in res.output


def test_unknown_command_and_missing_option_are_one_line(cli):
    for args in (["frobnicate"], ["train", "conv-l1"]):
        res = cli(*args)
        assert res.exit_code == 2
        assert len(res.output.strip().splitlines()) == 1, res.output
