"""The CLI under bad and unusual inputs (issue 12).

Every row is one command a user might type with something wrong in it: corrupt, truncated,
empty, wrong-size, wrong-mode and wrong-type files; bad flags and ``--set`` values; wrong
checkpoints; broken registries and environment variables; outputs pointing at inputs. For
each the test asserts: exit code 2, exactly one ``Error:`` line and it is the last line, no
traceback, no file or folder left behind that was not there before, and every input file
unchanged (hashes). A new command joins by adding rows to ``CASES``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

# -- the workspace every row runs in (built once; the rows must not change it) -----------------


def _png(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def _build(ws: Path) -> None:
    from zoo import runner
    from zoo.data import render
    from zoo.train import TrainOptions

    rng = np.random.default_rng(0)
    for i in range(3):  # a good folder of images and masks, 32x32
        _png(ws / "good/images" / f"im{i}.png", render(i, 3, 32))
        m = np.zeros((32, 32), np.uint8)
        m[8:20, 6 + i : 24] = 255
        _png(ws / "good/masks" / f"im{i}.png", m)
    (ws / "empty").mkdir()
    (ws / "notes.txt").write_text("not an image\n")
    # damaged inputs: each folder holds one bad file beside good ones
    for kind in ("truncated", "zero", "text"):
        d = ws / f"bad-{kind}"
        _png(d / "images/im0.png", render(0, 3, 32))
        _png(d / "masks/im0.png", np.full((32, 32), 255, np.uint8))
        _png(d / "masks/im1.png", np.full((32, 32), 255, np.uint8))
        good = (ws / "good/images/im1.png").read_bytes()
        data = {"truncated": good[: len(good) // 3], "zero": b"", "text": b"hello, I am not a PNG\n"}[kind]
        (d / "images/im1.png").write_bytes(data)
    d = ws / "bad-masks"  # a mask of the wrong size, a corrupt mask
    _png(d / "images/im0.png", render(0, 3, 32))
    _png(d / "images/im1.png", render(1, 3, 32))
    _png(d / "masks/im0.png", np.full((16, 16), 255, np.uint8))
    (d / "masks/im1.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    d = ws / "missing-mask"
    _png(d / "images/im0.png", render(0, 3, 32))
    _png(d / "images/im1.png", render(1, 3, 32))
    _png(d / "masks/im0.png", np.full((32, 32), 255, np.uint8))
    d = ws / "pred-small"  # predictions of another size than the ground truth
    for i in range(3):
        _png(d / f"im{i}.png", render(i, 3, 16))
    (ws / "corrupt-images").mkdir()
    (ws / "corrupt-images/a.png").write_bytes(b"junk")
    # checkpoints: a trained tiny conv-l1, a text file, a truncated one, a pickle
    ckpt = runner.train("conv-l1", "shapes", preset="tiny", steps=2, out_dir=ws / "run", options=TrainOptions(progress=False, device="cpu"))
    (ws / "conv.safetensors").write_bytes(ckpt.read_bytes())
    (ws / "fake.safetensors").write_text("not a checkpoint")
    (ws / "half.safetensors").write_bytes(ckpt.read_bytes()[:200])

    class Boom:  # unpickling this would run os.system: the importers must never do that
        def __reduce__(self):
            return (os.system, (f"touch {ws / 'PWNED'}",))

    (ws / "evil.pt").write_bytes(pickle.dumps({"state_dict": Boom()}))
    (ws / "evil.pkl").write_bytes(pickle.dumps({"G_ema": Boom()}))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("readme.txt", "an archive, not a checkpoint")
    (ws / "big-lama.zip").write_bytes(buf.getvalue())
    (ws / "junk.zip").write_bytes(b"PK\x03\x04 this is not a zip")
    # diffusers folders with broken JSON
    for name, index, unet in (("dfx-index", "{bad", "{}"), ("dfx-unet", "{}", "{bad"), ("dfx-list", "[1, 2]", "{}")):
        (ws / name / "unet").mkdir(parents=True)
        (ws / name / "model_index.json").write_text(index)
        (ws / name / "unet/config.json").write_text(unet)
    (ws / "dfx-nounet").mkdir()
    (ws / "dfx-nounet/model_index.json").write_text("{}")
    # registries
    (ws / "reg-yaml.yaml").write_text("methods: [\n")
    (ws / "reg-int.yaml").write_text("methods: 5\n")
    (ws / "reg-none.yaml").write_text("other: 1\n")
    (ws / "reg-key.yaml").write_text("methods:\n  telea:\n    plugin: baselines\n")
    (ws / "reg-family.yaml").write_text(
        "methods:\n  telea:\n    plugin: baselines\n    summary: s\n    paper: p\n    license: l\n    family: magic\n    presets: [default]\n"
    )
    (ws / "masks-rgb").mkdir()
    _png(ws / "masks-rgb/m0.png", rng.integers(0, 255, (32, 32, 3), dtype=np.uint8))
    for i in range(3):  # grey (non-binary) masks: a warning before the row's error
        _png(ws / "masks-grey" / f"im{i}.png", np.full((32, 32), 128, np.uint8))
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(ckpt), framework="pt") as fh:  # a checkpoint whose weights hold NaN
        meta, tensors = fh.metadata(), {k: fh.get_tensor(k) for k in fh.keys()}
    first = sorted(k for k, v in tensors.items() if v.is_floating_point())[0]
    tensors[first].view(-1)[0] = float("nan")
    save_file(tensors, str(ws / "nan.safetensors"), metadata=meta)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    from zoo.plugins import reset_manager

    ws = tmp_path_factory.mktemp("bad-inputs")
    reset_manager()
    _build(ws)
    reset_manager()
    return ws


def _snapshot(root: Path) -> dict[str, str]:
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        out[rel] = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "<dir>"
    return out


G = "good/images"
M = "good/masks"
SAMPLE = ["sample", "telea", "--images", G, "--masks", M]
SAMPLE_CONV = ["sample", "conv-l1", "--checkpoint", "conv.safetensors", "--images", G, "--masks", M]
TRAIN = ["train", "conv-l1", "--data", "shapes", "--preset", "tiny", "--steps", "2", "--out", "newrun"]
EVAL = ["data", "eval-set", "--data", "shapes", "--masks", "box", "--count", "2", "--size", "32", "--out", "newev"]
COMPARE = ["compare", "--metric", "psnr", "--data", "shapes", "--masks", "box", "--count", "2", "--size", "32", "--out", "newcmp"]
SCORE = ["score", "--pred", G, "--gt", G]

# (id, args, extra environment, text the one error line must contain)
CASES: list[tuple[str, list[str], dict[str, str], str]] = [
    # -- zoo train ------------------------------------------------------------------------
    ("train-unknown-method", ["train", "nope", "--data", "shapes"], {}, "unknown method 'nope'"),
    ("sample-devices-0", SAMPLE + ["--out", "newout", "--devices", "0"], {}, "--devices"),
    ("bench-set-not-benched", ["bench", "conv-l1", "--set", "lama.ratio_g=0.5"], {}, "not among the benched"),
    ("bench-set-bad-key", ["bench", "conv-l1", "--set", "conv-l1.bogus=1"], {}, "bogus"),
    ("bench-set-no-dot", ["bench", "conv-l1", "--set", "radius=2"], {}, "METHOD.KEY=VALUE"),
    ("bench-set-no-method", ["bench", "conv-l1", "--set", ".radius=2"], {}, "METHOD.KEY=VALUE"),
    ("bench-micro-batch-text", ["bench", "conv-l1", "--train", "--micro-batch", "lots"], {}, "--micro-batch 'lots'"),
    ("bench-unknown-method", ["bench", "conv-l1", "nope"], {}, "unknown method 'nope'"),
    ("bench-unknown-preset", ["bench", "conv-l1", "--preset", "huge"], {}, "no preset 'huge'"),
    ("bench-resolution-0", ["bench", "conv-l1", "--resolution", "0"], {}, "--resolution 0"),
    ("bench-batch-0", ["bench", "conv-l1", "--batch-size", "0"], {}, "--batch-size 0"),
    ("bench-repeats-0", ["bench", "conv-l1", "--repeats", "0"], {}, "--repeats"),
    ("bench-bad-device", ["bench", "conv-l1", "--device", "tpu"], {}, "unknown device 'tpu'"),
    ("bench-bad-precision", ["bench", "conv-l1", "--precision", "fp8"], {}, "fp8"),
    ("bench-out-is-folder", ["bench", "telea", "--no-flops", "--repeats", "1", "--out", "good"], {}, "--out good"),
    ("demo-bad-budget", ["demo", "--out", "newdemo", "--budget", "huge"], {}, "huge"),
    ("train-unknown-preset", ["train", "conv-l1", "--data", "shapes", "--preset", "huge"], {}, "valid choices: base, small, tiny"),
    ("train-set-unknown-key", TRAIN + ["--set", "bogus=1"], {}, "unknown config key for conv-l1"),
    ("train-set-no-equals", TRAIN + ["--set", "channels"], {}, "--set expects key=value"),
    ("train-set-wrong-type", TRAIN + ["--set", "channels=abc"], {}, "expected an integer"),
    ("train-set-channels-0", TRAIN + ["--set", "channels=0"], {}, "channels=0"),
    ("train-set-channels-neg", TRAIN + ["--set", "channels=-4"], {}, "channels=-4"),
    ("train-set-resolution-0", TRAIN + ["--set", "resolution=0"], {}, "resolution=0"),
    ("train-set-dilations-empty", TRAIN + ["--set", "dilations=[]"], {}, "dilations"),
    ("train-set-dilations-zero", TRAIN + ["--set", "dilations=[1,0]"], {}, "dilations"),
    ("train-set-lr-0", TRAIN + ["--set", "lr=0"], {}, "lr=0"),
    ("train-set-lr-text", TRAIN + ["--set", "lr=fast"], {}, "expected a number"),
    ("train-set-bool-for-int", TRAIN + ["--set", "channels=[1]"], {}, "channels"),
    ("train-set-lr-inf", TRAIN + ["--set", "lr=inf"], {}, "--set lr: expected a finite number"),
    ("train-set-lr-nan", TRAIN + ["--set", "lr=nan"], {}, "--set lr: expected a finite number"),
    ("train-set-channels-fraction", TRAIN + ["--set", "channels=2.5"], {}, "expected an integer"),
    ("train-set-resolution-huge", TRAIN + ["--set", "resolution=100000"], {}, "the first batch alone needs"),
    ("train-steps-huge", TRAIN[:-4] + ["--steps", "99999999999999999999999", "--out", "newrun"], {}, "--steps 99999999999999999999999: at most"),
    ("train-batch-huge", TRAIN + ["--batch-size", "10000000"], {}, "--batch-size 10000000: at most"),
    ("train-lama-ratio", ["train", "lama", "--data", "shapes", "--preset", "tiny", "--steps", "1", "--out", "newrun", "--set", "ratio_g=2"], {}, "ratio_g"),
    ("train-repaint-bad-width", ["train", "repaint", "--data", "shapes", "--preset", "tiny", "--steps", "1", "--out", "newrun", "--set", "channels=20"], {}, "multiples of 32"),
    ("train-repaint-tT", ["train", "repaint", "--data", "shapes", "--preset", "tiny", "--steps", "1", "--out", "newrun", "--set", "t_T=5000"], {}, "t_T"),
    ("train-steps-0", TRAIN[:-4] + ["--steps", "0", "--out", "newrun"], {}, "--steps"),
    ("train-batch-0", TRAIN + ["--batch-size", "0"], {}, "--batch-size"),
    ("train-grad-accum-0", TRAIN + ["--grad-accum", "0"], {}, "--grad-accum"),
    ("train-micro-text", TRAIN + ["--micro-batch", "lots"], {}, "--micro-batch"),
    ("train-micro-0", TRAIN + ["--micro-batch", "0"], {}, "--micro-batch"),
    ("train-precision", TRAIN + ["--precision", "fp8"], {}, "fp8"),
    ("train-strategy", TRAIN + ["--strategy", "zero3"], {}, "zero3"),
    ("train-save-every-neg", TRAIN + ["--save-every", "-1"], {}, "--save-every"),
    ("train-max-nonfinite-0", TRAIN + ["--max-nonfinite", "0"], {}, "--max-nonfinite"),
    ("train-data-missing", ["train", "conv-l1", "--data", "/no/such/dir", "--out", "newrun"], {}, "neither a folder nor a registered dataset"),
    ("train-data-file", ["train", "conv-l1", "--data", "notes.txt", "--out", "newrun"], {}, "notes.txt"),
    ("train-data-empty", ["train", "conv-l1", "--data", "empty", "--preset", "tiny", "--out", "newrun"], {}, "empty"),
    ("train-data-corrupt", ["train", "conv-l1", "--data", "corrupt-images", "--preset", "tiny", "--steps", "1", "--out", "newrun"], {}, "image"),
    ("train-no-data", ["train", "conv-l1", "--preset", "tiny", "--out", "newrun"], {}, "--data is required"),
    ("train-masks-unknown", TRAIN + ["--masks", "blobs"], {}, "unknown mask kind 'blobs'"),
    ("train-classical", ["train", "telea", "--data", "shapes"], {}, "nothing to train"),
    ("train-resume-missing", ["train", "conv-l1", "--resume", "/no/run"], {}, "/no/run"),
    ("train-resume-other-method", ["train", "lama", "--resume", "run"], {}, "trained 'conv-l1'"),
    ("train-resume-other-seed", ["train", "conv-l1", "--resume", "run", "--seed", "5"], {}, "seed"),
    ("train-resume-other-set", ["train", "conv-l1", "--resume", "run", "--set", "channels=64"], {}, "--set would change"),
    ("train-devices-0", TRAIN + ["--devices", "0"], {}, "--devices"),
    ("train-device-unknown", TRAIN + ["--device", "tpu"], {}, "unknown device 'tpu'"),
    ("train-device-cuda-index", TRAIN + ["--device", "cuda:7"], {}, "cuda:7"),
    ("train-zoo-device-env", TRAIN, {"ZOO_DEVICE": "npu"}, "unknown device 'npu'"),
    # the methods' own paths are checked before their first stage trains
    ("train-dit-init-missing", ["train", "dit-mca", "--data", "shapes", "--preset", "tiny", "--set", "init=/no/dit.pt", "--out", "newrun"], {}, "init=/no/dit.pt does not exist"),
    ("train-dit-vae-missing", ["train", "dit-mca", "--data", "shapes", "--preset", "tiny", "--set", "vae=/no/vae", "--out", "newrun"], {}, "vae=/no/vae"),
    ("train-maskgit-tokenizer-missing", ["train", "maskgit", "--data", "shapes", "--preset", "tiny", "--set", "tokenizer=/no/vq", "--out", "newrun"], {}, "/no/vq"),
    ("train-dip-prior-missing", ["train", "dip-ddpm", "--data", "shapes", "--preset", "tiny", "--set", "prior=/no/prior", "--out", "newrun"], {}, "/no/prior"),
    ("import-mat-junk-pickle", ["import", "mat", "notes.txt", "--out", "new.safetensors"], {}, "notes.txt"),
    ("train-init-missing", ["train", "conv-l1", "--init", "nope.safetensors", "--data", "shapes", "--out", "newrun"], {}, "--init nope.safetensors: checkpoint does not exist"),
    ("train-init-not-a-checkpoint", ["train", "conv-l1", "--init", "fake.safetensors", "--data", "shapes", "--out", "newrun"], {}, "fake.safetensors"),
    ("train-init-truncated", ["train", "conv-l1", "--init", "half.safetensors", "--data", "shapes", "--out", "newrun"], {}, "half.safetensors"),
    ("train-init-other-method", ["train", "lama", "--init", "conv.safetensors", "--data", "shapes", "--out", "newrun"], {}, "a checkpoint of method 'conv-l1', not 'lama'"),
    ("train-init-shape-change", ["train", "conv-l1", "--init", "conv.safetensors", "--data", "shapes", "--steps", "1", "--out", "newrun", "--set", "channels=64"], {}, "--set channels=64 changes the architecture"),
    ("train-init-preset-shape-change", ["train", "conv-l1", "--init", "conv.safetensors", "--data", "shapes", "--steps", "1", "--out", "newrun", "--preset", "base"], {}, "--preset base changes the architecture"),
    ("train-init-set-unknown", ["train", "conv-l1", "--init", "conv.safetensors", "--data", "shapes", "--out", "newrun", "--set", "bogus=1"], {}, "unknown config key for conv-l1"),
    ("train-init-and-resume", ["train", "conv-l1", "--init", "conv.safetensors", "--resume", "run"], {}, "--init starts a new run"),
    ("train-init-no-data", ["train", "conv-l1", "--init", "conv.safetensors", "--out", "newrun"], {}, "--data is required with --init"),
    # -- zoo sample -----------------------------------------------------------------------
    ("sample-unknown-method", ["sample", "nope", "--images", G, "--masks", M, "--out", "o"], {}, "unknown method 'nope'"),
    ("sample-needs-checkpoint", ["sample", "conv-l1", "--images", G, "--masks", M, "--out", "o"], {}, "needs --checkpoint"),
    ("sample-checkpoint-missing", ["sample", "conv-l1", "--checkpoint", "nope.safetensors", "--images", G, "--masks", M, "--out", "o"], {}, "does not exist"),
    ("sample-checkpoint-text", ["sample", "conv-l1", "--checkpoint", "fake.safetensors", "--images", G, "--masks", M, "--out", "o"], {}, "fake.safetensors"),
    ("sample-checkpoint-truncated", ["sample", "conv-l1", "--checkpoint", "half.safetensors", "--images", G, "--masks", M, "--out", "o"], {}, "half.safetensors"),
    ("sample-checkpoint-folder", ["sample", "conv-l1", "--checkpoint", "good", "--images", G, "--masks", M, "--out", "o"], {}, "good"),
    ("sample-checkpoint-other-method", ["sample", "lama", "--checkpoint", "conv.safetensors", "--images", G, "--masks", M, "--out", "o"], {}, "conv-l1"),
    ("sample-images-missing", ["sample", "telea", "--images", "/no/x", "--masks", M, "--out", "o"], {}, "folder does not exist"),
    ("sample-images-file", ["sample", "telea", "--images", "notes.txt", "--masks", M, "--out", "o"], {}, "a file, not a folder"),
    ("sample-masks-missing", ["sample", "telea", "--images", G, "--masks", "/no/y", "--out", "o"], {}, "folder does not exist"),
    ("sample-images-empty", ["sample", "telea", "--images", "empty", "--masks", M, "--out", "o"], {}, "empty"),
    ("sample-mask-missing-for-image", ["sample", "telea", "--images", "missing-mask/images", "--masks", "missing-mask/masks", "--out", "o"], {}, "im1"),
    ("sample-out-is-images", SAMPLE + ["--out", G], {}, "lies inside the input --images"),
    ("sample-out-is-masks", SAMPLE + ["--out", M], {}, "the input --masks"),
    ("sample-out-inside-images", SAMPLE + ["--out", f"{G}/filled"], {}, "the input --images"),
    ("sample-out-contains-inputs", SAMPLE + ["--out", "good"], {}, "the input --images"),
    ("sample-out-is-file", SAMPLE + ["--out", "notes.txt"], {}, "an existing file, not a folder"),
    ("sample-out-not-empty", SAMPLE + ["--out", "run"], {}, "exists and is not empty"),
    ("sample-truncated-image", ["sample", "telea", "--images", "bad-truncated/images", "--masks", "bad-truncated/masks", "--out", "o", "--batch-size", "1"], {}, "im1.png"),
    ("sample-zero-byte-image", ["sample", "telea", "--images", "bad-zero/images", "--masks", "bad-zero/masks", "--out", "o", "--batch-size", "1"], {}, "im1.png"),
    ("sample-text-as-png", ["sample", "telea", "--images", "bad-text/images", "--masks", "bad-text/masks", "--out", "o", "--batch-size", "1"], {}, "im1.png"),
    ("sample-mask-wrong-size", ["sample", "telea", "--images", "bad-masks/images", "--masks", "bad-masks/masks", "--out", "o"], {}, "16x16"),
    ("sample-num-samples-0", SAMPLE + ["--out", "o", "--num-samples", "0"], {}, "--num-samples"),
    ("sample-batch-size-0", SAMPLE + ["--out", "o", "--batch-size", "0"], {}, "--batch-size"),
    ("sample-seed-text", SAMPLE + ["--out", "o", "--seed", "lucky"], {}, "lucky"),
    ("sample-set-unknown", SAMPLE + ["--out", "o", "--set", "bogus=1"], {}, "unknown config key for telea"),
    ("sample-set-radius-0", SAMPLE + ["--out", "o", "--set", "radius=0"], {}, "radius=0"),
    ("sample-set-algorithm", SAMPLE + ["--out", "o", "--set", "algorithm=magic"], {}, "valid choices"),
    ("sample-set-shape-change", SAMPLE_CONV + ["--out", "o", "--set", "channels=64"], {}, "does not fit this config"),
    ("sample-mask-convention", SAMPLE + ["--out", "o", "--mask-convention", "hole-grey"], {}, "hole-grey"),
    ("sample-device-unknown", SAMPLE + ["--out", "o", "--device", "gpu9"], {}, "unknown device 'gpu9'"),
    ("sample-device-cuda", SAMPLE + ["--out", "o", "--device", "cuda:3"], {}, "cuda:3"),
    ("sample-unknown-option", SAMPLE + ["--out", "o", "--fast"], {}, "--fast"),
    ("sample-out-parent-is-file", SAMPLE + ["--out", "notes.txt/o"], {}, "cannot create the folder notes.txt/o: Not a directory"),
    ("sample-out-uncreatable", SAMPLE + ["--out", "/proc/zoo-bad-inputs/o"], {}, "cannot create the folder /proc/zoo-bad-inputs"),
    ("sample-out-name-too-long", SAMPLE + ["--out", "n" * 300], {}, "ENAMETOOLONG"),
    ("sample-checkpoint-nan", ["sample", "conv-l1", "--checkpoint", "nan.safetensors", "--images", G, "--masks", M, "--out", "o"], {}, "NaN/Inf value(s)"),
    ("sample-num-samples-huge", SAMPLE + ["--out", "o", "--num-samples", "1000000"], {}, "--num-samples 1000000: at most"),
    # -- zoo score ------------------------------------------------------------------------
    ("score-pred-missing", ["score", "--pred", "/no/p", "--gt", G, "--metric", "psnr"], {}, "/no/p"),
    ("score-gt-missing", ["score", "--pred", G, "--gt", "/no/g", "--metric", "psnr"], {}, "/no/g"),
    ("score-metric-unknown", SCORE + ["--metric", "fidd"], {}, "unknown metric 'fidd'"),
    ("score-metric-empty", SCORE + ["--metric", " , "], {}, "metric"),
    ("score-no-metric", SCORE, {}, "--metric is required"),
    ("score-hole-metric-no-masks", SCORE + ["--metric", "psnr-hole"], {}, "--masks"),
    ("score-size-mismatch", ["score", "--pred", "pred-small", "--gt", G, "--metric", "psnr"], {}, "sizes must be equal"),
    ("score-pred-empty", ["score", "--pred", "empty", "--gt", G, "--metric", "psnr"], {}, "empty"),
    ("score-masks-wrong-size", ["score", "--pred", "bad-masks/images", "--gt", "bad-masks/images", "--masks", "bad-masks/masks", "--metric", "psnr-hole"], {}, "mask"),
    ("score-method-needs-checkpoint", ["score", "conv-l1", "--data", "shapes", "--masks", "box", "--metric", "psnr", "--count", "2", "--size", "32"], {}, "checkpoint"),
    ("score-fid-weights-missing", SCORE + ["--metric", "fid", "--fid-weights", "/no/inception.pth"], {}, "/no/inception.pth"),
    # -- zoo compare ----------------------------------------------------------------------
    ("compare-metric-unknown", ["compare", "--metric", "nope", "--data", "shapes", "--masks", "box", "--methods", "telea", "--out", "newcmp"], {}, "unknown metric 'nope'"),
    ("compare-nothing", COMPARE, {}, "nothing to compare"),
    ("compare-needs-checkpoint", COMPARE + ["--methods", "conv-l1"], {}, "needs a checkpoint"),
    ("compare-masks-empty-folder", ["compare", "--metric", "psnr", "--data", "shapes", "--masks", "empty", "--methods", "telea", "--count", "2", "--size", "32", "--out", "newcmp"], {}, "0 mask files"),
    ("compare-masks-unknown-kind", ["compare", "--metric", "psnr", "--data", "shapes", "--masks", "blobs", "--methods", "telea", "--count", "2", "--size", "32", "--out", "newcmp"], {}, "unknown mask kind 'blobs'"),
    ("compare-set-unknown-key", COMPARE + ["--methods", "telea", "--set", "telea.bogus=1"], {}, "unknown config key for telea"),
    ("compare-set-bad-value", COMPARE + ["--methods", "telea", "--set", "telea.radius=0"], {}, "radius=0"),
    ("compare-set-no-dot", COMPARE + ["--methods", "telea", "--set", "radius=2"], {}, "METHOD.KEY=VALUE"),
    ("compare-set-other-method", COMPARE + ["--methods", "telea", "--set", "lama.steps=2"], {}, "not compared here"),
    ("compare-set-checkpoint-key", COMPARE + ["--checkpoint", "conv.safetensors", "--set", "conv-l1.bogus=1"], {}, "unknown config key for conv-l1"),
    ("compare-count-0", ["compare", "--metric", "psnr", "--data", "shapes", "--masks", "box", "--methods", "telea", "--count", "0", "--out", "newcmp"], {}, "--count"),
    ("compare-size-4", ["compare", "--metric", "psnr", "--data", "shapes", "--masks", "box", "--methods", "telea", "--size", "4", "--out", "newcmp"], {}, "--size"),
    ("compare-data-missing", ["compare", "--metric", "psnr", "--data", "/no/d", "--masks", "box", "--methods", "telea", "--count", "2", "--size", "32", "--out", "newcmp"], {}, "/no/d"),
    ("compare-checkpoint-missing", COMPARE + ["--checkpoint", "/no/c.safetensors"], {}, "does not exist"),
    ("compare-out-is-file", ["compare", "--metric", "psnr", "--data", "shapes", "--masks", "box", "--methods", "telea", "--count", "2", "--size", "32", "--out", "notes.txt"], {}, "an existing file"),
    # -- zoo data -------------------------------------------------------------------------
    ("evalset-size-0", EVAL[:-4] + ["--size", "0", "--out", "newev"], {}, "--size 0"),
    ("evalset-size-neg", EVAL[:-4] + ["--size", "-8", "--out", "newev"], {}, "--size -8"),
    ("evalset-count-0", ["data", "eval-set", "--data", "shapes", "--masks", "box", "--count", "0", "--out", "newev"], {}, "--count"),
    ("evalset-masks-unknown", ["data", "eval-set", "--data", "shapes", "--masks", "blobs", "--count", "2", "--size", "32", "--out", "newev"], {}, "unknown mask kind"),
    ("evalset-data-missing", ["data", "eval-set", "--data", "/no/d", "--masks", "box", "--count", "2", "--size", "32", "--out", "newev"], {}, "/no/d"),
    ("evalset-count-too-big", ["data", "eval-set", "--data", G, "--masks", "box", "--count", "9", "--size", "32", "--out", "newev"], {}, "larger than"),
    ("evalset-out-is-data", ["data", "eval-set", "--data", G, "--masks", "box", "--count", "2", "--size", "32", "--out", G], {}, "the input --data"),
    ("evalset-out-is-file", EVAL[:-1] + ["notes.txt"], {}, "an existing file"),
    ("evalset-grey-masks-wrong-size", ["data", "eval-set", "--data", G, "--masks", "masks-grey", "--count", "2", "--size", "16", "--out", "newev"], {}, "is 32x32"),
    ("evalset-count-huge", ["data", "eval-set", "--data", "shapes", "--masks", "box", "--count", "1000000000", "--size", "32", "--out", "newev"], {}, "--count 1000000000: at most"),
    ("evalset-mask-folder-wrong-size", ["data", "eval-set", "--data", G, "--masks", "bad-masks/masks", "--count", "1", "--size", "32", "--out", "newev"], {}, "16x16"),
    ("synth-unknown", ["data", "synth", "--name", "faces", "--count", "2", "--size", "32", "--out", "newsynth"], {}, "unknown dataset 'faces'"),
    ("synth-count-0", ["data", "synth", "--count", "0", "--size", "32", "--out", "newsynth"], {}, "--count"),
    ("synth-size-4", ["data", "synth", "--count", "2", "--size", "4", "--out", "newsynth"], {}, "--size"),
    ("prepare-layout", ["data", "prepare", G, "--layout", "imagenet", "--out", "newprep"], {}, "imagenet"),
    ("prepare-src-missing", ["data", "prepare", "/no/src", "--layout", "folder", "--out", "newprep"], {}, "/no/src"),
    # -- zoo masks ------------------------------------------------------------------------
    ("masks-kind-unknown", ["masks", "generate", "--kind", "blobs", "--count", "2", "--out", "newmasks"], {}, "unknown mask kind 'blobs'"),
    ("masks-count-0", ["masks", "generate", "--kind", "box", "--count", "0", "--out", "newmasks"], {}, "--count"),
    ("masks-size-4", ["masks", "generate", "--kind", "box", "--count", "2", "--size", "4", "--out", "newmasks"], {}, "--size"),
    ("masks-height-2", ["masks", "generate", "--kind", "box", "--count", "2", "--size", "32", "--height", "2", "--out", "newmasks"], {}, "--size"),
    ("masks-stats-missing", ["masks", "stats", "/no/m"], {}, "folder does not exist"),
    ("masks-stats-empty", ["masks", "stats", "empty"], {}, "empty"),
    ("masks-convert-missing", ["masks", "convert", "/no/m", "--out", "newconv"], {}, "folder does not exist"),
    ("masks-convert-empty", ["masks", "convert", "empty", "--out", "newconv"], {}, "no mask files"),
    ("masks-check-mismatch", ["masks", "check", "bad-masks/images", "bad-masks/masks"], {}, "problem(s)"),
    ("masks-check-missing", ["masks", "check", G, "/no/m"], {}, "folder does not exist"),
    # -- zoo import -----------------------------------------------------------------------
    ("import-unknown-method", ["import", "nope", "conv.safetensors", "--out", "new.safetensors"], {}, "unknown method 'nope'"),
    ("import-no-importer", ["import", "telea", "notes.txt", "--out", "new.safetensors"], {}, "no importer"),
    ("import-missing", ["import", "lama", "/no/big-lama", "--out", "new.safetensors"], {}, "does not exist"),
    ("import-lama-real-zip", ["import", "lama", "big-lama.zip", "--out", "new.safetensors"], {}, "unpack"),
    ("import-lama-junk-zip", ["import", "lama", "junk.zip", "--out", "new.safetensors"], {}, "junk.zip"),
    ("import-lama-text", ["import", "lama", "notes.txt", "--out", "new.safetensors"], {}, "notes.txt"),
    ("import-lama-folder", ["import", "lama", "good", "--out", "new.safetensors"], {}, "good"),
    ("import-lama-pickle-code", ["import", "lama", "evil.pt", "--out", "new.safetensors"], {}, "evil.pt"),
    ("import-repaint-pickle-code", ["import", "repaint", "evil.pt", "--out", "new.safetensors"], {}, "evil.pt"),
    ("import-repaint-bad-index-json", ["import", "repaint", "dfx-index", "--out", "new.safetensors"], {}, "not valid JSON"),
    ("import-repaint-bad-unet-json", ["import", "repaint", "dfx-unet", "--out", "new.safetensors"], {}, "not valid JSON"),
    ("import-repaint-json-list", ["import", "repaint", "dfx-list", "--out", "new.safetensors"], {}, "JSON object"),
    ("import-repaint-empty-folder", ["import", "repaint", "empty", "--out", "new.safetensors"], {}, "empty"),
    ("import-repaint-no-unet", ["import", "repaint", "dfx-nounet", "--out", "new.safetensors"], {}, "not a diffusers pipeline folder"),
    ("import-set-unknown-key", ["import", "repaint", "evil.pt", "--set", "bogus=1", "--out", "new.safetensors"], {}, "unknown config key for repaint 'bogus'"),
    ("import-set-no-equals", ["import", "repaint", "evil.pt", "--set", "heads", "--out", "new.safetensors"], {}, "--set expects key=value"),
    ("import-set-wrong-type", ["import", "lama", "evil.pt", "--set", "ngf=wide", "--out", "new.safetensors"], {}, "expected an integer"),
    ("import-set-lama-unknown-key", ["import", "lama", "big-lama.zip", "--set", "heads=4", "--out", "new.safetensors"], {}, "unknown config key for lama 'heads'"),
    # -- zoo fetch ------------------------------------------------------------------------
    ("fetch-unknown-name", ["fetch", "nope"], {}, "unknown checkpoint 'nope'; valid choices: lama/big-lama"),
    ("fetch-unknown-method-name", ["fetch", "repaint/big-lama"], {}, "unknown checkpoint 'repaint/big-lama'"),
    ("fetch-offline-hub", ["fetch", "big-lama"], {"ZOO_OFFLINE": "1", "ZOO_CACHE_DIR": "no-cache"}, "could not fetch https://huggingface.co/smartywu/big-lama/resolve/main/big-lama.zip"),
    ("fetch-out-exists", ["fetch", "big-lama", "--out", "conv.safetensors"], {}, "--out conv.safetensors exists"),
    ("fetch-registry-broken", ["fetch", "big-lama"], {"ZOO_REGISTRY": "reg-int.yaml"}, "methods must be a mapping"),
    # -- catalog, registry and environment ------------------------------------------------
    ("info-unknown", ["info", "nope"], {}, "unknown method 'nope'"),
    ("list-registry-yaml", ["list"], {"ZOO_REGISTRY": "reg-yaml.yaml"}, "not valid YAML"),
    ("list-registry-int", ["list"], {"ZOO_REGISTRY": "reg-int.yaml"}, "methods must be a mapping"),
    ("list-registry-no-methods", ["list"], {"ZOO_REGISTRY": "reg-none.yaml"}, "missing key methods"),
    ("list-registry-missing-key", ["list"], {"ZOO_REGISTRY": "reg-key.yaml"}, "missing key methods.telea.summary"),
    ("list-registry-family", ["list"], {"ZOO_REGISTRY": "reg-family.yaml"}, "family 'magic'"),
    ("list-registry-missing-file", ["list"], {"ZOO_REGISTRY": "nope.yaml"}, "does not exist"),
    ("sample-registry-broken", SAMPLE + ["--out", "o"], {"ZOO_REGISTRY": "reg-int.yaml"}, "methods must be a mapping"),
    ("plugins-allow-list-disables-method", ["sample", "telea", "--images", G, "--masks", M, "--out", "o"], {"ZOO_LOAD_PLUGINS": "lama"}, "unknown method 'telea'"),
    ("unknown-command", ["frobnicate"], {}, "frobnicate"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_clean_error(case, workspace, monkeypatch):
    name, args, env, expected = case
    from zoo_cli.main import app

    monkeypatch.chdir(workspace)
    before = _snapshot(workspace)
    result = CliRunner().invoke(app, args, env=env, catch_exceptions=True)
    output = result.output
    lines = [line for line in output.splitlines() if line.strip()]
    assert result.exit_code == 2, f"{name}: exit {result.exit_code}\n{output}\n{result.exception!r}"
    assert "Traceback" not in output, output
    errors = [line for line in lines if line.startswith("Error:")]
    assert len(errors) == 1, output
    assert lines[-1] == errors[0], f"{name}: the error is not the last line\n{output}"
    assert expected in errors[0], f"{name}: {errors[0]!r} does not say {expected!r}"
    for piece in re.split(r"[\r\n]", output):  # warnings only as `Warning: ...` lines (no raw warning, no source line)
        if "warning" in piece.lower():
            assert piece.strip().startswith("Warning: "), f"{name}: a raw warning {piece!r}\n{output}"
    assert not re.search(r"\.py:\d+: \w*Warning", output), output
    assert _snapshot(workspace) == before, f"{name}: files were left behind or changed"
    assert not (workspace / "PWNED").exists(), "an importer ran code from a pickle"


def test_there_are_at_least_100_rows():
    assert len(CASES) >= 100
    assert len({c[0] for c in CASES}) == len(CASES)
