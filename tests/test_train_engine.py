"""The training engine itself, on toy tasks at 16-32 px: exact resume (GAN phases, R1,
EMA, scheduler, noise from the global RNG), NaN/Inf guard, accumulation, micro-batch
auto under a simulated memory limit, mixed precision, grad checkpointing, state files."""

from __future__ import annotations

import json
import os
import random
import signal
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from zoo.data import ShapesDataset
from zoo.errors import ZooError
from zoo.masks import mask_kind
from zoo.spec import TrainContext
from zoo.train import Phase, TrainOptions, TrainTask, fit, split_batch
from zoo.train import memory, state as ckpt
from zoo.train.watch import read_events, read_log
from zoo_plugins.baselines.config import ConvL1Config
from zoo_plugins.baselines.model import ConvL1Net
from zoo_plugins.baselines.train import ConvL1Task

TINY = ConvL1Config(resolution=16, channels=8, downsamplings=1, dilations=(1,), lr=2e-3)


def make_ctx(out: Path, steps: int, batch: int = 4, **opts) -> TrainContext:
    opts.setdefault("progress", False)
    opts.setdefault("tensorboard", False)
    opts.setdefault("handle_signals", False)
    return TrainContext(
        method="conv-l1",
        config=TINY,
        preset="tiny",
        data=ShapesDataset(resolution=16, seed=3, length=64),
        masks=mask_kind("box"),
        steps=steps,
        batch_size=batch,
        seed=5,
        out_dir=out,
        options=TrainOptions(device="cpu", **opts),
        data_name="shapes",
    )


class GanModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.generator = ConvL1Net(TINY)
        self.discriminator = nn.Sequential(nn.Conv2d(3, 8, 4, 2, 1), nn.LeakyReLU(0.2), nn.Conv2d(8, 1, 4, 2, 1))


class GanTask(TrainTask):
    """Two optimizers with different learning rates, R1 every 2 steps as its own phase,
    an LR schedule, EMA and input noise drawn from the global RNG."""

    ema_decay = 0.9

    def __init__(self, seed: int) -> None:
        torch.manual_seed(seed)
        self.model = GanModel()

    def optimizers(self):
        self.opt_g = torch.optim.Adam(self.model.generator.parameters(), lr=1e-3, betas=(0.5, 0.9))
        self.opt_d = torch.optim.Adam(self.model.discriminator.parameters(), lr=4e-3, betas=(0.5, 0.9))
        return {"g": self.opt_g, "d": self.opt_d}

    def schedulers(self):
        return {"g": torch.optim.lr_scheduler.StepLR(self.opt_g, step_size=2, gamma=0.5)}

    def phases(self):
        return [Phase("d", self.d_loss), Phase("d", self.r1, every=2), Phase("g", self.g_loss)]

    def d_loss(self, batch, step):
        img, mask = batch["image"], batch["mask"]
        with torch.no_grad():
            fake = self.model.generator(img, mask)
        noisy = img + 0.05 * torch.randn_like(img)  # global RNG: must be restored on resume
        loss = F.softplus(-self.model.discriminator(noisy)).mean() + F.softplus(self.model.discriminator(fake)).mean()
        return loss, {"d": loss.item()}

    def r1(self, batch, step):
        img = batch["image"].detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(self.model.discriminator(img).sum(), img, create_graph=True)
        loss = grad.pow(2).flatten(1).sum(1).mean()
        return loss, {"r1": loss.item()}

    def g_loss(self, batch, step):
        img, mask = batch["image"], batch["mask"]
        fake = self.model.generator(img, mask)
        loss = F.softplus(-self.model.discriminator(fake)).mean() + (fake - img).abs().mean()
        return loss, {"g": loss.item()}


