"""``zoo study`` (issue 24 item 5): equal budgets, settings chosen on val, test scored, resumable."""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from zoo_cli.main import app

FAST = ["--preset", "tiny", "--resolution", "32", "--eval-count", "20", "--val-count", "5", "--no-progress"]


def _invoke(args):
    return CliRunner().invoke(app, args, catch_exceptions=False)


def _images(folder: Path, n: int, size: int = 40) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(n)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(folder / f"img{i:03d}.png")
    return folder


def test_study_on_shapes_resumes_after_an_interrupt(tmp_path, monkeypatch):
    import zoo.runner
    import zoo.study

    out = tmp_path / "study"
    args = ["study", "--data", "shapes", "--methods", "telea,conv-l1", "--budget", "20s", "--out", str(out), *FAST]
    real_cell = zoo.study.run_cell

    def interrupted_after_training(s, method, *a, **k):
        if method == "conv-l1":
            raise KeyboardInterrupt  # Ctrl-C once conv-l1 is trained, before it is evaluated
        return real_cell(s, method, *a, **k)

    monkeypatch.setattr(zoo.study, "run_cell", interrupted_after_training)
    res = _invoke(args)
    assert res.exit_code == 130, res.output
    telea_done = out / "results" / "telea" / "lama-medium.json"
    model = out / "runs" / "conv-l1" / "20s" / "model.safetensors"
    assert telea_done.is_file() and model.is_file() and not (out / "report.md").exists()
    stamps = {p: p.stat().st_mtime_ns for p in (telea_done, model, out / "eval" / "test-lama-medium" / "predictions" / "telea" / "done.json")}

    monkeypatch.setattr(zoo.study, "run_cell", real_cell)

    def no_training(*a, **k):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(zoo.runner, "train", no_training)
    res = _invoke(args)
    assert res.exit_code == 0, res.output
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # telea not redone, conv-l1 not retrained

    doc = json.loads((out / "results.json").read_text())
    rows = {r["method"]: r for r in doc["rows"]}
    assert set(rows) == {"telea", "conv-l1"} and rows["conv-l1"]["budget"] == "20s" and rows["telea"]["budget"] is None
    conv = rows["conv-l1"]
    assert conv["train_steps"] >= 1 and conv["nfe"] == 1.0 and conv["seconds_per_image"] > 0
    for name in ("psnr", "ssim", "l1-hole"):
        m = conv["metrics"][name]
        assert m["n"] == 20 and m["ci_low"] < m["value"] < m["ci_high"]
        # the paired difference is the mean of the per-image differences of the raw results
        d = conv["vs_telea"][name]
        with open(out / "per_image.csv") as fh:
            per = list(csv.DictReader(fh))
        mine = {r["image"]: float(r[name]) for r in per if r["method"] == "conv-l1"}
        ref = {r["image"]: float(r[name]) for r in per if r["method"] == "telea"}
        assert len(mine) == len(ref) == 20
        assert d["value"] == pytest.approx(np.mean([mine[k] - ref[k] for k in mine]))
        assert d["ci_low"] < d["value"] < d["ci_high"] and d["n"] == 20
        c = conv["vs_telea_by_photo"][name]  # shapes images are their own sources: 20 photographs of one crop
        assert c["value"] == pytest.approx(d["value"]) and c["groups"] == 20 and c["ci_low"] < c["value"] < c["ci_high"]
    assert conv["cpu_seconds_per_image"] > 0
    assert "vs_telea" in conv and rows["telea"]["vs_telea"] == {}
    report = (out / "report.md").read_text()
    assert "| conv-l1@20s |" in report and "| telea |" in report and "paired" in report
    assert (out / "eval" / "test-lama-medium" / "grid.png").is_file()
    assert (out / "loss_curves.png").stat().st_size > 1000  # conv-l1's training loss
    with open(out / "results.csv") as fh:
        assert [r["method"] for r in csv.DictReader(fh)] == ["telea", "conv-l1"]
    assert not (out / "quality_vs_budget.png").exists()  # one budget: no curve
    assert {x["label"]: (x["train"], x["eval"]) for x in doc["status"]} == {"telea": (None, "cached"), "conv-l1@20s": ("cached", "computed")}

    # a third run finds everything done; a changed setting is refused in one line
    res = _invoke(args)
    assert res.exit_code == 0, res.output
    assert all(x["eval"] == "cached" for x in json.loads((out / "results.json").read_text())["status"])
    res = _invoke([*args[:-1], "--seed", "1", "--no-progress"])
    assert res.exit_code == 2 and "holds a study with seed=0" in res.output


