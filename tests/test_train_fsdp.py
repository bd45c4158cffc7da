"""`--strategy fsdp`: weights, gradients and optimizer state sharded over two gloo
processes started through accelerate. The sharded run must compute what plain data
parallelism computes, resume from its own (full-tensor) checkpoints, refuse a loss FSDP
cannot shard in one line, and leave checkpoints any process count can read."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn as nn
from safetensors.torch import load_file

from zoo.checkpoint import load_model
from zoo.errors import ZooError
from zoo.train import TrainOptions, fit
from zoo.train import fsdp, state as ckpt
from zoo.train.launch import free_port
from zoo.train.watch import read_events, read_log

from test_train_cli import TRAIN, wait_for, zoo_process
from test_train_engine import conv_task, make_ctx


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(4, 4), nn.GELU(), nn.Linear(4, 4))

    def forward(self, x):
        return x + self.mlp(x)


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(3, 4)
        self.blocks = nn.ModuleList([Block() for _ in range(3)])
        self.single = nn.Sequential(nn.Linear(4, 4), nn.ReLU())  # one block: not a unit of its own
        self.head = nn.Linear(4, 1)


def test_block_units_are_the_outer_repeated_blocks():
    net = Net()
    units = fsdp.block_units(net)
    assert units == list(net.blocks)  # not the Linear layers inside each block's Sequential
    blocks = nn.Sequential(Block(), nn.ReLU(), Block())
    assert fsdp.block_units(blocks) == [blocks[0], blocks[2]]  # the root itself may be the container
    # single layers are not blocks: they stay in the unit of the module around them
    assert fsdp.block_units(nn.Sequential(nn.Conv2d(2, 2, 3), nn.GroupNorm(1, 2), nn.SiLU(), nn.Conv2d(2, 2, 3))) == []
    assert fsdp.block_units(nn.Linear(2, 2)) == []


def test_strategy_choices_are_checked(cli):
    with pytest.raises(ZooError, match="unknown strategy 'zero'; valid choices: ddp, fsdp"):
        TrainOptions(strategy="zero")
    result = cli(*TRAIN, "--steps", 1, "--strategy", "zero")
    assert result.exit_code == 2
    assert "'zero' is not one of 'ddp', 'fsdp'" in result.output and "Traceback" not in result.output


def test_fsdp_with_one_process_trains_unsharded_with_a_warning(tmp_path):
    with pytest.warns(UserWarning, match="one process: nothing to shard"):
        result = fit(conv_task(), make_ctx(tmp_path, steps=2, strategy="fsdp"))
    assert result.step == 2
    assert next(r for r in read_events(tmp_path) if r.get("event") == "start")["strategy"] == "ddp"


def test_accelerate_launch_use_fsdp_selects_the_strategy_for_every_fit(tmp_path, monkeypatch):
    """`accelerate launch --use_fsdp` sets ACCELERATE_USE_FSDP; the engine reads it (here,
    one process: the warning shows it was read) and leaves it for the next fit."""
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    for run in ("a", "b"):
        with pytest.warns(UserWarning, match="--strategy fsdp with one process"):
            fit(conv_task(), make_ctx(tmp_path / run, steps=1))
    assert os.environ["ACCELERATE_USE_FSDP"] == "true"


def test_misuse_messages_name_the_cause_and_the_way_out():
    mixed = RuntimeError("aten.convolution.default: got mixed torch.Tensor and DTensor, need to convert all torch.Tensor to DTensor")
    assert "fsdp_roots()" in fsdp.misuse_message("m", mixed) and "--strategy ddp" in fsdp.misuse_message("m", mixed)
    twice = RuntimeError("The tensor has a non-zero number of elements, but its data is not allocated yet.")
    assert "backpropagates through a sharded module twice" in fsdp.misuse_message("m", twice)
    assert fsdp.misuse_message("m", RuntimeError("shape mismatch")) is None


def run_two(args, tmp_path, name):
    out = tmp_path / f"{name}.txt"
    proc = zoo_process([*args, "--devices", 2, "--device", "cpu"], out)
    code = proc.wait(timeout=300)
    return code, out.read_text()


def test_two_process_fsdp_resumes_and_equals_data_parallel(tmp_path):
    common = [*TRAIN, "--batch-size", 8, "--grad-accum", 2, "--save-every", 2, "--keep-last", 0, "--grad-clip", 1.0]
    sharded, plain, crossed = tmp_path / "fsdp", tmp_path / "ddp", tmp_path / "fsdp-then-ddp"
    code, text = run_two([*common, "--steps", 2, "--strategy", "fsdp", "--out", sharded], tmp_path, "a")
    assert code == 0, text[-2000:]
    shutil.copytree(sharded, crossed)
    # continue the sharded run from its step-2 checkpoint: optimizer moments re-sharded
    code, text = run_two([*common, "--steps", 4, "--strategy", "fsdp", "--resume", sharded, "--val-every", 2], tmp_path, "b")
    assert code == 0, text[-2000:]
    code, text = run_two([*common, "--steps", 4, "--out", plain], tmp_path, "c")
    assert code == 0, text[-2000:]

    events = read_events(sharded)
    start = [r for r in events if r.get("event") == "start"]
    assert [(r["strategy"], r["processes"], r["micro_batch"], r["accum"]) for r in start] == [("fsdp", 2, 2, 2)] * 2
    assert [p.name for p in ckpt.list_checkpoints(sharded)] == ["step_0000002", "step_0000004"]
    assert [r["step"] for r in events if r.get("event") == "val"] == [4]  # validation ran with the shards
    assert (sharded / "best.safetensors").is_file()
    # checkpoints hold full tensors, whatever the process count
    state = ckpt.read_state(ckpt.list_checkpoints(sharded)[-1])
    full = load_file(str(sharded / "model.safetensors"))
    assert {k: tuple(v.shape) for k, v in state["model"].items()} == {k: tuple(v.shape) for k, v in full.items()}
    moments = [state["optimizers"]["net"]["state"][i]["exp_avg"] for i in range(len(state["model"]))]
    assert [tuple(m.shape) for m in moments] == [tuple(v.shape) for v in state["model"].values()]  # conv-l1 has no buffers
    # same losses and, up to float summation order, the same weights as plain data parallelism
    loss = lambda d: [r["loss"] for r in read_log(d) if "loss" in r]  # noqa: E731
    assert loss(sharded) == pytest.approx(loss(plain), abs=1e-5)
    other = load_file(str(plain / "model.safetensors"))
    for k in full:
        torch.testing.assert_close(full[k], other[k], atol=1e-5, rtol=1e-4)
    model, _, meta = load_model(sharded / "model.safetensors")  # what `zoo sample` reads
    assert meta.method == "conv-l1" and meta.step == 4
    # the FSDP checkpoint resumed without sharding continues the same run
    code, text = run_two([*common, "--steps", 4, "--resume", crossed], tmp_path, "d")
    assert code == 0, text[-2000:]
    assert [r["strategy"] for r in read_events(crossed) if r.get("event") == "start"] == ["fsdp", "ddp"]
    resumed = load_file(str(crossed / "model.safetensors"))
    for k in full:
        torch.testing.assert_close(resumed[k], other[k], atol=1e-5, rtol=1e-4)


def test_fsdp_nan_skip_and_the_losses_it_cannot_shard_through_the_engine(tmp_path):
    """tests/fixtures/fsdp_scenarios.py on two processes. (1) SGD with momentum, EMA,
    clipping, two micro-batches per step and a NaN loss on the second micro-batch of step 2
    on process 1 only: FSDP must skip exactly that update and keep nothing of the skipped
    step's first micro-batch. (2) Each loss FSDP cannot shard ends in one line."""
    script = Path(__file__).parent / "fixtures" / "fsdp_scenarios.py"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port()), str(script), str(tmp_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((tmp_path / "result.json").read_text())
    assert report["strategy"] == {"ddp": "ddp", "fsdp": "fsdp"}
    assert report["nonfinite"] == {"ddp": [2], "fsdp": [2]}
    assert report["keys_equal"] and report["max_diff"] < 1e-6
    errors = report["errors"]
    assert "backpropagates through a sharded module twice" in errors["R1Gan"]  # R1's double backward
    assert "uses sharded weights outside the forward" in errors["WeightOutsideForward"]
    assert "cannot be trained with --strategy fsdp" in errors["Unshardable"]
    assert "12 trainable weights lie outside the modules the method shards" in errors["PartlySharded"]
    assert errors["OutOfMemory"].startswith("out of memory in step 2 (phase net, micro-batch 2, --strategy fsdp)")
    assert all("\n" not in e and "--strategy ddp" in e for k, e in errors.items() if k != "OutOfMemory")


def start_long_run(tmp_path):
    run, out = tmp_path / "run", tmp_path / "out.txt"
    args = [*TRAIN, "--steps", 100000, "--batch-size", 4, "--devices", 2, "--device", "cpu", "--out", run]
    return zoo_process(args, out, new_session=True), run, out


def logged_steps(run, n=3):
    return lambda: (run / "log.jsonl").is_file() and len((run / "log.jsonl").read_text().splitlines()) >= n


@pytest.mark.parametrize(
    "when, sent, stop, code",
    [("training", "SIGINT", "SIGINT", 130), pytest.param("starting", "SIGINT", "SIGINT", 130, marks=pytest.mark.multiprocess),
     pytest.param("training", "SIGHUP", "SIGTERM", 143, marks=pytest.mark.multiprocess)],
    ids=["ctrl-c", "ctrl-c-while-starting", "terminal-closed"],
)
def test_stopping_a_multi_process_run_saves_and_prints_one_line(tmp_path, when, sent, stop, code):
    """Ctrl-C (or a closed terminal: SIGHUP) reaches the terminal's process group: `zoo
    train`, not the launcher (its own session); the processes get one SIGINT (SIGTERM for
    SIGHUP) each (a process still starting gets it when it has written its pid), finish the
    step, save, and the parent prints one line and exits 128 + signal."""
    proc, run, out = start_long_run(tmp_path)
    if when == "training":
        wait_for(logged_steps(run), proc)
    else:  # before the model is even built
        wait_for(lambda: len(list((run / ".launch").glob("pid_*"))) == 2, proc)
    os.killpg(proc.pid, getattr(signal, sent))  # what the terminal does
    assert proc.wait(timeout=120) == code, out.read_text()[-2000:]
    text = out.read_text()
    assert text.count(f"Interrupted: {stop} at step") == 1 and "Traceback" not in text and "--resume" in text
    saved = ckpt.list_checkpoints(run)
    assert len(saved) == 1 and ckpt.read_state(saved[0])["step"] >= (2 if when == "training" else 1)


@pytest.mark.multiprocess
def test_training_processes_save_and_stop_when_zoo_train_dies(tmp_path):
    proc, run, out = start_long_run(tmp_path)
    wait_for(logged_steps(run), proc)
    proc.kill()  # SIGKILL: no chance to forward anything
    proc.wait()
    deadline = time.time() + 120
    while not any(r.get("event") == "interrupted" for r in read_events(run)):
        assert time.time() < deadline, "the training processes kept running without their parent"
        time.sleep(0.1)
    stop = next(r for r in read_events(run) if r.get("event") == "interrupted")
    assert stop["signal"] == "SIGTERM" and ckpt.list_checkpoints(run)


@pytest.mark.multiprocess
def test_lama_shards_its_generator_and_discriminator_in_fp16_but_not_with_r1(tmp_path):
    args = ["train", "lama", "--data", "shapes", "--preset", "tiny", "--steps", 2, "--batch-size", 4, "--no-tensorboard", "--strategy", "fsdp"]
    code, text = run_two([*args, "--out", tmp_path / "r1"], tmp_path, "r1")
    assert code == 2, text[-2000:]
    assert text.count("Error:") == 1 and "Traceback" not in text  # one line, once, from all processes
    assert "R1 penalty" in text and "--strategy ddp" in text
    # without R1 both sub-modules are sharded; fp16 takes FSDP's sharded loss scaler (one
    # per optimizer) and the BatchNorm layers keep fp32 weights under autocast
    code, text = run_two([*args, "--set", "r1_gamma=0", "--precision", "fp16", "--out", tmp_path / "ok"], tmp_path, "ok")
    assert code == 0, text[-2000:]
    records = [r for r in read_log(tmp_path / "ok") if "g_l1" in r]
    assert len(records) == 2 and all("loss_scale/generator" in r and "loss_scale/discriminator" in r for r in records)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model, _, meta = load_model(tmp_path / "ok" / "model.safetensors")
    assert meta.method == "lama" and all(torch.isfinite(v).all() for v in model.state_dict().values() if v.is_floating_point())
