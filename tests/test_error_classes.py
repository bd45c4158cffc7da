"""Failures by class, not by case (issue 28, items 1-4): every operating-system error is one
line naming the path, the operation and the reason (exit 2 for a path the user gave, 1 for the
environment); memory exhaustion is one line saying what to lower; a bug keeps its traceback
after a line that says so; ``--set`` reads numbers as people write them; sizes have upper
limits checked before any work; non-finite weights, predictions and metric values are caught
at the boundaries; warnings are ``Warning: ...`` lines everywhere."""

from __future__ import annotations

import dataclasses
import errno
import math
import os
import re
import subprocess
import sys
import typing
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from zoo import MethodSpec, MetricSpec, SampleOutput, hookimpl
from zoo.plugins import get_manager


def _zoo(*args, env: dict[str, str] | None = None):
    from zoo_cli.main import app

    return CliRunner().invoke(app, [str(a) for a in args], env=env, catch_exceptions=True)


def _one_line(result, code: int, *expected: str) -> str:
    """Exit ``code``, exactly one ``Error:`` line, the last one, containing ``expected``; no traceback."""
    lines = [line for line in result.output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("Error:")]
    assert result.exit_code == code, f"exit {result.exit_code}\n{result.output}\n{result.exception!r}"
    assert "Traceback" not in result.output, result.output
    assert len(errors) == 1 and lines[-1] == errors[0], result.output
    for text in expected:
        assert text in errors[0], f"{errors[0]!r} does not say {text!r}"
    return errors[0]


@pytest.fixture
def pairs(tmp_path) -> tuple[Path, Path]:
    """Two 32x32 images and box masks."""
    from zoo.data import render

    images, masks = tmp_path / "in/images", tmp_path / "in/masks"
    images.mkdir(parents=True)
    masks.mkdir(parents=True)
    for i in range(2):
        Image.fromarray(render(i, 3, 32)).save(images / f"im{i}.png")
        m = np.zeros((32, 32), np.uint8)
        m[8:20, 8:24] = 255
        Image.fromarray(m).save(masks / f"im{i}.png")
    return images, masks


def _sample(pairs, out, *extra):
    return _zoo("sample", "telea", "--images", pairs[0], "--masks", pairs[1], "--out", out, *extra)


# -- 1. operating-system errors -------------------------------------------------------------------
def test_out_under_a_read_only_folder_is_one_line_exit_2(pairs, tmp_path, monkeypatch):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    if os.geteuid() == 0:  # root ignores the mode bits: make mkdir answer as the kernel does for a user
        real = os.mkdir

        def mkdir(path, *args, **kwargs):
            if Path(path).parent == ro:
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
            return real(path, *args, **kwargs)

        monkeypatch.setattr(os, "mkdir", mkdir)
    try:
        line = _one_line(_sample(pairs, ro / "out"), 2, "cannot create the folder", str(ro / "out"), "Permission denied", "EACCES")
    finally:
        ro.chmod(0o700)
    assert not (ro / "out").exists() and "choose" in line


def test_out_whose_parent_is_a_file_is_one_line_exit_2(pairs, tmp_path):
    (tmp_path / "afile").write_text("x")
    _one_line(_sample(pairs, tmp_path / "afile/out"), 2, "cannot create the folder", "afile/out", "ENOTDIR")


def test_out_that_cannot_be_created_is_one_line_exit_2(pairs):
    _one_line(_sample(pairs, "/proc/zoo-no-such/out"), 2, "cannot create the folder /proc/zoo-no-such", "ENOENT")


def test_a_name_too_long_is_one_line_exit_2(pairs, tmp_path):
    out = tmp_path / ("x" * 300)
    _one_line(_sample(pairs, out), 2, "ENAMETOOLONG", "x" * 300)
    assert not any(p.name.startswith("xxx") for p in tmp_path.iterdir())