def test_tuning_picks_the_best_candidate_on_validation_only(tmp_path, monkeypatch):
    """A classical method given two candidate settings: the one with the higher val PSNR is
    kept, and the test split is sampled with it alone."""
    import dataclasses

    from zoo.plugins import get_manager
    import zoo.study

    spec = get_manager().method("telea")
    tuned = dataclasses.replace(spec, tunable=({"algorithm": "ns"}, {"algorithm": "telea"}))
    real = zoo.study.candidates
    monkeypatch.setattr(zoo.study, "candidates", lambda m: [{k: str(v) for k, v in c.items()} for c in tuned.tunable] if m == "telea" else real(m))
    out = tmp_path / "s"
    res = _invoke(["study", "--data", "shapes", "--methods", "telea", "--budget", "5s", "--out", str(out), *FAST])
    assert res.exit_code == 0, res.output
    row = json.loads((out / "results.json").read_text())["rows"][0]
    tried = {t["settings"]["algorithm"]: t["value"] for t in row["tuning"]["tried"]}
    assert set(tried) == {"ns", "telea"} and row["settings"]["algorithm"] == max(tried, key=tried.get)
    assert row["tuning"]["val_count"] == 5
    test_preds = sorted(p.name for p in (out / "eval" / "test-lama-medium" / "predictions").iterdir())
    assert test_preds == [f"telea_algorithm_{row['settings']['algorithm']}_"]
    assert len(list((out / "eval" / "val-lama-medium" / "predictions").iterdir())) == 2


def test_a_plain_folder_is_split_by_source_file(tmp_path):
    from zoo.data.splits import plain_split, write_split_view

    root = _images(tmp_path / "photos", 40, size=8)
    files = sorted(root.glob("*.png"))
    split = plain_split(files, root)
    assert [len(split[s]) for s in ("train", "val", "test")] == [28, 6, 6]
    assert set().union(*map(set, split.values())) == set(files) and sum(map(len, split.values())) == 40
    assert plain_split(list(reversed(files)), root) == split  # deterministic
    view = Path(write_split_view(root, tmp_path / "view", split))
    from zoo.data import open_data

    names = {s: {open_data(view, 8, split=s)[i]["name"] for i in range(len(split[s]))} for s in ("train", "val", "test")}
    assert not (names["train"] & names["test"]) and not (names["val"] & names["test"]) and len(names["test"]) == 6


@pytest.mark.parametrize("extra, message", [
    (["--methods", "telea,nosuch"], "unknown method 'nosuch'; valid choices: all,"),
    (["--budget", "0"], "--budget '0'"),
    (["--budget", "abc"], "--budget 'abc'"),
    (["--budget", "20s,20s"], "listed twice"),
    (["--eval-count", "10"], "at least 20 test images"),
    (["--masks", "nosuch"], "unknown mask kind 'nosuch'"),
    (["--preset", "nosuch"], "has no preset 'nosuch'"),
    (["--methods", "telea,nosuch:channels=8"], "unknown method 'nosuch'"),
    (["--methods", "telea,conv-l1:channels"], "a variant is METHOD[:key=value...]"),
    (["--methods", "telea,conv-l1:nosuch=1"], "--methods 'conv-l1:nosuch=1': unknown config key"),
    (["--methods", "telea,conv-l1:channels=abc"], "--methods 'conv-l1:channels=abc'"),
    # a sampling variant cannot change the trained network: refused before any training
    (["--methods", "telea,dit-mca/guidance=2/depth=3"], "depth=3 changes the network, so the trained model cannot sample "
     "with it; give it as a training variant instead: dit-mca:depth=3"),
])
def test_bad_requests_are_one_line_and_leave_nothing(tmp_path, extra, message):
    out = tmp_path / "out"
    args = ["study", "--data", "shapes", "--methods", "telea,conv-l1", "--budget", "20s", "--out", str(out), *FAST]
    for flag in extra[::2]:  # replace the flag's default value
        if flag in args:
            i = args.index(flag)
            del args[i : i + 2]
    res = _invoke([*args, *extra])
    assert res.exit_code == 2, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], res.output
    assert not out.exists()


