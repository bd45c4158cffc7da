"""Faults on the output side while ``zoo sample``, ``zoo compare`` and ``zoo train`` run (issue 28, item 6).

Each command writes onto a tmpfs the test mounts (``mount -t tmpfs``; the tests are skipped,
with the reason, where mounting is not allowed). At the Nth file the command writes, a wrapper
around its writer injects one fault before the write goes on:

- ``read-only``: the file system is remounted read-only (EROFS);
- ``full``: a filler file takes every free byte (ENOSPC);
- ``deleted``: the output folder is removed.

Then: the command ends with exactly one ``Error:`` line that names the output path and no
traceback (exit 2 when the path cannot be used, 1 when the environment failed: a full disk);
every file under a final name is whole (PNGs decode to the bytes an undisturbed run writes,
checkpoints load), no temporary file is left; and after the fault is cleared the same command
(``zoo train``: with ``--resume``) finishes, without redoing what was finished before the fault.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image


# -- a small disk, and the faults -----------------------------------------------------------------
@contextlib.contextmanager
def tmpfs(path: Path, size: str):
    """A tmpfs of ``size`` mounted at ``path`` for the block; the test is skipped, naming
    why, where mounting is not allowed (not root, no CAP_SYS_ADMIN, no mount binary)."""
    path.mkdir(parents=True, exist_ok=True)
    try:
        res = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)], capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        pytest.skip("no `mount` command on this machine: the output-fault tests need a tmpfs they mount")
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (`mount -t tmpfs` said: {res.stderr.strip() or res.returncode}); "
                    "the output-fault tests need root with CAP_SYS_ADMIN")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30)


def remount(path: Path, opts: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{opts}", str(path)], check=True, capture_output=True, timeout=30)


def fill(disk: Path) -> None:
    """Take every free byte of ``disk`` with ``disk/filler``."""
    with open(disk / "filler", "ab", buffering=0) as fh:  # unbuffered: nothing left to flush (and fail) on close
        for block in (1 << 16, 512, 1):
            try:
                while fh.write(b"\0" * block):
                    pass
            except OSError:
                pass


def inject(fault: str, disk: Path, out: Path) -> None:
    if fault == "read-only":
        remount(disk, "ro")
    elif fault == "full":
        fill(disk)
    elif fault == "deleted":
        shutil.rmtree(out)
    else:
        raise ValueError(fault)


def clear(fault: str, disk: Path) -> None:
    if fault == "read-only":
        remount(disk, "rw")
    elif fault == "full":
        (disk / "filler").unlink()


def at_call(monkeypatch, owner, name: str, n: int, action, when=lambda *a, **k: True) -> list[int]:
    """Wrap ``owner.name`` so that ``action()`` runs once, before its ``n``-th call (counting
    the calls ``when`` accepts); returns the call counter."""
    real = getattr(owner, name)
    calls = [0]

    def wrapper(*args, **kwargs):
        if when(*args, **kwargs):
            calls[0] += 1
            if calls[0] == n:
                action()
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, wrapper)
    return calls


# -- running the CLI in-process (tests/test_fuzz.py checks it against the real command) -----------
def zoo(*args, cwd: Path):
    from zoo_cli.main import app

    old = os.getcwd()
    os.chdir(cwd)
    try:
        res = CliRunner().invoke(app, [str(a) for a in args], prog_name="zoo", catch_exceptions=True)
    finally:
        os.chdir(old)
    return res


def assert_one_line(res, fault: str, path: str) -> None:
    """Exactly one ``Error:`` line, naming ``path``; no traceback; the exit code of its class."""
    assert not (res.exception and not isinstance(res.exception, SystemExit)), res.stderr + repr(res.exception)
    assert "Traceback" not in res.stderr, res.stderr
    errors = [line for line in res.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, res.stderr
    assert path in errors[0], errors[0]
    expected = {"read-only": 2, "deleted": 2, "full": 1}[fault]  # docs/guarantees.md: the path given vs the environment
    assert res.exit_code == expected, (res.exit_code, res.stderr)
    reason = {"read-only": "read-only", "full": "no space", "deleted": "removed"}[fault]
    assert reason in errors[0].lower(), errors[0]


def no_temporary_files(root: Path) -> None:
    left = [p for p in root.rglob("*") if p.name.startswith(".") and (".tmp" in p.name or p.name.startswith(".tmp"))]
    assert not left, left


def _images(folder: Path, n: int, side: int = 32) -> None:
    rng = np.random.default_rng(0)
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(folder / f"images/im{i}.png")
        m = np.zeros((side, side), np.uint8)
        m[6:20, 4 + i % 8 : 26] = 255
        Image.fromarray(m).save(folder / f"masks/im{i}.png")


FAULTS = ["read-only", "full", "deleted"]


# -- zoo sample -----------------------------------------------------------------------------------
@pytest.mark.parametrize("fault", FAULTS)
def test_sample_output_fault(tmp_path, monkeypatch, fault):
    import zoo.sampling as sampling

    _images(tmp_path, 6)
    common = ["sample", "telea", "--images", tmp_path / "images", "--masks", tmp_path / "masks", "--batch-size", "2"]
    ref = zoo(*common, "--out", tmp_path / "ref", cwd=tmp_path)
    assert ref.exit_code == 0, ref.stderr
    with tmpfs(tmp_path / "disk", "1m") as disk:
        out = disk / "out"
        at_call(monkeypatch, sampling, "save_image", 4, lambda: inject(fault, disk, out))  # batches 0-1 and 2-3 are done by then
        res = zoo(*common, "--out", out, cwd=tmp_path)
        assert_one_line(res, fault, str(out))
        monkeypatch.undo()
        no_temporary_files(disk)
        finished = sorted(out.glob("*.png")) if out.exists() else []
        for p in finished:  # whatever carries a final name is whole
            assert p.read_bytes() == (tmp_path / "ref" / p.name).read_bytes(), p
        if fault != "deleted":  # the finished batch is kept for the rerun (an image of the unfinished one may be there too, whole)
            assert {"im0.png", "im1.png"} <= {p.name for p in finished} <= {"im0.png", "im1.png", "im2.png"}, finished
        clear(fault, disk)
        before = {p.name: p.stat().st_mtime_ns for p in finished if p.name in ("im0.png", "im1.png")}
        again = zoo(*common, "--out", out, cwd=tmp_path)
        assert again.exit_code == 0, again.stderr
        if fault != "deleted":
            assert "2 more were already there" in again.stdout, again.stdout
        assert {name: (out / name).stat().st_mtime_ns for name in before} == before  # the finished batch is not sampled again
        assert sorted(p.name for p in out.iterdir()) == [f"im{i}.png" for i in range(6)]
        for i in range(6):
            assert (out / f"im{i}.png").read_bytes() == (tmp_path / "ref" / f"im{i}.png").read_bytes()


# -- zoo compare ----------------------------------------------------------------------------------
@pytest.mark.parametrize("fault", FAULTS)
def test_compare_output_fault(tmp_path, monkeypatch, fault):
    import zoo.imageio as imageio

    common = ["compare", "--metric", "psnr,l1-hole", "--data", "shapes", "--masks", "box", "--count", "6", "--size", "32", "--batch-size", "2",
              "--methods", "telea", "--bootstrap", "0"]
    with tmpfs(tmp_path / "disk", "4m") as disk:
        out = disk / "rep"
        pred = out / "predictions" / "telea"
        at_call(monkeypatch, imageio, "save_image", 3, lambda: inject(fault, disk, out), when=lambda path, img, **kw: "predictions" in str(path))
        res = zoo(*common, "--out", out, cwd=tmp_path)
        assert_one_line(res, fault, str(out))
        monkeypatch.undo()
        no_temporary_files(disk)
        finished = {p.name: p.stat().st_mtime_ns for p in pred.glob("*.png")} if pred.exists() else {}
        for name in finished:
            with Image.open(pred / name) as im:
                im.load()  # whole
        if fault != "deleted":  # the finished batch is kept (an image of the unfinished one may be there too, whole)
            assert {"000000.png", "000001.png"} <= set(finished) <= {"000000.png", "000001.png", "000002.png"}, finished
            finished = {k: v for k, v in finished.items() if k in ("000000.png", "000001.png")}
        assert not (out / "results.json").exists()
        clear(fault, disk)
        again = zoo(*common, "--out", out, "--json", cwd=tmp_path)
        assert again.exit_code == 0, again.stderr
        result = json.loads((out / "results.json").read_text())
        assert {p.name: p.stat().st_mtime_ns for p in pred.glob("*.png") if p.name in finished} == finished  # not sampled again
        assert len(list(pred.glob("*.png"))) == 6
        entry = result["entries"][0] if "entries" in result else result["methods"][0]
        assert entry.get("sampled", entry.get("predictions")) == ("sampled" if fault == "deleted" else "resumed"), entry


# -- zoo train ------------------------------------------------------------------------------------
@pytest.mark.parametrize("fault", FAULTS)
def test_train_output_fault(tmp_path, monkeypatch, fault):
    import zoo.train.state as state

    from safetensors import safe_open

    common = ["train", "conv-l1", "--data", "shapes", "--preset", "tiny", "--steps", "3", "--batch-size", "2", "--save-every", "1", "--keep-last", "0",
              "--no-tensorboard"]
    with tmpfs(tmp_path / "disk", "24m") as disk:
        run = disk / "run"
        at_call(monkeypatch, state, "write_checkpoint", 2, lambda: inject(fault, disk, run))  # step 1's checkpoint is written first
        res = zoo(*common, "--out", run, cwd=tmp_path)
        assert_one_line(res, fault, str(run))
        monkeypatch.undo()
        no_temporary_files(disk)
        assert not (run / "model.safetensors").exists()
        ckpts = sorted((run / "checkpoints").glob("step_*")) if run.exists() else []
        assert [c.name for c in ckpts] == ([] if fault == "deleted" else ["step_0000001"]), ckpts
        for c in ckpts:  # whole: every tensor reads
            for f in c.glob("*.safetensors"):
                with safe_open(str(f), framework="pt") as fh:
                    for key in fh.keys():
                        fh.get_tensor(key)
        kept = {c.name: c.stat().st_mtime_ns for c in ckpts}
        clear(fault, disk)
        again = zoo(*(common if fault == "deleted" else ["train", "conv-l1", "--resume", run, "--no-tensorboard"]), *(["--out", run] if fault == "deleted" else []),
                    cwd=tmp_path)
        assert again.exit_code == 0, again.stderr
        assert (run / "model.safetensors").is_file()
        info = json.loads((run / "run.json").read_text())
        assert len(info["commands"]) == (1 if fault == "deleted" else 2)  # the rerun continued the run (--resume) or started afresh
        assert {name: (run / "checkpoints" / name).stat().st_mtime_ns for name in kept} == kept  # step 1 is continued, not redone
        assert sorted(c.name for c in (run / "checkpoints").glob("step_*"))[-1] == "step_0000003"
