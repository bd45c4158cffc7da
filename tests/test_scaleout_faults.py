"""A machine lost in the middle of a scale-out run (issue 28, item 7).

``zoo sample`` and ``zoo compare`` run as two "machines": two ``accelerate launch --num_machines 2
--machine_rank 0|1 --main_process_ip 127.0.0.1 --main_process_port P`` on this host, one process
each, gloo on the CPU, one shared ``--out``. Every image write is slowed down (``slow_zoo.py``,
written by the test) so that one machine can be killed (its launcher, agent and worker, SIGKILL)
after it finished a batch and before the run ends. Then:

- the surviving machine stops within :data:`STOP_WITHIN` seconds, with exactly one ``Error:``
  line that says a process of the run was lost and how to resume, and no traceback;
- every file under a final name is whole (byte-identical to a one-process run), no temporary file;
- both machines started again with the same command finish the run, and no batch recorded as
  finished before the kill is sampled again (its files keep their modification times).

Each test starts four launchers (about 100 s on a loaded 2-core machine), so they run only on
request: ``pytest -m scaleout tests/test_scaleout_faults.py``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
from click.testing import CliRunner
from PIL import Image

pytestmark = pytest.mark.scaleout

STOP_WITHIN = 60.0  # seconds from the kill to the survivor's exit (gloo sees the peer's sockets close)

SLOW_ZOO = '''"""`zoo` whose image writes each take $ZOO_TEST_WRITE_DELAY seconds longer."""
import os
import sys
import time

import zoo.imageio as imageio
import zoo.sampling as sampling

_real = imageio.save_image


def _slow(*args, **kwargs):
    time.sleep(float(os.environ.get("ZOO_TEST_WRITE_DELAY", "0.5")))
    return _real(*args, **kwargs)


imageio.save_image = sampling.save_image = _slow
from zoo_cli.main import main  # noqa: E402

sys.argv[0] = "zoo"
main()
'''


def _launch(tmp_path: Path, rank: int, port: int, args: list[str], tag: str) -> subprocess.Popen:
    """One "machine": accelerate launch with one process of a two-machine world."""
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_machines", "2", "--num_processes", "2",
           "--machine_rank", str(rank), "--main_process_ip", "127.0.0.1", "--main_process_port", str(port),
           "--mixed_precision", "no", "--dynamo_backend", "no", "--quiet", str(tmp_path / "slow_zoo.py"), *args]
    env = dict(os.environ, OMP_NUM_THREADS="1", ZOO_TEST_WRITE_DELAY="0.5", ZOO_DEVICE="cpu")
    out = open(tmp_path / f"{tag}.m{rank}.out", "w")
    err = open(tmp_path / f"{tag}.m{rank}.err", "w")
    return subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=out, stderr=err, start_new_session=True)


def _kill_machine(proc: subprocess.Popen) -> None:
    """SIGKILL the launcher and everything it started (torchrun's worker runs in a session of its own)."""
    try:
        family = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    for p in family:
        try:
            p.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    proc.wait(timeout=30)


def _stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            _kill_machine(p)


def _wait_for(predicate, timeout: float, what: str, procs: list[subprocess.Popen]) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        if any(p.poll() is not None for p in procs):
            break
        time.sleep(0.1)
    _stop(procs)
    raise AssertionError(f"never saw {what}; exit codes {[p.poll() for p in procs]}")


def _progress_batches(paths: list[Path], key: str) -> set[str]:
    done: set[str] = set()
    for path in paths:
        try:
            state = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        done.update(state.get(key, {}))
    return done


def _text(tmp_path: Path, tag: str, rank: int, stream: str) -> str:
    return (tmp_path / f"{tag}.m{rank}.{stream}").read_text()


def _run_pair(tmp_path: Path, args: list[str], tag: str, timeout: float = 300) -> list[int]:
    from zoo.shard import _free_port

    procs = [_launch(tmp_path, r, port, args, tag) for port in [_free_port()] for r in (0, 1)]
    end = time.monotonic() + timeout
    while any(p.poll() is None for p in procs) and time.monotonic() < end:
        time.sleep(0.2)
    _stop(procs)
    return [p.returncode for p in procs]


def _survivor_says_one_line(tmp_path: Path, tag: str, rank: int) -> str:
    err = _text(tmp_path, tag, rank, "err")
    errors = [line for line in err.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "Traceback" not in err, err
    assert "lost the other process" in errors[0] and "resume" in errors[0], errors[0]
    return errors[0]


def _images(folder: Path, n: int) -> None:
    rng = np.random.default_rng(0)
    (folder / "images").mkdir()
    (folder / "masks").mkdir()
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / f"images/im{i:02d}.png")
        m = np.zeros((32, 32), np.uint8)
        m[5:20, 3 + i % 9 : 25] = 255
        Image.fromarray(m).save(folder / f"masks/im{i:02d}.png")


def test_sample_survives_a_lost_machine_and_resumes(tmp_path, monkeypatch):
    from zoo.sampling import PROGRESS_DIR
    from zoo.shard import _free_port
    from zoo_cli.main import app

    (tmp_path / "slow_zoo.py").write_text(SLOW_ZOO)
    _images(tmp_path, 12)
    args = ["sample", "telea", "--images", "images", "--masks", "masks", "--batch-size", "2", "--out", "out"]
    monkeypatch.chdir(tmp_path)
    ref = CliRunner().invoke(app, [*args[:-1], "ref"], catch_exceptions=False)
    assert ref.exit_code == 0, ref.output
    port = _free_port()
    procs = [_launch(tmp_path, r, port, args, "first") for r in (0, 1)]
    progress = tmp_path / "out" / PROGRESS_DIR
    try:  # machine 1 finished a batch (6 batches, 3 each): kill it mid-run
        _wait_for(lambda: bool(_progress_batches([progress / "rank1.json"], "done")), 240, "a finished batch of machine 1", procs)
        _kill_machine(procs[1])
        killed = time.monotonic()
        while procs[0].poll() is None and time.monotonic() - killed < STOP_WITHIN:
            time.sleep(0.1)
        stopped = time.monotonic() - killed
    finally:
        _stop(procs)
    assert procs[0].returncode not in (0, None) and stopped < STOP_WITHIN, (procs[0].returncode, stopped, _text(tmp_path, "first", 0, "err"))
    print(f"machine 0 stopped {stopped:.1f} s after machine 1 was killed: {_survivor_says_one_line(tmp_path, 'first', 0)}")
    out = tmp_path / "out"
    assert not [p for p in out.rglob("*") if ".tmp" in p.name], list(out.rglob("*"))
    for p in out.glob("*.png"):  # whole files only, the bytes one process writes
        assert p.read_bytes() == (tmp_path / "ref" / p.name).read_bytes(), p.name
    finished = _progress_batches(sorted(progress.glob("*.json")), "done")
    assert finished, "no batch recorded as finished"
    names = sorted(p.name for p in (tmp_path / "ref").glob("*.png"))
    kept = {names[int(k.split(":")[1]) + j]: (out / names[int(k.split(":")[1]) + j]).stat().st_mtime_ns for k in finished for j in range(2)}
    codes = _run_pair(tmp_path, args, "again")
    assert codes == [0, 0], (codes, _text(tmp_path, "again", 0, "err")[-3000:], _text(tmp_path, "again", 1, "err")[-3000:])
    assert f"wrote {12 - len(kept)} image(s) to out; {len(kept)} more were already there" in _text(tmp_path, "again", 0, "out")
    assert {n: (out / n).stat().st_mtime_ns for n in kept} == kept  # finished batches were not sampled again
    assert sorted(p.name for p in out.iterdir()) == names  # no progress or work files left
    for n in names:
        assert (out / n).read_bytes() == (tmp_path / "ref" / n).read_bytes(), n


def test_compare_survives_a_lost_machine_and_resumes(tmp_path):
    from zoo.shard import _free_port

    (tmp_path / "slow_zoo.py").write_text(SLOW_ZOO)
    args = ["compare", "--metric", "psnr,l1-hole", "--data", "shapes", "--masks", "box", "--count", "12", "--size", "32", "--batch-size", "2",
            "--methods", "telea", "--bootstrap", "0", "--out", "rep"]
    pred = tmp_path / "rep" / "predictions" / "telea"
    port = _free_port()
    procs = [_launch(tmp_path, r, port, args, "first") for r in (0, 1)]
    try:  # machine 0 (which holds the rendezvous) finished a batch: kill it, machine 1 survives
        _wait_for(lambda: bool(_progress_batches([pred / "progress.rank0.json"], "batches")), 240, "a finished batch of machine 0", procs)
        _kill_machine(procs[0])
        killed = time.monotonic()
        while procs[1].poll() is None and time.monotonic() - killed < STOP_WITHIN:
            time.sleep(0.1)
        stopped = time.monotonic() - killed
    finally:
        _stop(procs)
    assert procs[1].returncode not in (0, None) and stopped < STOP_WITHIN, (procs[1].returncode, stopped, _text(tmp_path, "first", 1, "err"))
    print(f"machine 1 stopped {stopped:.1f} s after machine 0 was killed: {_survivor_says_one_line(tmp_path, 'first', 1)}")
    assert not (tmp_path / "rep" / "results.json").exists()
    assert not [p for p in (tmp_path / "rep").rglob("*") if ".tmp" in p.name]
    for p in pred.glob("*.png"):
        with Image.open(p) as im:
            im.load()  # whole
    finished = _progress_batches(sorted(pred.glob("progress*.json")), "batches")
    assert finished
    kept = {f"{int(k) + j:06d}.png": (pred / f"{int(k) + j:06d}.png").stat().st_mtime_ns for k in finished for j in range(2)}
    codes = _run_pair(tmp_path, args, "again")
    assert codes == [0, 0], (codes, _text(tmp_path, "again", 0, "err")[-3000:], _text(tmp_path, "again", 1, "err")[-3000:])
    assert {n: (pred / n).stat().st_mtime_ns for n in kept} == kept  # finished batches were not sampled again
    assert len(list(pred.glob("*.png"))) == 12 and (tmp_path / "rep" / "results.json").is_file()