def test_data_folders_that_cannot_make_a_study(tmp_path):
    base = ["study", "--methods", "telea", "--budget", "20s", "--out", str(tmp_path / "out"), *FAST]
    (tmp_path / "empty").mkdir()
    small = _images(tmp_path / "small", 30, size=8)
    split = tmp_path / "split"
    for name, n in (("train", 5), ("val", 5), ("test", 22)):
        _images(split / name, n, size=8)
    cases = [(tmp_path / "empty", "no images"), (small, "has 30 images, too few for a study"),
             (tmp_path / "nothere", "neither a folder nor a registered dataset")]
    for data, message in cases:
        res = _invoke([*base, "--data", str(data)])
        assert res.exit_code == 2 and message in res.output and len(res.output.strip().splitlines()) == 1, res.output
    res = _invoke([*base[:-len(FAST)], "--preset", "tiny", "--resolution", "32", "--eval-count", "30", "--data", str(split)])
    assert res.exit_code == 2 and "--eval-count 30 is larger than the test split" in res.output and "22 images" in res.output, res.output
    assert not (tmp_path / "out").exists()


def test_prepared_and_subfolder_layouts_keep_their_own_splits(tmp_path):
    """A `zoo data prepare` folder (the scenes benchmark's layout) is read by its split lists;
    train/ val/ test/ sub-folders (an eval set's images/ where there is a manifest) as they are."""
    from zoo.data.prepare import prepare
    from zoo.data.splits import resolve_splits
    from zoo.study import StudySettings, check_settings

    src = _images(tmp_path / "src", 60, size=12)
    prepared = tmp_path / "prepared"
    prepare("folder", src, prepared, size=8, val_count=10, test_count=20, workers=1)
    kind, sizes, splits = resolve_splits(str(prepared), 8, 0)
    lists = {s: (prepared / "splits" / f"{s}.txt").read_text().split() for s in ("train", "val", "test")}
    assert kind == "prepared" and sizes == {s: len(v) for s, v in lists.items()} == {"train": 30, "val": 10, "test": 20}
    s = check_settings(StudySettings(str(prepared), ["telea"], [20.0], ["lama-medium"], resolution=16, eval_count=20, val_count=50))
    assert s.val_count == 10  # capped at the val split

    sub = tmp_path / "sub"
    _images(sub / "train", 3, size=8)
    _images(sub / "val" / "images", 6, size=8)
    _images(sub / "val" / "masks", 6, size=8)  # an eval set: its masks are not images of the split
    (sub / "val" / "manifest.json").write_text("{}")
    _images(sub / "test", 21, size=8)
    kind, sizes, splits = resolve_splits(str(sub), 8, 0)
    assert kind == "folders" and sizes == {"train": 3, "val": 6, "test": 21} and splits["val"] == str(sub / "val" / "images")


