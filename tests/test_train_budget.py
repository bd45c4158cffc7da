"""``zoo train --time-budget``: the duration parser, bad inputs, a budgeted run that stops
in time and leaves a checkpoint ``zoo sample`` uses, resume with the remainder, the
learning-rate schedule laid over the expected steps, and a two-stage split."""

from __future__ import annotations

import json
import math
import os
import signal
from pathlib import Path

import pytest
import torch

from zoo import runner
from zoo.config import parse_duration
from zoo.errors import ZooError
from zoo.train import Interrupted, TrainOptions, events, fit
from zoo.train.budget import PROBE_STEPS
from zoo.train.watch import read_events, read_log

from zoo.data import ShapesDataset
from zoo.masks import mask_kind
from zoo.spec import TrainContext
from zoo_plugins.baselines.config import ConvL1Config
from zoo_plugins.baselines.model import ConvL1Net
from zoo_plugins.baselines.train import ConvL1Task

TINY = ConvL1Config(resolution=16, channels=8, downsamplings=1, dilations=(1,), lr=2e-3)


def make_ctx(out: Path, steps: int, **opts) -> TrainContext:
    options = TrainOptions(device="cpu", progress=False, tensorboard=False, handle_signals=False, **opts)
    return TrainContext(method="conv-l1", config=TINY, preset="tiny", data=ShapesDataset(resolution=16, seed=3, length=64),
                        masks=mask_kind("box"), steps=steps, batch_size=4, seed=5, out_dir=out, options=options, data_name="shapes")


@pytest.mark.parametrize("text,seconds", [("90s", 90), ("15m", 900), ("2h", 7200), ("1h30m", 5400), ("1.5h", 5400), ("45", 45), (" 2m30s ", 150)])
def test_parse_duration_reads_the_usual_forms(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["0", "0s", "abc", "-5m", "", "1m2h", "5 minutes", "inf"])
def test_parse_duration_refuses_in_one_line(text):
    with pytest.raises(ZooError) as err:
        parse_duration(text)
    assert "\n" not in str(err.value) and "15m" in str(err.value)


@pytest.mark.parametrize("args,words", [
    (["--time-budget", "0"], "--time-budget: duration '0' must be more than 0"),
    (["--time-budget", "abc"], "--time-budget: duration 'abc' is not readable"),
    (["--time-budget", "5s", "--steps", "3"], "--time-budget and --steps both given"),
])
def test_bad_budgets_are_one_line_and_exit_2(cli, tmp_path, args, words):
    result = cli("train", "conv-l1", "--data", "shapes", "--preset", "tiny", "--out", tmp_path / "run", *args)
    assert result.exit_code == 2
    assert result.output.startswith("Error: ") and words in result.output and result.output.count("\n") == 1
    assert not (tmp_path / "run").exists()


def test_budget_clock_without_a_budget_is_one_line(cli, tmp_path):
    result = cli("train", "conv-l1", "--data", "shapes", "--preset", "tiny", "--budget-clock", "cpu", "--out", tmp_path / "run")
    assert result.exit_code == 2 and result.output.count("\n") == 1
    assert "--budget-clock" in result.output and "--time-budget" in result.output
    with pytest.raises(ZooError, match="valid choices: wall, cpu"):
        TrainOptions(time_budget_s=5, budget_clock="gpu")


def test_cpu_clock_counts_this_process_cpu_time_not_waiting():
    import time

    from zoo.train.budget import BudgetClock

    wall, cpu = BudgetClock(10.0, "wall"), BudgetClock(10.0, "cpu")
    wall.begin(), cpu.begin()
    time.sleep(0.3)  # waiting (as when other work holds the cores) is wall time, not CPU time
    assert wall.elapsed() >= 0.3 and cpu.elapsed() < 0.1
    c = time.process_time()
    while time.process_time() - c < 0.3:  # busy: both clocks run
        pass
    assert 0.3 <= cpu.elapsed() <= wall.elapsed() - 0.25
    assert cpu.state()["clock"] == "cpu" and wall.state()["clock"] == "wall"


def test_cpu_budget_run_records_its_clock_and_resume_keeps_it(cli, tmp_path):
    run = tmp_path / "run"
    result = cli("train", "conv-l1", "--data", "shapes", "--preset", "tiny", "--time-budget", "2s", "--budget-clock", "cpu",
                 "--out", run, "--no-tensorboard")
    assert result.exit_code == 0, result.output
    doc = json.loads((run / "run.json").read_text())
    assert doc["budget"]["clock"] == "cpu" and doc["options"]["budget_clock"] == "cpu"
    assert doc["budget"]["steps_reached"] > PROBE_STEPS
    result = cli("train", "conv-l1", "--resume", run, "--no-tensorboard")  # the budget is spent: nothing more, same clock
    assert result.exit_code == 0, result.output
    again = json.loads((run / "run.json").read_text())
    assert again["options"]["budget_clock"] == "cpu"
    result = cli("train", "conv-l1", "--resume", run, "--budget-clock", "wall", "--no-tensorboard")  # another clock: refused
    assert result.exit_code == 2 and result.output.strip().count("\n") == 0
    assert "counts its budget in cpu seconds, not wall" in result.output and "drop --budget-clock" in result.output
    result = cli("train", "conv-l1", "--resume", run, "--budget-clock", "cpu", "--no-tensorboard")  # the same clock, said again
    assert result.exit_code == 0, result.output


def _step_seconds(run: Path) -> float:
    """The longest gap between two logged steps of a run (an upper bound of one step)."""
    times = [r["time"] for r in read_log(run) if "loss" in r]
    return max(b - a for a, b in zip(times, times[1:]))


