"""`zoo train` end to end with the conv-l1 baseline's tiny preset (32 px): resume through
the CLI, SIGKILL and SIGINT on a real process, two gloo processes through accelerate,
and what the run folder records."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from zoo.checkpoint import load_model, read_meta
from zoo.train import state as ckpt
from zoo.train.launch import free_port
from zoo.train.watch import read_events, read_log

TRAIN = ["train", "conv-l1", "--data", "shapes", "--preset", "tiny", "--no-tensorboard"]


def zoo_process(args: list[str], log: Path, new_session: bool = False) -> subprocess.Popen:
    """``zoo ARGS`` in a subprocess, output to ``log``; ``new_session``: in a process group
    of its own, as a shell's foreground job (so ``os.killpg`` is the terminal's Ctrl-C)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    with open(log, "w") as fh:
        return subprocess.Popen([sys.executable, "-m", "zoo_cli.main", *map(str, args)], stdout=fh, stderr=subprocess.STDOUT, env=env, start_new_session=new_session)


def wait_for(condition, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    end = time.time() + timeout
    while time.time() < end:
        if condition():
            return
        if proc.poll() is not None:
            raise AssertionError(f"process ended early with code {proc.returncode}")
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("timed out")


def weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


def test_cli_resume_equals_uninterrupted_run(cli, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert cli(*TRAIN, "--steps", 4, "--batch-size", 2, "--out", a).exit_code == 0
    assert cli(*TRAIN, "--steps", 4, "--batch-size", 2, "--out", b, "--save-every", 2, "--keep-last", 0).exit_code == 0
    result = cli("train", "conv-l1", "--data", "shapes", "--resume", b / "checkpoints" / "step_0000002", "--no-tensorboard")
    assert result.exit_code == 0, result.output
    wa, wb = weights(a / "model.safetensors"), weights(b / "model.safetensors")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    assert read_meta(b / "model.safetensors").step == 4
    resumes = [r for r in read_events(b) if r.get("event") == "resume"]
    assert [r["step"] for r in resumes] == [2]
    run = json.loads((b / "run.json").read_text())
    assert len(run["commands"]) == 2 and "--resume" in run["commands"][1]


def test_cli_resume_refuses_a_changed_setting(cli, tmp_path):
    run = tmp_path / "run"
    assert cli(*TRAIN, "--steps", 1, "--batch-size", 2, "--out", run).exit_code == 0
    result = cli("train", "conv-l1", "--data", "shapes", "--resume", run, "--batch-size", 8)
    assert result.exit_code == 2
    assert "the run used batch-size 2" in result.output
    result = cli("train", "conv-l1", "--data", "shapes", "--resume", tmp_path / "nothing")
    assert result.exit_code == 2 and "neither a run folder nor a checkpoint folder" in result.output


def test_run_folder_records_config_command_versions_and_data_hash(cli, tmp_path):
    run = tmp_path / "run"
    assert cli(*TRAIN, "--steps", 1, "--batch-size", 2, "--out", run, "--seed", 3).exit_code == 0
    info = json.loads((run / "run.json").read_text())
    assert info["config"]["resolution"] == 32 and info["preset"] == "tiny" and info["seed"] == 3
    assert {"zoo", "torch", "plugin:baselines"} <= set(info["versions"])
    assert info["dataset_manifest"]["sha256"] == hashlib.sha256(b"shapes|3|32").hexdigest()
    assert info["command"][0] == "zoo" and info["options"]["save_every"] == 0


def test_folder_manifest_hash_follows_file_list_and_sizes(image_folder):
    from zoo.data import ImageFolderDataset
    from zoo.runner import dataset_manifest

    images, _ = image_folder
    first = dataset_manifest(str(images), ImageFolderDataset(images, 32), 32, 0)
    assert first["kind"] == "folder" and first["files"] == 3
    with open(images / "img0.png", "ab") as fh:
        fh.write(b"\0")
    assert dataset_manifest(str(images), ImageFolderDataset(images, 32), 32, 0)["sha256"] != first["sha256"]


def test_sigkill_leaves_a_resumable_checkpoint(cli, tmp_path):
    run = tmp_path / "run"
    proc = zoo_process([*TRAIN, "--steps", 400, "--batch-size", 2, "--save-every", 2, "--out", str(run)], tmp_path / "out.txt")
    wait_for(lambda: bool(ckpt.list_checkpoints(run)), proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    latest = ckpt.list_checkpoints(run)[-1]
    step = ckpt.read_state(latest)["step"]
    load_model(latest / "model.safetensors", "conv-l1")  # the exported weights load as they are
    # a write cut short by a kill leaves only a temporary folder, which is ignored and cleaned
    torn = run / "checkpoints" / ".tmp-step_9999999-x"
    torn.mkdir()
    (torn / "state.safetensors").write_bytes(b"\x00" * 10)
    result = cli("train", "conv-l1", "--data", "shapes", "--resume", run, "--steps", step + 2, "--no-tensorboard")
    assert result.exit_code == 0, result.output
    assert read_meta(run / "model.safetensors").step == step + 2
    assert [r["step"] for r in read_events(run) if r.get("event") == "resume"] == [step]
    assert not torn.exists()


def test_sigint_saves_and_exits_cleanly(tmp_path):
    run = tmp_path / "run"
    out = tmp_path / "out.txt"
    proc = zoo_process([*TRAIN, "--steps", 400, "--batch-size", 2, "--out", str(run)], out)
    wait_for(lambda: any("loss" in r for r in read_log(run)), proc)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130
    stopped = [r for r in read_events(run) if r.get("event") == "interrupted"]
    assert len(stopped) == 1 and stopped[0]["signal"] == "SIGINT"
    step = stopped[0]["step"]
    assert 1 <= step < 400
    assert [p.name for p in ckpt.list_checkpoints(run)] == [f"step_{step:07d}"]
    assert ckpt.read_state(run / "checkpoints" / f"step_{step:07d}")["step"] == step
    assert "--resume" in out.read_text() and "Traceback" not in out.read_text()
    assert not (run / "model.safetensors").exists()  # an interrupted run does not claim to be finished


def test_two_gloo_processes_through_accelerate(cli, tmp_path):
    run, single = tmp_path / "ddp", tmp_path / "single"
    proc = zoo_process([*TRAIN, "--steps", 3, "--batch-size", 4, "--save-every", 2, "--out", str(run), "--devices", 2, "--device", "cpu"], tmp_path / "out.txt")
    assert proc.wait(timeout=300) == 0, (tmp_path / "out.txt").read_text()[-2000:]
    log = read_events(run)
    start = [r for r in log if r.get("event") == "start"]
    assert len(start) == 1 and start[0]["processes"] == 2 and start[0]["micro_batch"] == 2
    saves = [r for r in log if r.get("event") == "checkpoint"]
    assert [s["step"] for s in saves] == [2, 3]
    for s in saves:  # every process held bit-identical weights at every checkpoint
        assert len(s["rank_digests"]) == 2 and len(set(s["rank_digests"])) == 1
    assert [p.name for p in ckpt.list_checkpoints(run)] == ["step_0000002", "step_0000003"]
    assert not [p for p in (run / "checkpoints").iterdir() if not p.name.startswith("step_")]
    # same global batch as one process: the first loss (before any update) is the same mean
    assert cli(*TRAIN, "--steps", 3, "--batch-size", 4, "--out", single, "--device", "cpu").exit_code == 0
    first = lambda d: next(r["loss"] for r in read_log(d) if r.get("step") == 1 and "loss" in r)  # noqa: E731
    assert first(run) == pytest.approx(first(single), abs=1e-5)
    wd, ws = weights(run / "model.safetensors"), weights(single / "model.safetensors")
    assert max(float((wd[k] - ws[k]).abs().max()) for k in wd) < 2e-3  # Adam steps are ~lr = 2e-3


@pytest.mark.multiprocess
def test_two_machines_through_accelerate_launch(tmp_path):
    """The documented multi-node command, with two "machines" on this host (one gloo
    process each, a shared run folder): one run, one set of checkpoints."""
    run, port = tmp_path / "run", str(free_port())
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = []
    for rank in (0, 1):
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_machines", "2", "--machine_rank", str(rank),
               "--main_process_ip", "127.0.0.1", "--main_process_port", port, "--num_processes", "2", "--mixed_precision", "no",
               "--dynamo_backend", "no", "-m", "zoo_cli.main", *TRAIN, "--steps", "3", "--batch-size", "4", "--save-every", "2",
               "--device", "cpu", "--out", str(run)]  # fmt: skip
        log = open(tmp_path / f"machine{rank}.txt", "w")
        procs.append((subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env), log))
    for proc, log in procs:
        code = proc.wait(timeout=300)
        log.close()
        assert code == 0, Path(log.name).read_text()[-2000:]
    outputs = [(tmp_path / f"machine{rank}.txt").read_text() for rank in (0, 1)]
    assert "checkpoint:" in outputs[0] and "checkpoint:" not in outputs[1]  # process 0 reports
    events = read_events(run)
    assert [r["processes"] for r in events if r.get("event") == "start"] == [2]
    saves = [r for r in events if r.get("event") == "checkpoint"]
    assert [s["step"] for s in saves] == [2, 3] and all(len(set(s["rank_digests"])) == 1 for s in saves)
    assert load_model(run / "model.safetensors")[2].step == 3