def test_by_photograph_interval_is_cluster_robust():
    import math

    import numpy as np
    from scipy import stats

    from zoo.study_report import clustered_difference, paired_difference, source_group

    assert source_group("images/test/plasma-kite__c03") == "plasma-kite" and source_group("a/b/photo.png") == "photo.png"
    # 4 photographs, 5 crops each; crops of one photograph share an offset: the per-image
    # interval treats 20 values as independent, the by-photograph one sees 4 groups
    rng = np.random.default_rng(0)
    offsets = [1.0, -2.0, 3.0, 0.5]
    d = [o + 0.01 * rng.standard_normal() for o in offsets for _ in range(5)]
    groups = [f"p{i}" for i in range(4) for _ in range(5)]
    zeros = [0.0] * 20
    per_image, by_photo = paired_difference(d, zeros), clustered_difference(d, zeros, groups)
    assert by_photo["value"] == per_image["value"] and by_photo["groups"] == 4
    assert (by_photo["ci_high"] - by_photo["ci_low"]) > 2 * (per_image["ci_high"] - per_image["ci_low"])
    # with one crop per photograph it is the ordinary t interval, up to the k/(k-1) factor
    one = clustered_difference(d[::5], [0.0] * 4, ["a", "b", "c", "d"])
    v = np.asarray(d[::5])
    half = stats.t.ppf(0.975, 3) * math.sqrt(4 / 3 * ((v - v.mean()) ** 2).sum()) / 4
    assert math.isclose(one["ci_high"] - one["value"], half, rel_tol=1e-9)
    # one photograph: no interval; None and non-finite values are left out
    assert clustered_difference([1.0, 2.0], [0.0, 0.0], ["x", "x"])["ci_low"] is None
    assert clustered_difference([1.0, None, float("nan")], [0.0, 0.0, 0.0], ["a", "b", "c"])["n"] == 1


def test_budget_needed_extrapolates_the_last_two_budgets_on_a_log_scale():
    from zoo.study_report import budget_needed

    def row(method, budget, value):
        return {"method": method, "budget_s": budget, "mask": "m", "metrics": {"psnr": {"value": value}}}

    rows = [row("telea", None, 30.0), row("slow", 300, 20.0), row("slow", 900, 22.0), row("flat", 300, 25.0), row("flat", 900, 24.0),
            row("ahead", 300, 31.0), row("ahead", 900, 32.0), row("one", 300, 10.0)]
    found = {n["method"]: n for n in budget_needed(rows)}
    assert set(found) == {"slow", "flat"}  # ahead beats telea; one budget is no curve
    # 2 dB per factor 3 of budget; 8 dB more need 3^4 = 81 times 15 minutes = 20.25 hours
    assert found["slow"]["needed"].endswith(" h") and abs(float(found["slow"]["needed"][:-2]) - 900 * 81 / 3600) < 0.06
    assert abs(found["slow"]["per_doubling"] - 2 * math.log(2) / math.log(3)) < 1e-12
    assert found["flat"]["needed"] == "not improving"
    nearly = budget_needed([row("telea", None, 30.0), row("crawl", 300, 20.0), row("crawl", 900, 20.1)])
    assert nearly[0]["needed"] == "over 1000 x 15m (nearly flat)"


def test_variants_of_one_method_are_trained_apart_with_their_settings(tmp_path):
    out = tmp_path / "out"
    res = _invoke(["study", "--data", "shapes", "--methods", "conv-l1:channels=8,conv-l1:channels=16", "--budget", "3s",
                   "--budget-clock", "cpu", "--masks", "box", "--out", str(out), *FAST])
    assert res.exit_code == 0, res.output
    for label, width in (("conv-l1:channels=8", 8), ("conv-l1:channels=16", 16)):
        run = json.loads((out / "runs" / label.replace(":", "_").replace("=", "_") / "3s" / "run.json").read_text())
        assert run["config"]["channels"] == width and run["config"]["resolution"] == 32
        assert run["budget"]["clock"] == "cpu" and run["command"][run["command"].index("--budget-clock") + 1] == "cpu"
        assert ["--set", f"channels={width}"] == run["command"][run["command"].index(f"channels={width}") - 1 :][:2]
    rows = {r["method"]: r for r in json.loads((out / "results.json").read_text())["rows"]}
    assert set(rows) == {"telea", "conv-l1:channels=8", "conv-l1:channels=16"}
    assert rows["conv-l1:channels=8"]["metrics"]["psnr"]["value"] != rows["conv-l1:channels=16"]["metrics"]["psnr"]["value"]
    assert "| conv-l1:channels=16@3s |" in (out / "report.md").read_text()
    # --report-only: the finished parts only; a method or budget not run is listed, not trained
    res = _invoke(["study", "--data", "shapes", "--methods", "conv-l1:channels=8,conv-l1:channels=16,lama", "--budget", "3s,6s",
                   "--budget-clock", "cpu", "--masks", "box", "--report-only", "--out", str(out), *FAST])
    assert res.exit_code == 0, res.output
    assert not (out / "runs" / "lama").exists() and not (out / "runs" / "conv-l1_channels_8" / "6s").exists()
    doc = json.loads((out / "results.json").read_text())
    assert {r["label"].split("[")[0] for r in doc["rows"]} == {"telea", "conv-l1:channels=8@3s", "conv-l1:channels=16@3s"}
    state = {x["label"]: x["eval"] for x in doc["status"]}
    assert state["lama@6s"] == "not finished" and state["conv-l1:channels=8@3s"] == "finished"
    res = _invoke(["study", "--data", "shapes", "--methods", "lama", "--budget", "3s", "--budget-clock", "cpu", "--masks", "lama-thick",
                   "--report-only", "--out", str(out), *FAST])
    assert res.exit_code == 2 and "no finished part" in res.output
    # the same folder asked with the other clock: one line naming the setting that differs
    res = _invoke(["study", "--data", "shapes", "--methods", "conv-l1:channels=8", "--budget", "3s", "--masks", "box", "--report-only",
                   "--out", str(out), *FAST])
    assert res.exit_code == 2 and "holds a study with budget_clock='cpu' (asked: None)" in res.output