def test_resume_equals_uninterrupted_gan_run(tmp_path):
    """6 steps in one go == 3 steps, checkpoint, a fresh task (other init) resumed to 6."""
    full = fit(GanTask(seed=0), make_ctx(tmp_path / "a", steps=6))
    fit(GanTask(seed=0), make_ctx(tmp_path / "b", steps=6, save_every=3))
    step3 = tmp_path / "b" / "checkpoints" / "step_0000003"
    assert step3.is_dir()
    random.seed(123), np.random.seed(123), torch.manual_seed(123)  # disturb every global RNG
    resumed_task = GanTask(seed=99)
    resumed = fit(resumed_task, make_ctx(tmp_path / "c", steps=6, resume=str(step3)))
    assert full.step == resumed.step == 6
    assert set(full.state_dict) == set(resumed.state_dict)
    for key in full.state_dict:
        assert torch.equal(full.state_dict[key], resumed.state_dict[key]), key
    # the export is the EMA, not the raw weights; and training moved the weights
    raw = resumed_task.model.state_dict()
    assert any(not torch.equal(raw[k].cpu(), resumed.state_dict[k]) for k in raw)
    state3 = ckpt.read_state(step3)
    assert state3["step"] == 3 and state3["samples_seen"] == 12
    assert resumed_task.opt_g.param_groups[0]["lr"] == pytest.approx(1e-3 * 0.5**3)  # StepLR restored


def test_resume_without_optimizer_state_would_differ(tmp_path):
    """Guards the test above: restarting from the step-3 weights alone does not match."""
    full = fit(GanTask(seed=0), make_ctx(tmp_path / "a", steps=4, save_every=2))
    st = ckpt.read_state(tmp_path / "a" / "checkpoints" / "step_0000002")
    task = GanTask(seed=0)
    task.model.load_state_dict(st["model"])
    naive = fit(task, make_ctx(tmp_path / "n", steps=2))
    assert any(not torch.equal(full.state_dict[k], naive.state_dict[k]) for k in full.state_dict)


class NanTask(ConvL1Task):
    def __init__(self, nan_steps: set[int]) -> None:
        torch.manual_seed(0)
        super().__init__(ConvL1Net(TINY), TINY)
        self.nan_steps = nan_steps

    def loss(self, batch, step):
        loss, logs = super().loss(batch, step)
        if step in self.nan_steps:
            loss = loss * float("nan")
        return loss, logs


def test_nan_steps_are_skipped_and_logged(tmp_path):
    task = NanTask({1, 2})
    before = {k: v.clone() for k, v in task.model.state_dict().items()}
    with pytest.warns(UserWarning, match="NaN/Inf loss"):
        result = fit(task, make_ctx(tmp_path, steps=5))
    assert all(torch.isfinite(v).all() for v in result.state_dict.values())
    assert any(not torch.equal(before[k], result.state_dict[k]) for k in before)
    events = [r for r in read_events(tmp_path) if r.get("event") == "nonfinite"]
    assert [(e["step"], e["in_a_row"]) for e in events] == [(2, 1), (3, 2)]


def test_nan_run_stops_after_k_in_a_row_without_touching_weights(tmp_path):
    task = NanTask(set(range(100)))
    before = {k: v.clone() for k, v in task.model.state_dict().items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ZooError, match="NaN/Inf for 3 steps in a row"):
            fit(task, make_ctx(tmp_path, steps=10, max_nonfinite=3))
    for k, v in task.model.state_dict().items():
        assert torch.equal(v, before[k]), k


def conv_task(seed: int = 0) -> ConvL1Task:
    torch.manual_seed(seed)
    return ConvL1Task(ConvL1Net(TINY), TINY)


class SgdTask(ConvL1Task):
    """SGD, so that float rounding in the gradient sum stays at rounding level (Adam
    divides by sqrt(v) and magnifies it on near-zero gradients)."""

    def optimizers(self):
        return {"net": torch.optim.SGD(self.model.parameters(), lr=0.05)}


def sgd_task(seed: int = 0) -> SgdTask:
    torch.manual_seed(seed)
    return SgdTask(ConvL1Net(TINY), TINY)


def test_accumulation_matches_full_batch(tmp_path):
    full = fit(sgd_task(), make_ctx(tmp_path / "a", steps=2, batch=4))
    accum = fit(sgd_task(), make_ctx(tmp_path / "b", steps=2, batch=4, grad_accum=4))
    for k in full.state_dict:
        torch.testing.assert_close(full.state_dict[k], accum.state_dict[k], atol=1e-6, rtol=1e-5)


