"""``zoo sample --devices 2``: two gloo processes write the files one process writes (issue 19)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image


def _zoo(*args, cwd):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    res = subprocess.run([sys.executable, "-m", "zoo_cli.main", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    return res


def _same_report(one, two):
    """Two compare folders hold the same files; predictions, progress, scores and plots are
    byte-identical and results.json is equal but for the command line and the folder."""
    import json

    files = sorted(p.relative_to(one).as_posix() for p in one.rglob("*") if p.is_file())
    assert sorted(p.relative_to(two).as_posix() for p in two.rglob("*") if p.is_file()) == files
    for f in files:
        if f.endswith(".png") or f.endswith("progress.json") or f.endswith("done.json") or f.startswith("scores/"):
            assert (one / f).read_bytes() == (two / f).read_bytes(), f
    a, b = (json.loads((d / "results.json").read_text()) for d in (one, two))
    for d in (a, b):
        d.pop("command", None)
        d["eval_set"].pop("path", None)
    assert a == b


def test_sample_on_two_processes_is_byte_identical(tmp_path):
    from zoo import runner
    from zoo.data import render
    from zoo.train import TrainOptions

    for i in range(5):
        (tmp_path / "images").mkdir(exist_ok=True)
        (tmp_path / "masks").mkdir(exist_ok=True)
        Image.fromarray(render(i, 3, 32)).save(tmp_path / f"images/im{i}.png")
        m = np.zeros((32, 32), np.uint8)
        m[8:22, 4 + i : 26] = 255
        Image.fromarray(m).save(tmp_path / f"masks/im{i}.png")
    # a stochastic sampler (seeded noise per image): repaint's tiny prior, one training step
    ckpt = runner.train("repaint", "shapes", preset="tiny", steps=1, batch_size=2, out_dir=tmp_path / "run", options=TrainOptions(progress=False, device="cpu", tensorboard=False))
    common = ["sample", "repaint", "--checkpoint", str(ckpt), "--images", "images", "--masks", "masks", "--batch-size", "2", "--seed", "3"]
    one = _zoo(*common, "--out", "one", cwd=tmp_path)
    assert one.returncode == 0, one.stderr
    two = _zoo(*common, "--out", "two", "--devices", "2", cwd=tmp_path)
    assert two.returncode == 0, two.stderr
    assert "wrote 5 image(s)" in two.stdout
    names = sorted(p.name for p in (tmp_path / "one").iterdir())
    assert names == [f"im{i}.png" for i in range(5)]
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == names  # no work files left behind
    for n in names:
        assert (tmp_path / "one" / n).read_bytes() == (tmp_path / "two" / n).read_bytes(), n
    # a user error inside the processes is one line, and the output folder is gone
    bad = _zoo("sample", "repaint", "--checkpoint", str(ckpt), "--images", "images", "--masks", "masks", "--out", "three", "--devices", "2", "--set", "no_such=1", cwd=tmp_path)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1].startswith("Error:") and "no_such" in bad.stderr
    assert not (tmp_path / "three").exists()


def test_a_dead_process_stops_the_others():
    """--devices N: one process that dies would leave the others waiting in a collective; the
    parent stops them after a grace period."""
    import time

    from zoo.shard import _wait

    procs = [subprocess.Popen([sys.executable, "-c", "import sys; sys.exit(3)"]), subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])]
    t = time.monotonic()
    codes = _wait(procs, grace=0.5)
    assert codes[0] == 3 and codes[1] != 0 and time.monotonic() - t < 30


def test_batches_are_shared_out_by_index():
    from zoo.shard import mine

    owners = [[r for r in range(3) if mine(i, r, 3)] for i in range(7)]
    assert all(len(o) == 1 for o in owners) and [o[0] for o in owners] == [0, 1, 2, 0, 1, 2, 0]


@pytest.mark.multiprocess
def test_compare_on_two_processes_equals_one(tmp_path):
    import json

    from zoo import runner
    from zoo.train import TrainOptions

    ckpt = runner.train("dit-mca", "shapes", preset="tiny", steps=1, batch_size=2, out_dir=tmp_path / "run", options=TrainOptions(progress=False, device="cpu", tensorboard=False))
    common = ["compare", "--metric", "psnr,l1-hole", "--data", "shapes", "--masks", "lama-medium", "--count", "3", "--size", "32", "--batch-size", "1",
              "--checkpoint", str(ckpt), "--bootstrap", "0"]
    one = _zoo(*common, "--out", "one", cwd=tmp_path)
    assert one.returncode == 0, one.stderr
    two = _zoo(*common, "--out", "two", "--devices", "2", cwd=tmp_path)
    assert two.returncode == 0, two.stderr
    _same_report(tmp_path / "one", tmp_path / "two")


def _folder(tmp_path, n=6):
    from zoo.data import render

    (tmp_path / "images").mkdir(exist_ok=True)
    (tmp_path / "masks").mkdir(exist_ok=True)
    for i in range(n):
        Image.fromarray(render(i, 3, 32)).save(tmp_path / f"images/im{i}.png")
        m = np.zeros((32, 32), np.uint8)
        m[6:24, 3 + i : 27] = 255
        Image.fromarray(m).save(tmp_path / f"masks/im{i}.png")


def _pngs(folder):
    return {p.name: p for p in sorted(folder.glob("*.png"))}


def test_interrupted_sample_resumes_without_redoing_finished_images(tmp_path):
    """Ctrl-C during `zoo sample --devices 2`, then the same command on 1 process: the images
    finished before the stop are not written again, and the files equal an uninterrupted run."""
    import json
    import signal
    import time

    from zoo import runner
    from zoo.train import TrainOptions

    _folder(tmp_path)
    ckpt = runner.train("repaint", "shapes", preset="tiny", steps=1, batch_size=2, out_dir=tmp_path / "run", options=TrainOptions(progress=False, device="cpu", tensorboard=False))
    common = ["sample", "repaint", "--checkpoint", str(ckpt), "--images", "images", "--masks", "masks", "--batch-size", "1", "--seed", "5"]
    ref = _zoo(*common, "--out", "ref", cwd=tmp_path)
    assert ref.returncode == 0, ref.stderr
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "zoo_cli.main", *common, "--out", "out", "--devices", "2"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    progress = tmp_path / "out" / ".zoo-progress"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        done = sum(len(json.loads(p.read_text())["done"]) for p in progress.glob("rank*.json")) if progress.is_dir() else 0
        if done >= 2:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches the whole process group
    _, err = proc.communicate(timeout=120)
    last = err.strip().splitlines()[-1]
    assert proc.returncode == 130 and "Traceback" not in err and last.startswith("Interrupted: ") and last.endswith("run the same command again to resume."), err
    before = {n: p.stat().st_mtime_ns for n, p in _pngs(tmp_path / "out").items()}
    assert 2 <= len(before) < 6, before
    # not an output folder to refuse: the same command resumes it, here on one process
    again = _zoo(*common, "--out", "out", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert f"{len(before)} more were already there" in again.stdout and f"wrote {6 - len(before)} image(s)" in again.stdout
    after = _pngs(tmp_path / "out")
    assert sorted(after) == sorted(_pngs(tmp_path / "ref")) and not (tmp_path / "out" / ".zoo-progress").exists()
    for name, mtime in before.items():
        assert after[name].stat().st_mtime_ns == mtime, f"{name} was sampled again"
    for name, path in after.items():
        assert path.read_bytes() == (tmp_path / "ref" / name).read_bytes(), name
    # a complete folder is not resumed: it needs --overwrite, as any non-empty folder
    full = _zoo(*common, "--out", "out", cwd=tmp_path)
    assert full.returncode == 2 and "--overwrite" in full.stderr.strip().splitlines()[-1]


def test_unfinished_run_of_other_settings_is_named(tmp_path):
    import json

    from zoo import runner

    _folder(tmp_path, 3)
    args = dict(method="telea", checkpoint=None, images=tmp_path / "images", masks=tmp_path / "masks", progress=False)
    runner.sample_folder(**args, out_dir=tmp_path / "out", seed=1)
    # make it look unfinished: the progress a seed-1 run writes after its first batch
    from zoo.imageio import pair_images_and_masks

    pairs = pair_images_and_masks(tmp_path / "images", tmp_path / "masks")
    fp = runner.sample_fingerprint("telea", None, pairs, tmp_path / "images", tmp_path / "masks", 1, 1, None, 8, "hole-white")
    (tmp_path / "out" / runner.PROGRESS_DIR).mkdir()
    (tmp_path / "out" / runner.PROGRESS_DIR / "rank0.json").write_text(json.dumps({"fingerprint": fp, "done": {"0:0": {}}}))
    import pytest

    from zoo.errors import ZooError

    with pytest.raises(ZooError, match=r"unfinished zoo sample run with other settings \(--seed differ\); run that command again to resume it, or pass --overwrite"):
        runner.sample_folder(**args, out_dir=tmp_path / "out", seed=2)
    report = runner.sample_folder(**args, out_dir=tmp_path / "out", seed=2, overwrite=True)
    assert report.count == 3 and report.resumed == 0 and not (tmp_path / "out" / ".zoo-progress").exists()


@pytest.mark.multiprocess
def test_compare_under_accelerate_launch_equals_one_process(tmp_path):
    """`accelerate launch --num_processes 2 -m zoo_cli.main compare ...` (how several machines
    run it) writes the report one process writes; process 0 alone prints it."""
    import json

    common = ["compare", "--metric", "psnr,l1-hole", "--data", "shapes", "--masks", "box", "--count", "5", "--size", "32", "--batch-size", "2",
              "--methods", "telea", "--bootstrap", "0"]
    one = _zoo(*common, "--out", "one", cwd=tmp_path)
    assert one.returncode == 0, one.stderr
    env = dict(os.environ, OMP_NUM_THREADS="1")
    res = subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "2", "--num_machines", "1",
                          "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "zoo_cli.main", *common, "--out", "two"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert res.stdout.count("wrote two/results.json") == 1
    _same_report(tmp_path / "one", tmp_path / "two")


def test_sample_under_accelerate_launch_and_a_user_error_is_one_line(tmp_path):
    _folder(tmp_path, 5)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "2", "--num_machines", "1",
              "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "zoo_cli.main"]
    common = ["sample", "telea", "--images", "images", "--masks", "masks", "--batch-size", "2"]
    one = _zoo(*common, "--out", "one", cwd=tmp_path)
    res = subprocess.run([*launch, *common, "--out", "two"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert one.returncode == 0 and res.returncode == 0, res.stderr
    assert res.stdout.count("wrote 5 image(s) to two") == 1  # process 0 reports for both
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == sorted(_pngs(tmp_path / "one"))
    for name, path in _pngs(tmp_path / "one").items():
        assert path.read_bytes() == (tmp_path / "two" / name).read_bytes(), name
    # accelerate >= 1.16 repeats a failed process's stderr in a traceback of its own unless --quiet:
    # what the zoo prints is the concern here, so the launcher is asked to be quiet
    quiet = [launch[0], *launch[1:4], "--quiet", *launch[4:]]
    bad = subprocess.run([*quiet, *common, "--out", "two"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0 and bad.stderr.count("Error: --out two exists and is not empty") == 1, bad.stderr
    assert "Traceback" not in bad.stderr, bad.stderr


def test_compare_resumes_a_two_process_run_on_one_without_resampling(tmp_path):
    """The progress of an interrupted `zoo compare --devices 2` is merged before the next
    processes start, so a rerun with another N samples no finished batch again."""
    import json

    from zoo.compare import Entry, merge_progress, prepare_eval_set, sample_entry

    ev = prepare_eval_set(tmp_path / "rep", "shapes", "box", 5, 32, 0, progress=False)
    entry = Entry(label="telea", method="telea", checkpoint=None, overrides={})
    pred = tmp_path / "rep" / "predictions" / "telea"
    sample_entry(entry, ev, pred, 0, 2, progress=False, rank=1, world_size=2)  # only process 1 got through: batch 2 of 0, 2, 4
    assert sorted(p.name for p in pred.glob("progress*.json")) == ["progress.rank1.json"]
    first = {p.name: p.stat().st_mtime_ns for p in pred.glob("*.png")}
    assert len(first) == 2
    merge_progress(entry, ev, pred, 0, 2)
    assert [p.name for p in pred.glob("progress*.json")] == ["progress.json"]
    assert list(json.loads((pred / "progress.json").read_text())["batches"]) == ["2"]
    _, how = sample_entry(entry, ev, pred, 0, 2, progress=False)
    assert how == "resumed" and all((pred / n).stat().st_mtime_ns == t for n, t in first.items())
    assert len(list(pred.glob("*.png"))) == 5


def test_a_process_that_does_not_see_the_output_folder_is_one_line(tmp_path):
    """Two "machines" with separate filesystems: process 1 runs in another folder, so the
    relative --out that process 0 prepared is not there for it."""
    from zoo.shard import _free_port, _wait

    for machine in ("a", "b"):
        (tmp_path / machine).mkdir()
        _folder(tmp_path / machine, 2)
    env = dict(os.environ, OMP_NUM_THREADS="1", WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()))
    args = [sys.executable, "-m", "zoo_cli.main", "sample", "telea", "--images", "images", "--masks", "masks", "--out", "o"]
    procs = [subprocess.Popen(args, cwd=tmp_path / m, env={**env, "RANK": str(r), "LOCAL_RANK": "0"}, stderr=subprocess.PIPE, text=True)
             for r, m in enumerate("ab")]
    codes = _wait(procs, grace=60)
    errs = [p.stderr.read() for p in procs]
    assert codes == [2, 2], errs
    assert errs[0].strip().splitlines()[-1].startswith("Error: --out o: process(es) 1 of 2 do not see the folder process 0 prepared")
    assert "Error" not in errs[1] and "Traceback" not in errs[0] + errs[1]
    assert not (tmp_path / "a" / "o").exists() and not (tmp_path / "b" / "o").exists()  # nothing left behind


def test_a_crash_keeps_finished_images_and_a_crash_before_any_removes_the_folder(tmp_path, monkeypatch):
    import pytest

    import zoo.runner as runner
    import zoo.sampling as sampling

    _folder(tmp_path, 3)
    real, calls = sampling.inpaint, []

    def crash_at(n):
        def fake(*args, **kwargs):
            calls.append(1)
            if len(calls) == n:
                raise RuntimeError("out of memory (simulated)")
            return real(*args, **kwargs)
        return fake

    args = dict(method="telea", checkpoint=None, images=tmp_path / "images", masks=tmp_path / "masks", batch_size=1, progress=False)
    monkeypatch.setattr(sampling, "inpaint", crash_at(1))
    with pytest.raises(RuntimeError, match="simulated"):
        runner.sample_folder(**args, out_dir=tmp_path / "first")
    assert not (tmp_path / "first").exists()  # nothing finished: nothing left
    calls.clear()
    monkeypatch.setattr(sampling, "inpaint", crash_at(3))
    with pytest.raises(RuntimeError, match="simulated"):
        runner.sample_folder(**args, out_dir=tmp_path / "later")
    assert sorted(p.name for p in (tmp_path / "later").glob("*.png")) == ["im0.png", "im1.png"]  # finished before the crash: kept
    monkeypatch.setattr(sampling, "inpaint", real)
    report = runner.sample_folder(**args, out_dir=tmp_path / "later")
    assert (report.count, report.resumed) == (3, 2) and not (tmp_path / "later" / runner.PROGRESS_DIR).exists()