def test_sampling_variants_reuse_the_trained_model(tmp_path):
    from zoo.study import candidates
    from zoo.study_args import run_label, sample_variant, split_variant

    assert split_variant("dit-mca:attention=self/guidance=2") == ("dit-mca", {"attention": "self"})
    assert sample_variant("dit-mca:attention=self/guidance=2/jump_n_sample=1") == {"guidance": "2", "jump_n_sample": "1"}
    assert run_label("dit-mca:attention=self/guidance=2") == "dit-mca:attention=self"
    assert candidates("dit-mca/num_steps=7") == [{}]  # the variant fixes what would be tuned
    assert len(candidates("dit-mca/guidance=2")) == len(candidates("dit-mca")) > 1
    out = tmp_path / "out"
    res = _invoke(["study", "--data", "shapes", "--methods", "dit-mca/num_steps=3,dit-mca/num_steps=3/guidance=2", "--budget", "4s", "--masks", "box",
                   "--no-tune", "--out", str(out), *FAST])
    assert res.exit_code == 0, res.output
    assert [p.name for p in (out / "runs").iterdir()] == ["dit-mca"]  # one model, trained once
    rows = {r["method"]: r for r in json.loads((out / "results.json").read_text())["rows"]}
    base, guided = rows["dit-mca/num_steps=3"], rows["dit-mca/num_steps=3/guidance=2"]
    assert guided["nfe"] == 2 * base["nfe"]  # classifier-free guidance: two network calls per step
    assert guided["metrics"]["psnr"]["value"] != base["metrics"]["psnr"]["value"]
    res = _invoke(["study", "--data", "shapes", "--methods", "dit-mca/guidance=abc", "--budget", "4s", "--out", str(tmp_path / "x"), *FAST])
    assert res.exit_code == 2 and "--methods 'dit-mca/guidance=abc'" in res.output


def test_an_interrupted_multi_stage_run_resumes_from_its_stage_checkpoint(tmp_path, monkeypatch):
    """A two-stage method (maskgit) keeps its checkpoints in RUN/<stage>/checkpoints: a rerun
    resumes it instead of deleting the run as if no checkpoint had been written."""
    import zoo.runner
    from zoo.study import StudySettings, train_one

    run = tmp_path / "runs" / "maskgit" / "15m"
    (run / "tokenizer").mkdir(parents=True)
    (run / "tokenizer" / "stage.json").write_text(json.dumps({"stage": "tokenizer", "index": 0}))
    ckpt = run / "tokenizer" / "checkpoints" / "step_0000004"
    ckpt.mkdir(parents=True)
    (ckpt / "state.safetensors").write_bytes(b"")
    seen = {}

    def fake_train(name, data, **kw):
        seen.update(name=name, resume=kw["options"].resume)
        raise KeyboardInterrupt  # stop here: only the choice matters

    monkeypatch.setattr(zoo.runner, "train", fake_train)
    s = StudySettings(data="shapes", methods=["maskgit"], budgets=[900.0], masks=["lama-medium"], splits={"train": "shapes"})
    with pytest.raises(KeyboardInterrupt):
        train_one(s, "maskgit", 900.0, run, progress=False, say=lambda _: None)
    assert seen == {"name": "maskgit", "resume": str(run)} and ckpt.is_dir()
    shutil.rmtree(ckpt)  # no checkpoint anywhere: the run starts again from nothing
    with pytest.raises(KeyboardInterrupt):
        train_one(s, "maskgit", 900.0, run, progress=False, say=lambda _: None)
    assert seen["resume"] is None and not run.exists()