def test_budgeted_run_stops_in_time_and_zoo_sample_uses_its_checkpoint(cli, tmp_path, image_folder):
    run, budget = tmp_path / "run", 3.0
    result = cli("train", "conv-l1", "--data", "shapes", "--preset", "tiny", "--set", "steps=2", "--time-budget", "3s",
                 "--out", run, "--no-tensorboard")
    assert result.exit_code == 0, result.output
    info = json.loads((run / "run.json").read_text())["budget"]
    assert info["time_budget_s"] == budget
    # trained past the preset's steps=2: the budget, not the step count, ended the run
    assert info["steps_reached"] > 2 + PROBE_STEPS
    # stopped within the budget plus one step (and the final save)
    assert info["seconds"] <= budget + _step_seconds(run) + 0.5
    assert info["seconds"] >= budget - 2 * _step_seconds(run) - 0.1  # and did not stop early
    stages = info["stages"]
    assert [s["name"] for s in stages] == ["train"] and stages[0]["steps"] == info["steps_reached"]
    assert stages[0]["expected_steps"] >= PROBE_STEPS  # the schedule's length was fixed from measured steps
    assert (run / "checkpoints" / f"step_{info['steps_reached']:07d}").is_dir()
    images, masks = image_folder
    out = tmp_path / "filled"
    result = cli("sample", "conv-l1", "--checkpoint", run / "model.safetensors", "--images", images, "--masks", masks, "--out", out)
    assert result.exit_code == 0, result.output
    assert len(list(out.glob("*.png"))) == 3


def test_resume_of_a_budgeted_run_continues_with_what_is_left(tmp_path):
    run, budget = tmp_path / "run", 3.0

    def interrupt_at_8(event):
        if event.step == 8:
            os.kill(os.getpid(), signal.SIGINT)

    options = TrainOptions(device="cpu", progress=False, tensorboard=False, time_budget_s=budget)
    with events.step_listener(interrupt_at_8), pytest.raises(Interrupted):
        runner.train("conv-l1", "shapes", preset="tiny", out_dir=run, options=options)
    first = [r for r in read_events(run) if r.get("event") == "checkpoint"][-1]
    assert first["step"] == 8
    path = runner.train("conv-l1", None, options=TrainOptions(device="cpu", progress=False, tensorboard=False, resume=str(run)))
    assert path.is_file()
    records = read_log(run)
    resume = [r for r in read_events(run) if r.get("event") == "resume"]
    assert resume and resume[-1]["step"] == 8
    info = json.loads((run / "run.json").read_text())["budget"]
    assert info["time_budget_s"] == budget  # kept from the run
    assert info["steps_reached"] > 8
    # the seconds of both runs add up to the budget: the second run trained only what was left
    assert budget - 2 * _step_seconds(run) - 0.1 <= info["seconds"] <= budget + _step_seconds(run) + 0.5
    second_run = [r["time"] for r in records if r.get("step", 0) > 8 and "loss" in r]
    assert second_run[-1] - second_run[0] < budget


class WarmupCosineTask(ConvL1Task):
    """conv-l1 with a warm-up of 4 planned steps and cosine decay over the run."""

    def schedulers(self):
        opt = self.optimizers_["net"]

        def factor(step: int) -> float:
            warm = self.schedule_steps(4)
            if step < warm:
                return (step + 1) / warm
            return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, self.total_steps - warm))))

        return {"net": torch.optim.lr_scheduler.LambdaLR(opt, factor)}

    def optimizers(self):
        self.optimizers_ = super().optimizers()
        return self.optimizers_


def test_lr_schedule_is_laid_out_over_the_steps_the_budget_allows(tmp_path):
    # counted in CPU seconds: other load on the machine (a parallel test run) would stretch wall-clock steps after the probe
    ctx = make_ctx(tmp_path / "run", steps=100_000, time_budget_s=2.5, budget_clock="cpu")  # planned: far more steps than 2.5 s allow
    task = WarmupCosineTask(ConvL1Net(ctx.config), ctx.config)
    result = fit(task, ctx)
    log = read_log(tmp_path / "run")
    fixed = [r for r in read_events(tmp_path / "run") if r.get("event") == "budget"]
    assert len(fixed) == 1 and fixed[0]["step"] == PROBE_STEPS + 1
    expected = fixed[0]["expected_steps"]
    assert task.planned_steps == 100_000 and task.total_steps == expected < 100_000
    lrs = [r["lr/net"] for r in log if "lr/net" in r]
    peak = max(lrs)
    # the warm-up of 4 planned steps shrank with the run (to at least one step) and the
    # cosine decay reached its end near the last step the budget allowed
    assert lrs[-1] < 0.2 * peak
    assert result.step >= 0.6 * expected


def test_two_stage_method_splits_the_budget(tmp_path):
    run, budget = tmp_path / "run", 3.0
    options = TrainOptions(device="cpu", progress=False, tensorboard=False, time_budget_s=budget)
    runner.train("maskgit", "shapes", preset="tiny", overrides={"budget_split": "0.4"}, out_dir=run, options=options)
    info = json.loads((run / "run.json").read_text())["budget"]
    tokenizer, transformer = info["stages"]
    assert (tokenizer["name"], transformer["name"]) == ("tokenizer", "transformer")
    assert tokenizer["time_budget_s"] == pytest.approx(0.4 * budget)
    # the transformer gets what the tokenizer left of the whole budget
    assert transformer["time_budget_s"] == pytest.approx(budget - tokenizer["seconds"], abs=0.01)
    assert tokenizer["steps"] >= 1 and transformer["steps"] >= 1
    assert info["steps_reached"] == tokenizer["steps"] + transformer["steps"]
    assert info["seconds"] <= budget + 2.0  # within the budget plus about a step of each stage