def test_a_full_disk_is_one_line_exit_1_and_leaves_nothing(pairs, tmp_path, monkeypatch):
    """ENOSPC raised where the atomic write syncs the file (as a full disk does on close/fsync):
    no file name in the error, so the zoo names the file it was writing."""
    import zoo.fsutil

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(zoo.fsutil.os, "fsync", full)
    out = tmp_path / "out"
    line = _one_line(_sample(pairs, out), 1, "cannot write", str(out / "im0.png"), "No space left on device", "ENOSPC")
    assert "free some space" in line
    assert not out.exists(), "the folder the command created is left behind"


def _mount_tmpfs(path: Path, options: str) -> None:
    path.mkdir()
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"cannot mount a tmpfs here ({exc})")
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")


@pytest.fixture
def tiny_disk(tmp_path):
    disk = tmp_path / "disk"
    _mount_tmpfs(disk, "size=48k")
    yield disk
    subprocess.run(["umount", str(disk)], capture_output=True)


def test_a_real_full_disk_during_training_is_one_line_exit_1(tiny_disk):
    """A 48 KiB tmpfs: the checkpoint does not fit; safetensors reports it as its own error."""
    result = _zoo("train", "conv-l1", "--data", "shapes", "--preset", "tiny", "--steps", "1", "--out", tiny_disk / "run")
    line = _one_line(result, 1, "No space left on device", "ENOSPC", str(tiny_disk / "run"))
    assert "free some space" in line
    assert list(tiny_disk.iterdir()) == [], "a failed run left files on the disk"


def test_a_read_only_file_system_is_one_line_exit_2(pairs, tmp_path):
    ro = tmp_path / "rofs"
    _mount_tmpfs(ro, "ro,size=16k")
    try:
        _one_line(_sample(pairs, ro / "out"), 2, "EROFS", str(ro / "out"))
    finally:
        subprocess.run(["umount", str(ro)], capture_output=True)


def test_classification_of_errnos():
    from zoo.errors import as_os_error, os_error_line

    for code, expected in ((errno.EACCES, 2), (errno.ENOTDIR, 2), (errno.ENOENT, 2), (errno.ENAMETOOLONG, 2), (errno.EROFS, 2),
                           (errno.ENOSPC, 1), (errno.EIO, 1), (errno.EMFILE, 1), (errno.EDQUOT, 1)):
        line, exit_code = os_error_line(OSError(code, os.strerror(code), "/some/path"))
        assert exit_code == expected, (errno.errorcode[code], line)
        assert "/some/path" in line and errno.errorcode[code] in line and "\n" not in line
    wrapped = as_os_error(RuntimeError("Error while serializing: I/O error: No space left on device (os error 28)"))
    assert wrapped is not None and wrapped.errno == errno.ENOSPC
    assert as_os_error(RuntimeError("something else")) is None


# -- 1. memory exhaustion and bugs ----------------------------------------------------------------
def test_numpy_out_of_memory_is_one_line_naming_the_allocation_and_what_to_lower(monkeypatch):
    import zoo.runner
    import zoo.sampling

    def huge(*args, **kwargs):
        return np.ones((100000, 100000), np.float64)  # 74.5 GiB: numpy refuses at once

    monkeypatch.setattr(zoo.runner, "open_data", huge)
    try:
        huge()
    except MemoryError:
        pass
    else:  # pragma: no cover - a machine that has 75 GiB free
        pytest.skip("this machine could allocate 74.5 GiB")
    result = _zoo("train", "conv-l1", "--data", "shapes", "--preset", "tiny", "--steps", "1", "--out", "/tmp/zoo-never-made")
    line = _one_line(result, 1, "out of memory allocating 74.5 GiB", "(100000, 100000)", "--batch-size", "--micro-batch auto", "--set resolution=")
    assert "--device cpu" not in line  # not a GPU error
    assert not Path("/tmp/zoo-never-made").exists()


