"""Issue 12's defects that the bad-input table does not show by itself: what happens on
success (warnings, notes, modes, replayable runs) and inside the numbers (intervals)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image


def _grey_masks(folder, n=3, size=(40, 48)):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, size, dtype=np.uint8)).save(folder / f"img{i}.png")


def test_sample_refuses_a_non_empty_out_and_overwrites_only_with_the_flag(cli, image_folder, tmp_path):
    images, masks = image_folder
    out = tmp_path / "o"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    res = cli("sample", "telea", "--images", images, "--masks", masks, "--out", out)
    assert res.exit_code == 2 and "--overwrite" in res.output
    res = cli("sample", "telea", "--images", images, "--masks", masks, "--out", out, "--overwrite")
    assert res.exit_code == 0, res.output
    assert (out / "mine.txt").read_text() == "keep me"  # only the command's own files are written
    assert sorted(p.name for p in out.iterdir()) == ["img0.png", "img1.png", "img2.png", "mine.txt"]


def test_warnings_are_one_line_per_kind_with_a_count(cli, image_folder, tmp_path):
    images, _ = image_folder
    _grey_masks(tmp_path / "grey")
    res = cli("sample", "telea", "--images", images, "--masks", tmp_path / "grey", "--out", tmp_path / "o")
    assert res.exit_code == 0, res.output
    warn = [line for line in res.output.splitlines() if "Warning" in line]
    assert len(warn) == 2, res.output  # the first one, then the count
    assert warn[0].strip().endswith("thresholded at 128") and "is not binary" in warn[0]
    assert warn[1] == "Warning: masks that were not binary (thresholded at 128): 3 in all"
    assert "UserWarning" not in res.output and "warnings.warn" not in res.output


def test_the_error_is_the_last_line_after_a_progress_bar(tmp_path, image_folder):
    """stderr to a file: the bar is closed before the error and never redrawn after it."""
    images, masks = image_folder
    data = (images / "img1.png").read_bytes()
    (images / "img1.png").write_bytes(data[: len(data) // 3])
    err = tmp_path / "err.txt"
    with open(err, "w") as fh:
        proc = subprocess.run([sys.executable, "-m", "zoo_cli.main", "sample", "telea", "--images", str(images), "--masks", str(masks),
                               "--out", str(tmp_path / "o"), "--batch-size", "1"], stderr=fh, stdout=subprocess.DEVNULL)
    assert proc.returncode == 2
    text = err.read_text()
    last = text.rstrip("\n").split("\n")[-1]
    assert last.startswith("Error: cannot read image") and "img1.png" in last, repr(text[-300:])
    assert "Traceback" not in text
    assert not (tmp_path / "o").exists()


def test_unknown_plugin_in_the_allow_list_is_reported(cli, monkeypatch):
    from zoo.plugins import reset_manager

    monkeypatch.setenv("ZOO_LOAD_PLUGINS", "lama,nosuch")
    reset_manager()  # the CLI's import may have loaded the plugins before the variable was set
    res = cli("list")
    assert res.exit_code == 0
    line = next(x for x in res.stderr.splitlines() if "ZOO_LOAD_PLUGINS" in x)
    assert line.startswith("Warning: ZOO_LOAD_PLUGINS: no plugin named 'nosuch'; valid names: baselines, ")
    assert "lama" in line and "repaint" in line


def test_a_registry_entry_whose_plugin_is_missing_is_not_available(cli, tmp_path, monkeypatch):
    import yaml

    from zoo.registry import registry_path

    data = yaml.safe_load(registry_path().read_text())
    data["methods"]["telea"]["plugin"] = "opencv-extras"
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(data))
    monkeypatch.setenv("ZOO_REGISTRY", str(tmp_path / "r.yaml"))
    rows = {r["name"]: r for r in json.loads(cli("list", "--json").output)}
    assert rows["telea"]["available"] is False and rows["conv-l1"]["available"] is True


def test_checkpoints_get_the_umasks_mode(cli, tmp_path):
    res = cli("train", "conv-l1", "--data", "shapes", "--preset", "tiny", "--steps", "2", "--out", tmp_path / "run", "--save-every", "1")
    assert res.exit_code == 0, res.output
    umask = os.umask(0)
    os.umask(umask)
    files = [tmp_path / "run/model.safetensors", *(tmp_path / "run/checkpoints").rglob("*.safetensors")]
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask, path
    for d in (tmp_path / "run/checkpoints").iterdir():
        assert stat.S_IMODE(d.stat().st_mode) == 0o777 & ~umask, d


def test_run_json_replays_and_resume_needs_no_data_and_the_config_follows(cli, tmp_path):
    run = tmp_path / "run"
    res = cli("train", "conv-l1", "--data", "shapes", "--preset", "tiny", "--steps", "3", "--out", run)
    assert res.exit_code == 0, res.output
    info = json.loads((run / "run.json").read_text())
    assert info["command"] == ["zoo", "train", "conv-l1", "--data", "shapes", "--preset", "tiny", "--steps", "3", "--out", str(run)]
    assert not info["options"]["grad_checkpointing"] and "--grad-checkpointing" not in info["command"]
    res = cli("train", "conv-l1", "--resume", run, "--steps", "5")  # the run knows its data
    assert res.exit_code == 0, res.output
    from zoo.checkpoint import read_meta

    meta = read_meta(run / "model.safetensors")
    assert meta.step == 5 and meta.config["steps"] == 5
    assert json.loads((run / "run.json").read_text())["config"]["steps"] == 5


def test_notes_for_another_resolution_and_no_network_calls_for_telea(cli, image_folder, tmp_path):
    images, masks = image_folder
    res = cli("sample", "telea", "--images", images, "--masks", masks, "--out", tmp_path / "t")
    assert res.exit_code == 0 and "network call" not in res.output
    ckpt = tmp_path / "run/model.safetensors"
    assert cli("train", "conv-l1", "--data", "shapes", "--preset", "tiny", "--steps", "1", "--out", tmp_path / "run").exit_code == 0
    res = cli("sample", "conv-l1", "--checkpoint", ckpt, "--images", images, "--masks", masks, "--out", tmp_path / "c")
    assert res.exit_code == 0, res.output
    assert "Note: conv-l1 was trained at 32x32; some images are 48x40" in res.output
    assert "1 network call per image" in res.output


def test_info_names_the_preset_whose_values_it_shows(cli):
    out = cli("info", "conv-l1").output
    assert "base defaults" not in out
    assert "preset tiny" in out


def test_intervals_stay_in_the_metrics_range():
    from zoo.metrics import metric
    from zoo.metrics.scoring import mean_ci

    ssim = mean_ci([0.99, 0.7], metric("ssim").value_range)
    assert ssim["ci_high"] <= 1.0 and ssim["ci_low"] >= -1.0
    l1 = mean_ci([0.01, 0.3, 0.02], metric("l1-hole").value_range)
    assert l1["ci_low"] >= 0.0
    psnr = mean_ci([5.0, 60.0], metric("psnr").value_range)
    assert psnr["ci_low"] >= 0.0 and psnr["ci_high"] > 60.0  # unbounded above


@pytest.mark.parametrize("spec, message", [("cuda:7", "'cuda:7'"), ("cuda:x", "cuda:N"), ("cpu:1", "cuda:N")])
def test_device_errors_name_the_device_asked_for(spec, message):
    from zoo.device import get_device
    from zoo.errors import ZooError

    with pytest.raises(ZooError, match=message):
        get_device(spec)
