"""``zoo sample --devices 2``: two gloo processes write the files one process writes (issue 19)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
from PIL import Image


def _zoo(*args, cwd):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    res = subprocess.run([sys.executable, "-m", "zoo_cli.main", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    return res


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


def test_batches_are_shared_out_by_index():
    from zoo.shard import mine

    owners = [[r for r in range(3) if mine(i, r, 3)] for i in range(7)]
    assert all(len(o) == 1 for o in owners) and [o[0] for o in owners] == [0, 1, 2, 0, 1, 2, 0]


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
    files = sorted(p.relative_to(tmp_path / "one").as_posix() for p in (tmp_path / "one").rglob("*") if p.is_file())
    assert sorted(p.relative_to(tmp_path / "two").as_posix() for p in (tmp_path / "two").rglob("*") if p.is_file()) == files
    for f in files:
        if f.endswith(".png") or f.endswith("progress.json") or f.endswith("done.json") or f.startswith("scores/"):
            assert (tmp_path / "one" / f).read_bytes() == (tmp_path / "two" / f).read_bytes(), f
    a, b = (json.loads((tmp_path / d / "results.json").read_text()) for d in ("one", "two"))
    for d in (a, b):
        d.pop("command", None)
        d["eval_set"].pop("path", None)
    assert a == b