def test_cuda_out_of_memory_while_sampling_says_device_cpu(pairs, tmp_path, monkeypatch):
    import zoo.runner
    import zoo.sampling

    def oom(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 7.7 GiB")

    monkeypatch.setattr(zoo.sampling, "inpaint", oom)
    out = tmp_path / "out"
    _one_line(_sample(pairs, out), 1, "out of memory allocating 2.00 GiB", "--batch-size", "--device cpu")
    assert not out.exists()


def test_a_bug_keeps_its_traceback_after_a_line_that_says_so(pairs, tmp_path, monkeypatch):
    import zoo.runner
    import zoo.sampling

    def broken(*args, **kwargs):
        return {}["no such key"]

    monkeypatch.setattr(zoo.sampling, "inpaint", broken)
    result = _sample(pairs, tmp_path / "out")
    assert result.exit_code == 1
    err = result.stderr
    first = [line for line in err.splitlines() if line.startswith("Error:")]
    assert len(first) == 1 and "a bug in inpaint-zoo: KeyError" in first[0] and "report it" in first[0], err
    assert "Traceback" in err and err.index(first[0]) < err.index("Traceback")
    assert not (tmp_path / "out").exists()


# -- 2. --set numbers -----------------------------------------------------------------------------
def _numeric_fields():
    from zoo.config import field_types

    manager = get_manager()
    for name, (spec, _plugin) in sorted(manager.names("methods").items()):
        for field_name, tp in field_types(spec.config).items():
            base = tp
            if typing.get_origin(tp) in (typing.Union, getattr(__import__("types"), "UnionType", typing.Union)):
                args = [a for a in typing.get_args(tp) if a is not type(None)]
                base = args[0] if len(args) == 1 else tp
            if base in (int, float):
                yield name, spec, field_name, base


def test_every_numeric_field_of_every_method_reads_numbers_as_written():
    from zoo.config import apply_overrides, resolve_config
    from zoo.errors import ZooError

    fields = list(_numeric_fields())
    assert len({m for m, *_ in fields}) >= 8 and len(fields) >= 50, fields  # every built-in method has numeric fields
    for method, spec, key, tp in fields:
        config, _ = resolve_config(spec)
        default = getattr(config, key)
        value = default if default is not None else 3
        if tp is float:
            written = [f"{value:e}", f"{value:E}", repr(float(value))]
            if 0 < abs(value) < 1:
                written.append(f"{value:.17g}".replace("0.", ".", 1))  # .5
        else:
            written = [str(value), f"{value}e0", f"{value}E0", f"{float(value):e}" if abs(value) < 2**53 else str(value)]
        for text in written:
            got = getattr(apply_overrides(config, {key: text}, method), key)
            assert type(got) is tp and math.isclose(got, value, rel_tol=1e-12), (method, key, text, got)
        for bad in ("inf", "-inf", "nan"):
            with pytest.raises(ZooError, match=f"--set {key}: expected a finite number"):
                apply_overrides(config, {key: bad}, method)
        if tp is int:
            with pytest.raises(ZooError, match="expected an integer"):
                apply_overrides(config, {key: "2.5"}, method)


def test_the_docs_command_with_1e_minus_4_is_accepted():
    from zoo.config import resolve_config

    spec = get_manager().method("lama")
    config, _ = resolve_config(spec, "tiny", {"lr_g": "1e-4", "lr_d": ".5E-4"})
    assert config.lr_g == 1e-4 and config.lr_d == 0.5e-4


# -- 2. sizes -------------------------------------------------------------------------------------
@pytest.mark.parametrize("args,expected", [
    (["train", "conv-l1", "--data", "shapes", "--steps", "99999999999999999999999"], "--steps 99999999999999999999999: at most"),
    (["train", "conv-l1", "--data", "shapes", "--batch-size", "1000000"], "--batch-size 1000000: at most 65536"),
    (["train", "conv-l1", "--data", "shapes", "--set", "steps=1e12"], "steps=1000000000000"),
    (["masks", "generate", "--kind", "box", "--count", "1000000000", "--out", "m"], "--count 1000000000: at most"),
    (["data", "eval-set", "--data", "shapes", "--masks", "box", "--size", "100000", "--out", "e"], "--size 100000: at most 16384"),
    (["sample", "telea", "--images", ".", "--masks", ".", "--out", "o", "--num-samples", "99999"], "--num-samples 99999: at most"),
])
def test_absurd_sizes_are_refused_before_any_work(args, expected, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _one_line(_zoo(*args), 2, expected)
    assert list(tmp_path.iterdir()) == []


def test_a_training_resolution_beyond_memory_is_refused_with_the_estimate(tmp_path, monkeypatch):
    import zoo.train.memory as memory

    monkeypatch.chdir(tmp_path)
    line = _one_line(_zoo("train", "conv-l1", "--data", "shapes", "--set", "resolution=100000"), 2, "resolution=100000", "GiB", "first batch")
    assert "16384" in line
    monkeypatch.setattr(memory, "memory_of", lambda device: 2**30)  # a 1 GiB machine
    line = _one_line(_zoo("train", "conv-l1", "--data", "shapes", "--preset", "tiny", "--set", "resolution=4096", "--batch-size", "8"), 2,
                     "2.0 GiB", "1.0 GiB of memory", "--batch-size")
    assert list(tmp_path.iterdir()) == []


# -- 3. non-finite values -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def conv_checkpoint(tmp_path_factory) -> Path:
    from zoo import runner
    from zoo.plugins import reset_manager
    from zoo.train import TrainOptions

    reset_manager()
    root = tmp_path_factory.mktemp("conv")
    path = runner.train("conv-l1", "shapes", preset="tiny", steps=1, out_dir=root / "run", options=TrainOptions(progress=False, device="cpu"))
    reset_manager()
    return path


def _edited(src: Path, dst: Path, edit) -> Path:
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(src), framework="pt") as fh:
        meta = fh.metadata()
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    edit(tensors)
    save_file(tensors, str(dst), metadata=meta)
    return dst


def test_a_checkpoint_with_nan_weights_is_refused_naming_the_first_tensor(conv_checkpoint, pairs, tmp_path):
    keys: list[str] = []

    def poison(tensors):
        keys.extend(k for k, v in tensors.items() if v.is_floating_point())
        tensors[keys[1]].view(-1)[:3] = float("nan")
        tensors[keys[-1]].view(-1)[0] = float("inf")

    bad = _edited(conv_checkpoint, tmp_path / "nan.safetensors", poison)
    out = tmp_path / "out"
    line = _one_line(_zoo("sample", "conv-l1", "--checkpoint", bad, "--images", pairs[0], "--masks", pairs[1], "--out", out), 2,
                     f"tensor {keys[1]!r} holds 3 NaN/Inf", "log.jsonl", "--resume")
    assert keys[-1] not in line and not out.exists()


class NanSampler:
    """A method whose sampler returns NaN for the second image of each batch."""

    @hookimpl
    def zoo_register_methods(self):
        @dataclasses.dataclass
        class Config:
            resolution: int = 32

        return [MethodSpec("nan-fill", "a method that returns NaN", "classical", Config, {"tiny": {}}, needs_training=False)]

    @hookimpl
    def zoo_build_model(self, method, config):
        return torch.nn.Identity()

    @hookimpl
    def zoo_sample(self, method, model, config, images, masks, generator):
        out = images.clone()
        out[1:2] = float("nan")
        return SampleOutput(out, {})


def test_a_sampler_output_with_nan_is_an_error_naming_the_method_and_the_count(pairs, tmp_path):
    get_manager().register(NanSampler(), name="nanplugin")
    out = tmp_path / "out"
    _one_line(_zoo("sample", "nan-fill", "--images", pairs[0], "--masks", pairs[1], "--out", out), 2,
              "method 'nan-fill'", "NaN or Inf values for 1 of 2 image(s)")
    assert not out.exists()


class NanMetric:
    @hookimpl
    def zoo_register_metrics(self):
        def fn(pred, gt, mask):
            values = (pred - gt).abs().flatten(1).mean(1)
            values[0] = float("nan")
            return values

        return [MetricSpec("nanmetric", "NaN for the first image", False, fn)]


def test_a_metric_nan_is_a_warning_with_the_count_and_marked_in_the_report(pairs):
    get_manager().register(NanMetric(), name="nanmetric-plugin")
    result = _zoo("score", "--pred", pairs[0], "--gt", pairs[0], "--masks", pairs[1], "--metric", "nanmetric,psnr", "--json")
    assert result.exit_code == 0, result.output
    warn = [line for line in result.stderr.splitlines() if line.startswith("Warning:") and "nanmetric" in line]
    assert warn and "1 of 2 images" in warn[0], result.stderr
    import json

    doc = json.loads(result.stdout)
    entry = doc["metrics"]["nanmetric"]
    assert entry["non_finite"] == 1 and entry["n"] == 1
    assert sum(b.get("non_finite", 0) for b in entry["bins"].values()) == 1
    assert "non_finite" not in doc["metrics"]["psnr"]


# -- 4. warnings ----------------------------------------------------------------------------------
def _nonbinary(pairs):
    for p in pairs[1].iterdir():
        m = np.zeros((32, 32), np.uint8)
        m[8:20, 8:24] = 128
        m[10:12, 10:12] = 255
        Image.fromarray(m).save(p)


def _only_warning_lines(stderr: str) -> None:
    """Every piece of stderr (lines, and the parts a progress bar's carriage returns separate)
    that mentions a warning is a ``Warning: ...`` line; no raw warning, no source line."""
    for piece in re.split(r"[\r\n]", stderr):
        piece = piece.strip()
        if "warning" in piece.lower():
            assert piece.startswith("Warning: "), f"a raw warning: {piece!r}\n{stderr}"
    assert not re.search(r"\.py:\d+: \w*Warning", stderr), stderr
    assert not re.search(r"^\s+(return|warnings\.warn)", stderr, re.M), f"a source line\n{stderr}"


def test_warnings_of_a_launched_process_are_warning_lines():
    """The processes `--devices N` starts (zoo.shard, zoo.worker) and DataLoader workers run
    outside the CLI's handler: their warnings used to be raw (`zoo/imageio.py:131: ZooWarning:
    ...` and the source line). ``plain_warnings`` is what they install first."""
    code = ("import warnings; from zoo.errors import ZooWarning, plain_warnings; plain_warnings(); "
            "warnings.warn(ZooWarning('m.png is not binary', 'masks that were not binary')); "
            "warnings.warn('a library warning', UserWarning); warnings.warn('old', DeprecationWarning)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == ["Warning: m.png is not binary", "Warning: a library warning"], done.stderr
    _only_warning_lines(done.stderr)
    import zoo.shard
    import zoo.train.engine
    import zoo.train.samples
    import zoo.worker

    for module in (zoo.shard, zoo.worker):  # both entry points of launched processes install it first
        body = Path(module.__file__).read_text().split("\ndef main(", 1)[1].split("\n    try:", 1)[0]
        assert "plain_warnings()" in body, module.__name__
    for module in (zoo.train.engine, zoo.train.samples):  # and every DataLoader's workers
        src = Path(module.__file__).read_text()
        assert src.count("DataLoader(") == src.count("worker_init_fn=plain_warnings"), module.__name__


def test_warnings_in_a_command_and_a_plugin_hook_are_warning_lines(pairs, tmp_path):
    class Warns(NanSampler):
        @hookimpl
        def zoo_register_methods(self):
            spec = NanSampler.zoo_register_methods(self)[0]
            return [dataclasses.replace(spec, name="loud-fill")]

        @hookimpl
        def zoo_sample(self, method, model, config, images, masks, generator):
            import warnings

            warnings.warn("the plugin warns", UserWarning)
            return SampleOutput(images.clone(), {})

    get_manager().register(Warns(), name="loudplugin")
    _nonbinary(pairs)
    result = _zoo("sample", "loud-fill", "--images", pairs[0], "--masks", pairs[1], "--out", tmp_path / "out", "--batch-size", "1")
    assert result.exit_code == 0, result.output
    assert "Warning: the plugin warns" in result.stderr and "is not binary" in result.stderr, result.stderr
    _only_warning_lines(result.stderr)