def saved_bytes(micro: int) -> int:
    task = conv_task()
    data = ShapesDataset(resolution=16, seed=3, length=8)
    batch = {"image": torch.stack([data[i]["image"] for i in range(micro)]), "mask": torch.ones(micro, 1, 16, 16)}
    with memory.count_saved_bytes(exclude=task.model.parameters()) as total:
        loss, _ = task.loss(batch, 0)
        loss.backward()
    return total[0]


def test_micro_batch_auto_under_simulated_memory_limit(tmp_path, monkeypatch):
    b2, b4 = saved_bytes(2), saved_bytes(4)
    assert b2 < b4
    monkeypatch.setenv(memory.ENV_LIMIT, str((b2 + b4) // 2))
    auto = fit(sgd_task(), make_ctx(tmp_path / "auto", steps=2, batch=8, micro_batch="auto"))
    start = next(r for r in read_events(tmp_path / "auto") if r.get("event") == "start")
    assert (start["micro_batch"], start["accum"], start["batch_size"]) == (2, 4, 8)
    monkeypatch.delenv(memory.ENV_LIMIT)
    explicit = fit(sgd_task(), make_ctx(tmp_path / "m2", steps=2, batch=8, micro_batch=2))
    whole = fit(sgd_task(), make_ctx(tmp_path / "m8", steps=2, batch=8))
    for k in auto.state_dict:
        assert torch.equal(auto.state_dict[k], explicit.state_dict[k]), k  # the probe left no trace
        torch.testing.assert_close(auto.state_dict[k], whole.state_dict[k], atol=1e-6, rtol=1e-5)


class GrowingTask(SgdTask):
    """From step 2 on the loss runs the net twice (twice the saved activations), as a
    schedule that raises the resolution or the number of samples would."""

    def loss(self, batch, step):
        loss, logs = super().loss(batch, step)
        if step >= 2:
            loss = loss + 0.5 * (super().loss(batch, step)[0] - loss.detach())
        return loss, logs


def growing_task() -> GrowingTask:
    torch.manual_seed(0)
    return GrowingTask(ConvL1Net(TINY), TINY)


def test_out_of_memory_mid_run_halves_the_auto_micro_batch(tmp_path):
    b2, b4 = saved_bytes(2), saved_bytes(4)
    limit = (b4 * 3) // 2  # 4 samples fit once, not twice; 2 samples fit twice
    assert 2 * b2 <= limit < 2 * b4
    with pytest.warns(UserWarning, match=r"out of memory in step 3 \(phase net\); continuing with micro-batch 2 x 4"):
        result = fit(growing_task(), make_ctx(tmp_path / "auto", steps=5, batch=8, micro_batch="auto", simulated_memory_limit=limit))
    events = read_events(tmp_path / "auto")
    start = next(r for r in events if r.get("event") == "start")
    assert (start["micro_batch"], start["accum"]) == (4, 2)
    retries = [r for r in events if r.get("event") == "oom_retry"]
    assert [(r["step"], r["micro_batch"], r["accum"]) for r in retries] == [(3, 2, 4)]
    assert [r["step"] for r in read_log(tmp_path / "auto") if "loss" in r] == [1, 2, 3, 4, 5]  # no step lost
    # the retried run computes the same updates as one that used micro-batch 2 from step 3
    # on (SGD, so accumulation order only changes rounding)
    whole = fit(growing_task(), make_ctx(tmp_path / "whole", steps=5, batch=8))
    for k in whole.state_dict:
        torch.testing.assert_close(result.state_dict[k], whole.state_dict[k], atol=1e-5, rtol=1e-4)


def test_out_of_memory_with_a_fixed_micro_batch_stops_with_advice(tmp_path):
    limit = (saved_bytes(4) * 3) // 2
    with pytest.raises(ZooError, match=r"out of memory in step 3 \(phase net, micro-batch 4\).*Try --micro-batch auto"):
        fit(growing_task(), make_ctx(tmp_path, steps=5, batch=8, micro_batch=4, simulated_memory_limit=limit))


class OomAtStepTask(SgdTask):
    """The optimizer's step runs out of memory (as Adam's first step allocating its
    moments does on a full card): outside the forward/backward, so no retry."""

    def optimizers(self):
        class Sgd(torch.optim.SGD):
            def step(self, closure=None):
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.00 GiB (test)")

        return {"net": Sgd(self.model.parameters(), lr=0.05)}


def test_out_of_memory_outside_forward_and_backward_is_one_line(tmp_path):
    torch.manual_seed(0)
    with pytest.raises(ZooError, match=r"^out of memory around step 1 outside the forward/backward pass \(optimizer step.*Try --micro-batch auto"):
        fit(OomAtStepTask(ConvL1Net(TINY), TINY), make_ctx(tmp_path, steps=2))


def test_micro_batch_auto_when_nothing_fits(tmp_path):
    with pytest.raises(ZooError, match="even one sample does not fit"):
        fit(conv_task(), make_ctx(tmp_path, steps=1, micro_batch="auto", simulated_memory_limit=1000))


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_trains(tmp_path, precision):
    task = conv_task()
    before = {k: v.clone() for k, v in task.model.state_dict().items()}
    result = fit(task, make_ctx(tmp_path, steps=2, precision=precision, grad_clip=1.0))
    assert all(torch.isfinite(v).all() for v in result.state_dict.values())
    records = [r for r in read_log(tmp_path) if "loss" in r]
    assert len(records) == 2 and all(np.isfinite(r["loss"]) for r in records)
    if precision == "fp16":
        assert all("loss_scale/net" in r for r in records)  # one scaler per optimizer
    else:
        assert any(not torch.equal(before[k], result.state_dict[k]) for k in before)


def test_options_errors():
    with pytest.raises(ZooError, match="expected a positive integer or 'auto'"):
        TrainOptions(micro_batch="lots")
    with pytest.raises(ZooError, match="unknown precision"):
        TrainOptions(precision="fp8")
    with pytest.raises(ZooError, match="not divisible by --grad-accum 3"):
        split_batch(8, TrainOptions(grad_accum=3))
    assert split_batch(8, TrainOptions(micro_batch=3)) == (3, 3)  # 3 + 3 + 2
    assert split_batch(8, TrainOptions(grad_accum=2), processes=2) == (2, 2)


def test_grad_checkpointing_switches(tmp_path):
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.on = False
            self.lin = nn.Linear(2, 2)

        def set_grad_checkpointing(self, enable=True):  # timm's switch
            self.on = enable

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = Block(), nn.Linear(2, 2)

    from zoo.train import enable_grad_checkpointing

    net = Net()
    assert enable_grad_checkpointing(net) and net.a.on
    assert not enable_grad_checkpointing(nn.Sequential(nn.Linear(2, 2)))
    with pytest.warns(UserWarning, match="does not support --grad-checkpointing"):
        fit(conv_task(), make_ctx(tmp_path, steps=1, grad_checkpointing=True))


def test_state_tree_round_trip(tmp_path):
    opt = torch.optim.Adam([nn.Parameter(torch.randn(3))], lr=0.1)
    opt.param_groups[0]["params"][0].grad = torch.ones(3)
    opt.step()
    tree = {"opt": opt.state_dict(), "rng": ckpt.rng_state(), "t": (1, "a", None), "n": 3.5}
    path = ckpt.write_checkpoint(tmp_path, 7, tree, {"w": torch.zeros(2)}, {"zoo.method": "x"})
    back = ckpt.read_state(path)
    assert list(back["opt"]["state"]) == [0]  # int keys survive (optimizer state would be lost otherwise)
    assert torch.equal(back["opt"]["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
    assert back["t"] == (1, "a", None) and back["n"] == 3.5
    random.random()
    ckpt.set_rng_state(back["rng"])
    expected = (random.random(), np.random.rand(), torch.rand(1))
    ckpt.set_rng_state(tree["rng"])
    assert (random.random(), np.random.rand()) == expected[:2] and torch.equal(torch.rand(1), expected[2])
    with pytest.raises(ZooError, match="cannot be saved without pickle"):
        ckpt.write_checkpoint(tmp_path, 8, {"f": object()}, {}, {})
    assert [p.name for p in ckpt.list_checkpoints(tmp_path)] == ["step_0000007"]  # the failed write left nothing
    assert not [p for p in (tmp_path / "checkpoints").iterdir() if p.name.startswith(".tmp")]


def test_keep_last_and_best(tmp_path):
    watched = fit(conv_task(), make_ctx(tmp_path, steps=4, save_every=1, keep_last=2, val_every=2, val_size=2, sample_every=4))
    plain = fit(conv_task(), make_ctx(tmp_path / "plain", steps=4))
    assert all(torch.equal(watched.state_dict[k], plain.state_dict[k]) for k in plain.state_dict)  # watching changes nothing
    assert [p.name for p in ckpt.list_checkpoints(tmp_path)] == ["step_0000003", "step_0000004"]
    vals = [r for r in read_events(tmp_path) if r.get("event") == "val"]
    assert [v["step"] for v in vals] == [2, 4] and all("psnr" in v and "l1-hole" in v for v in vals)
    best = json.loads((tmp_path / "best.json").read_text())
    top = max(vals, key=lambda v: v["psnr"])
    assert best["value"] == pytest.approx(top["psnr"], abs=1e-5) and best["step"] == top["step"]
    assert (tmp_path / "best.safetensors").is_file() and (tmp_path / "samples" / "step_0000004.png").is_file()


def test_fit_for_an_unregistered_method_and_no_config(tmp_path):
    """Plugins' own tests and benchmarks may train a task whose method is not registered."""
    ctx = make_ctx(tmp_path, steps=1)
    ctx.method, ctx.config = "not-registered", None
    result = fit(conv_task(), ctx)
    from zoo.checkpoint import read_meta

    meta = read_meta(tmp_path / "checkpoints" / "step_0000001" / "model.safetensors")
    assert result.step == 1 and meta.method == "not-registered" and meta.config == {}


class SigtermTask(SgdTask):
    """Sends itself SIGTERM during step 1 (index), like a scheduler preempting the job."""

    def loss(self, batch, step):
        if step == 1:
            os.kill(os.getpid(), signal.SIGTERM)
        return super().loss(batch, step)


def test_sigterm_finishes_the_step_saves_and_raises(tmp_path):
    from zoo.train import Interrupted

    torch.manual_seed(0)
    task = SigtermTask(ConvL1Net(TINY), TINY)
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Interrupted, match="SIGTERM at step 2") as info:
        fit(task, make_ctx(tmp_path, steps=10, handle_signals=True))
    assert info.value.exit_code == 143 and info.value.checkpoint == tmp_path / "checkpoints" / "step_0000002"
    saved = ckpt.read_state(info.value.checkpoint)
    assert saved["step"] == 2
    assert all(torch.equal(saved["model"][k], v) for k, v in task.model.state_dict().items())
    assert signal.getsignal(signal.SIGTERM) == before  # the engine's handler is gone again


def test_unknown_validation_metric_is_skipped_with_a_warning(tmp_path):
    with pytest.warns(UserWarning, match="'no-such-metric' is not available"):
        fit(conv_task(), make_ctx(tmp_path, steps=1, val_every=1, val_size=2, val_metrics="psnr,no-such-metric"))
    vals = [r for r in read_events(tmp_path) if r.get("event") == "val"]
    assert len(vals) == 1 and "psnr" in vals[0] and "no-such-metric" not in vals[0]


def test_step_listener_sees_every_step_and_only_inside_its_block(tmp_path):
    from zoo.train import StepEvent, step_listener

    seen: list[StepEvent] = []
    with step_listener(seen.append):
        with pytest.warns(UserWarning, match="NaN/Inf loss"):
            fit(NanTask({2}), make_ctx(tmp_path / "a", steps=4))
    assert [e.step for e in seen] == [1, 2, 3, 4] and all(e.steps == 4 and e.rank == 0 for e in seen)
    assert all(e.seconds > 0 and e.out_dir == tmp_path / "a" for e in seen)
    assert [bool(e.skipped) for e in seen] == [False, False, True, False]  # the NaN step names its skipped phase
    assert seen[0].logs and all(isinstance(v, float) for v in seen[0].logs.values())
    fit(NanTask(set()), make_ctx(tmp_path / "b", steps=2))
    assert len(seen) == 4  # the block is closed: no more events