def test_a_failure_in_an_existing_study_folder_removes_nothing(tmp_path, monkeypatch):
    """Only a new study folder is cleaned up after a failure; in an existing one (which other
    processes may be filling) a failure touches no file, and nothing walks the folder first."""
    import zoo.study

    out = tmp_path / "s"
    res = _invoke(["study", "--data", "shapes", "--methods", "telea", "--budget", "5s", "--out", str(out), *FAST])
    assert res.exit_code == 0, res.output
    stray = out / "runs" / "other" / "5m" / "partial.txt"  # e.g. another process's unfinished run
    stray.parent.mkdir(parents=True)
    stray.write_text("x")
    import zoo.fsutil

    monkeypatch.setattr(zoo.study, "_run", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("boom")))
    monkeypatch.setattr(zoo.fsutil, "removed_on_failure", lambda *a, **k: pytest.fail("an existing study folder was walked"))
    with pytest.raises(RuntimeError):
        zoo.study.run_study(zoo.study.StudySettings(data="shapes", methods=["telea"], budgets=[5.0], masks=["lama-medium"],
                                                    resolution=32, eval_count=20, val_count=5, preset="tiny"), out)
    assert stray.is_file() and (out / "results.json").is_file()


def test_loss_curves_read_the_last_stage_of_a_run_that_logs_per_stage(tmp_path):
    from zoo.study_report import _last_log

    from zoo.train.state import STAGE_MARKER

    run = tmp_path / "runs" / "maskgit" / "20s"
    for stage in ("tokenizer", "transformer"):
        (run / stage).mkdir(parents=True)
        (run / stage / "log.jsonl").write_text('{"step": 1, "loss": 1.0}\n')
    assert _last_log(run) is None  # no stage markers: these are not known to be the run's stages
    # the engine's stage markers (RUN/<stage>/stage.json, with the stage index) give the order
    for name, index in (("transformer", 1), ("tokenizer", 0)):
        (run / name / STAGE_MARKER).write_text(json.dumps({"stage": name, "index": index, "run": ".."}))
    assert _last_log(run) == run / "transformer" / "log.jsonl"
    (run / "transformer" / "log.jsonl").unlink()  # stopped in stage 1: its curve
    assert _last_log(run) == run / "tokenizer" / "log.jsonl"
    (run / "log.jsonl").write_text('{"step": 1, "loss": 1.0}\n')  # a one-stage run's own log comes first
    assert _last_log(run) == run / "log.jsonl"


def test_every_tunable_candidate_is_a_valid_config_of_the_small_preset():
    """`zoo study` tunes on validation with each method's declared candidates at the `small`
    preset (the study's default); a candidate its own config rejects would silently drop out
    of the tuning, so each one must validate (as the string values `--set` gives)."""
    from zoo.config import resolve_config
    from zoo.plugins import get_manager
    from zoo.study import candidates

    manager = get_manager()
    checked = 0
    for name in sorted(manager.methods()):
        spec = manager.method(name)
        if "small" not in spec.presets:
            continue
        for cand in candidates(name):
            resolve_config(spec, "small", cand)  # raises ZooError naming the field
            checked += 1
    assert checked >= 15  # dip-ddpm (6), dit-mca (3), maskgit (3), repaint (...)
