"""A fuzzer for the commands that read users' files (issue 28, item 5).

Hypothesis writes image and mask files (PIL modes L, LA, P, RGB, RGBA, CMYK, I;16 and 1; sides
of 1, 2 and odd primes; truncated files, random bytes, empty files, wrong extensions) and draws
option values for ``zoo sample`` (telea, and conv-l1 with a tiny checkpoint trained once per
session), ``zoo score``, ``zoo data eval-set`` and ``zoo masks generate``. Every case must end in
one of two ways:

- exit 0, with the outputs the command promises (``zoo sample``: one PNG per image whose known
  pixels equal the input as the zoo reads it; eval sets and masks: binary masks of the asked size);
- exit 2 with exactly one ``Error:`` line, and nothing left that the command created.

In both: no traceback, no input file changed (hashes of everything in the workspace). Commands run
in-process through click's ``CliRunner``, which calls ``ZooGroup.main`` in standalone mode as the
``zoo`` script does; :func:`test_in_process_runs_match_the_real_command` checks that against
``python -m zoo_cli.main`` in subprocesses.

Profiles: the normal suite runs a few derandomized examples per command (``short``); ``pytest -m
fuzz`` runs :func:`test_fuzz_long` for ``$ZOO_FUZZ_SECONDS`` (default 600) seconds of fresh random
cases, keeps going after a failure, and prints the number of cases and each distinct failure.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import tempfile
import time
import traceback
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, Phase, event, example, given, settings
from hypothesis import strategies as st
from PIL import Image

settings.register_profile("short", max_examples=6, deadline=None, derandomize=True, database=None,
                          suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
settings.register_profile("long", max_examples=25, deadline=None, database=None,
                          suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
SHORT = settings.get_profile("short")
LONG = settings.get_profile("long")

CASES = {"count": 0}  # cases tried in this process (the long profile prints it)

# -- files ----------------------------------------------------------------------------------------
MODES = ["L", "LA", "P", "RGB", "RGBA", "CMYK", "I;16", "1"]
SIDES = [1, 2, 3, 5, 7, 13, 31, 32, 37]
FORMATS = {"PNG": ".png", "JPEG": ".jpg", "BMP": ".bmp", "WEBP": ".webp", "TIFF": ".tif", "GIF": ".gif"}
EXTS = [".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".gif", ".txt", ""]
DAMAGE = ["none"] * 6 + ["truncated", "random-bytes", "empty"]


@dataclass(frozen=True)
class FileSpec:
    """One image or mask file: its pixels (mode, size, seeded content), how it is encoded
    (format, extension), and how it is damaged."""

    mode: str
    width: int
    height: int
    fmt: str
    ext: str  # "" = the format's own extension
    damage: str
    seed: int
    binary: bool = True  # masks: only 0 and 255


GOOD_FORMATS = ["PNG", "PNG", "JPEG", "BMP", "WEBP"]
ODD = ["truncated", "random-bytes", "empty", "other-size", "other-ext", "other-format"]


def file_specs(width=None, height=None, mask: bool = False, odd: bool = False):
    """A readable file of any mode at the given size; with ``odd``, one thing wrong with it
    (damaged bytes, another size, a wrong or unknown extension, a TIFF or GIF)."""
    side = st.sampled_from(SIDES)
    spec = st.builds(FileSpec, mode=st.sampled_from(MODES), width=st.just(width) if width else side, height=st.just(height or width) if (height or width) else side,
                     fmt=st.sampled_from(GOOD_FORMATS), ext=st.just(""), damage=st.just("none"), seed=st.integers(0, 2**16),
                     binary=st.sampled_from([True, True, False]) if mask else st.just(True))
    if not odd:
        return spec

    @st.composite
    def spoil(draw):
        s = draw(spec)
        how = draw(st.sampled_from(ODD))
        if how == "other-size":
            return replace(s, width=draw(side), height=draw(side))
        if how == "other-ext":
            return replace(s, ext=draw(st.sampled_from(EXTS)))
        if how == "other-format":
            return replace(s, fmt=draw(st.sampled_from(["TIFF", "GIF"])), ext=draw(st.sampled_from(["", ".png"])))
        return replace(s, damage=how)

    return spoil()


def option_values(draw, valid: dict, bad: dict) -> dict:
    """Valid values for every option, except (sometimes) one option that gets a bad value."""
    spoiled = draw(st.sampled_from([None, None, None, *bad]))
    return {k: draw(st.sampled_from(bad[k] if k == spoiled else v)) for k, v in valid.items()}


def _pixels(spec: FileSpec, mask: bool) -> Image.Image:
    rng = np.random.default_rng(spec.seed)
    h, w = spec.height, spec.width
    if mask:
        gray = (rng.random((h, w)) < 0.4).astype(np.uint8) * 255 if spec.binary else rng.integers(0, 256, (h, w), dtype=np.uint8)
        rgb = np.repeat(gray[..., None], 3, axis=2)
    else:
        rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        gray = rgb[..., 0]
    if spec.mode == "I;16":
        return Image.fromarray(gray.astype(np.uint16) * 257)
    if spec.mode in ("L", "1"):
        img = Image.fromarray(gray, "L")
        return img.point(lambda v: 255 if v >= 128 else 0).convert("1", dither=Image.Dither.NONE) if spec.mode == "1" else img
    img = Image.fromarray(rgb, "RGB")
    if spec.mode in ("LA", "RGBA"):
        alpha = Image.fromarray(np.full((h, w), 255, np.uint8) if spec.binary else rng.integers(0, 256, (h, w), dtype=np.uint8), "L")
        base = img.convert(spec.mode[:-1])
        base.putalpha(alpha)
        return base
    if spec.mode == "P":
        return img.quantize(colors=16) if not mask else img.convert("P")
    return img.convert(spec.mode)


def write_file(folder: Path, stem: str, spec: FileSpec, mask: bool = False) -> Path:
    """Encode ``spec`` as ``folder/stem<ext>``; a format that cannot hold the mode falls back
    to PNG (still under the drawn extension)."""
    img = _pixels(spec, mask)
    buf = io.BytesIO()
    try:
        img.save(buf, format=spec.fmt)
    except (OSError, ValueError, KeyError):
        buf = io.BytesIO()
        (img if img.mode != "CMYK" else img.convert("RGB")).save(buf, format="PNG")
    data = buf.getvalue()
    rng = np.random.default_rng(spec.seed + 1)
    if spec.damage == "truncated":
        data = data[: max(1, int(len(data) * rng.uniform(0.1, 0.9)))]
    elif spec.damage == "random-bytes":
        data = rng.integers(0, 256, int(rng.integers(1, 200)), dtype=np.uint8).tobytes()
    elif spec.damage == "empty":
        data = b""
    path = folder / f"{stem}{spec.ext or FORMATS[spec.fmt]}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


# -- running a command and checking the invariants ------------------------------------------------
def snapshot(root: Path) -> dict[str, str]:
    """relative path -> sha256 (folders: "dir") of everything under ``root``."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        out[rel] = "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str
    crash: str | None  # a traceback that escaped the CLI


def invoke(args: list[str], cwd: Path) -> Outcome:
    """``zoo ARGS`` in-process, in standalone mode as the ``zoo`` script runs it."""
    from zoo_cli.main import app

    runner = CliRunner()
    old = os.getcwd()
    os.chdir(cwd)
    try:
        res = runner.invoke(app, args, prog_name="zoo", catch_exceptions=True)
    finally:
        os.chdir(old)
    crash = None
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        crash = "".join(traceback.format_exception(*res.exc_info))
    return Outcome(res.exit_code, res.stdout, res.stderr, crash)


def check_outcome(what: str, args: list[str], ws: Path, before: dict[str, str], res: Outcome, created: list[str]) -> bool:
    """The invariants every case keeps; True when the command succeeded (exit 0).
    ``created``: workspace paths the command may create (its outputs)."""
    event(f"exit {res.code}" + (f": {res.stderr.strip().splitlines()[-1][:60]}" if res.code and res.stderr.strip() else ""))
    shown = f"zoo {' '.join(args)}\nexit {res.code}\nstdout:\n{res.stdout}\nstderr:\n{res.stderr}"
    assert res.crash is None, f"{what}: an exception escaped the CLI\n{shown}\n{res.crash}"
    assert "Traceback" not in res.stderr + res.stdout, f"{what}: a traceback\n{shown}"
    after = snapshot(ws)
    changed = sorted(k for k, v in before.items() if after.get(k) != v)
    assert not changed, f"{what}: input(s) changed or removed: {changed}\n{shown}"
    new = sorted(k for k in after if k not in before)
    outside = [k for k in new if not any(k == c or k.startswith(c + "/") or c.startswith(k + "/") for c in created)]
    assert not outside, f"{what}: files written outside its outputs: {outside}\n{shown}"
    if res.code == 0:
        return True
    errors = [line for line in res.stderr.splitlines() if line.startswith("Error:")]
    assert res.code == 2, f"{what}: exit {res.code} (expected 0, or 2 with one Error: line)\n{shown}"
    assert len(errors) == 1, f"{what}: {len(errors)} Error: lines (expected one)\n{shown}"
    assert not new, f"{what}: a failed command left {new}\n{shown}"
    return False


@pytest.fixture(scope="session")
def conv_ckpt(tmp_path_factory) -> Path:
    """A conv-l1 checkpoint of the tiny preset with its initial weights (what the fuzzer checks
    does not depend on training), written once per session."""
    from zoo.checkpoint import save_checkpoint
    from zoo.config import resolve_config
    from zoo.plugins import get_manager
    from zoo.runner import checkpoint_meta

    manager = get_manager()
    config, preset = resolve_config(manager.method("conv-l1"), "tiny", None)
    model = manager.call("zoo_build_model", "conv-l1", config=config)
    path = tmp_path_factory.mktemp("fuzz-ckpt") / "conv.safetensors"
    return save_checkpoint(path, model.state_dict(), checkpoint_meta("conv-l1", config, preset, 0, {"kind": "test"}))


class Workspace:
    """A fresh folder under /tmp for one case (Hypothesis runs many cases per test, so
    pytest's function-scoped tmp_path cannot be used)."""

    def __enter__(self) -> Path:
        self.path = Path(tempfile.mkdtemp(prefix="zoo-fuzz-"))
        (self.path / "notes.txt").write_text("a file, not a folder\n")
        return self.path

    def __exit__(self, *exc) -> None:
        for p in [self.path, *self.path.rglob("*")]:  # a case may leave a folder read-only
            if p.is_dir() and not p.is_symlink():
                os.chmod(p, 0o755)
        shutil.rmtree(self.path, ignore_errors=True)


BAD_OUTS = ["notes.txt", "notes.txt/out", "images", "images/out", "masks"]  # a file, under a file, an input, inside an input


def _known_pixels_equal(img_path: Path, mask_path: Path, out_path: Path, convention: str) -> None:
    from zoo.imageio import load_image, load_mask, tensor_to_uint8

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        src = tensor_to_uint8(load_image(img_path))
        hole = load_mask(mask_path, convention)[0].numpy() > 0.5
    with Image.open(out_path) as im:
        assert im.mode == "RGB" and im.size == (src.shape[1], src.shape[0]), f"{out_path}: {im.mode} {im.size}, input {src.shape}"
        got = np.asarray(im)
    bad = int((got[~hole] != src[~hole]).any(axis=-1).sum())
    assert bad == 0, f"{out_path}: {bad} known pixel(s) differ from the input {img_path}"


# -- zoo sample -----------------------------------------------------------------------------------
def draw_files(draw, kinds: list[bool], width=None, height=None) -> list[FileSpec]:
    """One spec per entry of ``kinds`` (True: a mask); at most one of them odd."""
    odd = draw(st.sampled_from([None, None, *range(len(kinds))]))
    return [draw(file_specs(width, height, mask=m, odd=i == odd)) for i, m in enumerate(kinds)]


@st.composite
def sample_cases(draw):
    n = draw(st.integers(1, 3))
    w, h = draw(st.sampled_from(SIDES)), draw(st.sampled_from(SIDES))
    names = draw(st.sampled_from([["a", "b", "c"], ["a", "sub/b", "c"], ["a", "a", "b"]]))[:n]  # a, a: one stem, two extensions
    specs = draw_files(draw, [False] * n + [True] * n, w, h)
    images, masks = specs[:n], specs[n:]
    if names[:2] == ["a", "a"] and len(names) > 1 and images[1].ext in ("", FORMATS[images[0].fmt]) and images[0].fmt == images[1].fmt:
        images[1] = replace(images[1], fmt="BMP" if images[0].fmt != "BMP" else "PNG", ext="")
    drop_mask = draw(st.sampled_from([None] * 8 + [0]))
    opts = option_values(draw, {"method": ["telea", "conv-l1"], "--batch-size": ["1", "2", "8"], "--num-samples": ["1", "1", "2"],
                                "--seed": ["0", "7", "-3", "4294967296"], "--mask-convention": ["hole-white", "hole-black"],
                                "--set": [None], "--out": ["out", "nested/deeper/out"]},
                         {"method": ["nope"], "--batch-size": ["0", "-1", "x"], "--num-samples": ["0", "-2"], "--seed": ["x", "1.5"],
                          "--mask-convention": ["holes"], "--set": ["no_such=1", "hole_weight=abc", "hole_weight=1e-4", "="],
                          "--out": BAD_OUTS})
    return names, images, masks, drop_mask, opts


def run_sample_case(case, ckpt: Path) -> None:
    names, images, masks, drop_mask, opts = case
    CASES["count"] += 1
    opts = dict(opts)
    method, out, set_item = opts.pop("method"), opts.pop("--out"), opts.pop("--set")
    with Workspace() as ws:
        for i, (name, ispec, mspec) in enumerate(zip(names, images, masks)):
            write_file(ws / "images", name, ispec)
            if drop_mask != i:
                write_file(ws / "masks", name, mspec, mask=True)
        (ws / "masks").mkdir(exist_ok=True)
        args = ["sample", method, "--images", "images", "--masks", "masks", "--out", out]
        if method == "conv-l1":
            args += ["--checkpoint", str(ckpt)]
        for k, v in opts.items():
            args += [k, v]
        if set_item is not None:
            args += ["--set", set_item]
        before = snapshot(ws)
        res = invoke(args, ws)
        if not check_outcome("zoo sample", args, ws, before, res, [out]):
            return
        outdir = ws / out
        k = int(opts["--num-samples"])
        from zoo.imageio import list_images, pair_images_and_masks  # which files are images is the zoo's call (suffixes); each one needs an output

        keys = [p.relative_to(ws / "images").with_suffix("").as_posix() for p in list_images(ws / "images")]
        assert len(keys) == len(set(keys)), f"zoo sample {args}: exit 0 although two images share a name ({sorted(keys)}): one was dropped\n{res.stderr}"
        pairs = pair_images_and_masks(ws / "images", ws / "masks")
        produced = sorted(p.relative_to(outdir).as_posix() for p in outdir.rglob("*") if p.is_file())
        expected = sorted(f"{img.relative_to(ws / 'images').with_suffix('').as_posix()}{f'_s{j}' if k > 1 else ''}.png"
                          for img, _ in pairs for j in range(k))
        assert produced == expected, f"zoo sample {args}: wrote {produced}, expected {expected}\n{res.stderr}"
        for img, msk in pairs:
            for j in range(k):
                stem = img.relative_to(ws / "images").with_suffix("").as_posix()
                _known_pixels_equal(img, msk, outdir / f"{stem}{f'_s{j}' if k > 1 else ''}.png", opts["--mask-convention"])


# -- zoo score ------------------------------------------------------------------------------------
METRICS = ["psnr", "psnr-hole", "ssim", "ssim-hole", "l1", "l1-hole"]


@st.composite
def score_cases(draw):
    n = draw(st.integers(1, 3))
    w, h = draw(st.sampled_from(SIDES)), draw(st.sampled_from(SIDES))
    specs = draw_files(draw, [False] * (2 * n) + [True] * n, w, h)
    gts, preds, masks = specs[:n], specs[n : 2 * n], specs[2 * n :]
    opts = option_values(draw, {"--metric": ["psnr,ssim,l1", "psnr-hole,l1-hole,ssim-hole", "psnr", "l1-hole"], "--masks": ["masks", None],
                                "--bootstrap": ["0", "10"], "--batch-size": ["1", "4"], "--json": [True, False]},
                         {"--metric": ["nope", "", "psnr,,ssim", "psnr,psnr"], "--masks": ["notes.txt", "missing"], "--bootstrap": ["-1", "x"],
                          "--batch-size": ["0", "-3"], "--json": [True]})
    return gts, preds, masks, opts


def run_score_case(case) -> None:
    gts, preds, masks, opts = case
    CASES["count"] += 1
    with Workspace() as ws:
        for i, (g, p, m) in enumerate(zip(gts, preds, masks)):
            write_file(ws / "gt", f"im{i}", g)
            write_file(ws / "pred", f"im{i}", p)
            write_file(ws / "masks", f"im{i}", m, mask=True)
        args = ["score", "--pred", "pred", "--gt", "gt"]
        for k, v in opts.items():
            if k == "--json":
                args += ["--json"] if v else []
            elif v is not None:
                args += [k, v]
        before = snapshot(ws)
        res = invoke(args, ws)
        if not check_outcome("zoo score", args, ws, before, res, []):
            return
        names = [m for m in dict.fromkeys(opts["--metric"].split(",")) if m]
        if opts["--json"]:
            got = json.loads(res.stdout)["metrics"]
            assert sorted(got) == sorted(names), f"zoo score {args}: metrics {sorted(got)}"
        else:
            for name in names:
                assert re.search(rf"^{re.escape(name)}\s", res.stdout, re.M), f"zoo score {args}: no row for {name}\n{res.stdout}"


# -- zoo data eval-set ----------------------------------------------------------------------------
@st.composite
def evalset_cases(draw):
    n = draw(st.integers(1, 4))
    opts = option_values(draw, {"--data": ["images", "shapes"], "--masks": ["box", "center", "lama-thin", "masks", "masks"], "--count": ["1", "2", "3"],
                                "--size": ["8", "16", "17"], "--seed": ["0", "5"], "--mask-convention": ["hole-white", "hole-black"],
                                "--out": ["out", "nested/deeper/out"]},
                         {"--data": ["nope", "notes.txt"], "--masks": ["nope", "notes.txt"], "--count": ["0", "-1", "9"], "--size": ["7", "0", "-4", "x"],
                          "--seed": ["y"], "--mask-convention": ["holes"], "--out": BAD_OUTS})
    size = int(opts["--size"]) if opts["--size"].lstrip("-").isdigit() and int(opts["--size"]) > 0 else 16
    m = draw(st.integers(1, 4))
    specs = draw_files(draw, [False] * n + [True] * m, size, size)
    specs = [replace(s, width=draw(st.sampled_from(SIDES)), height=draw(st.sampled_from(SIDES))) if i < n else s for i, s in enumerate(specs)]
    flags = draw(st.lists(st.sampled_from(["--resize-masks", "--strict", "--json"]), unique=True, max_size=2))
    return specs[:n], specs[n:], opts, flags


def run_evalset_case(case) -> None:
    images, masks, opts, flags = case
    CASES["count"] += 1
    with Workspace() as ws:
        for i, spec in enumerate(images):
            write_file(ws / "images", f"im{i}", spec)
        for i, spec in enumerate(masks):
            write_file(ws / "masks", f"m{i}", spec, mask=True)
        out = opts["--out"]
        args = ["data", "eval-set", *flags]
        for k, v in opts.items():
            args += [k, v]
        before = snapshot(ws)
        res = invoke(args, ws)
        if not check_outcome("zoo data eval-set", args, ws, before, res, [out]):
            return
        outdir, count, size = ws / out, int(opts["--count"]), int(opts["--size"])
        manifest = json.loads((outdir / "manifest.json").read_text())
        assert len(manifest["items"]) == count, f"{args}: {len(manifest['items'])} items"
        for item in manifest["items"]:
            with Image.open(outdir / item["image"]) as im:
                assert im.size == (size, size) and im.mode == "RGB", f"{args}: {item['image']} is {im.mode} {im.size}"
            with Image.open(outdir / item["mask"]) as im:
                arr = np.asarray(im)
                assert arr.shape == (size, size) and set(np.unique(arr)) <= {0, 255}, f"{args}: {item['mask']} {arr.shape} {np.unique(arr)}"


# -- zoo masks generate ---------------------------------------------------------------------------
@st.composite
def masks_cases(draw):
    opts = option_values(draw, {"--kind": ["box", "center", "lama-thin", "mat-small", "outpaint", "repaint-nn2", "comodgan"],
                                "--size": ["8", "9", "31", "64"], "--count": ["1", "3"], "--seed": ["0", "11", "-1"], "--height": [None, "8", "13"],
                                "--out": ["out", "nested/deeper/out"]},
                         {"--kind": ["nope", ""], "--size": ["1", "0", "-2", "x"], "--count": ["0", "-1"], "--seed": ["z"], "--height": ["5", "0"],
                          "--out": BAD_OUTS})
    return opts


def run_masks_case(case) -> None:
    opts = case
    out = opts["--out"]
    CASES["count"] += 1
    with Workspace() as ws:
        (ws / "images").mkdir()
        args = ["masks", "generate"]
        for k, v in opts.items():
            if v is not None:
                args += [k, v]
        before = snapshot(ws)
        res = invoke(args, ws)
        if not check_outcome("zoo masks generate", args, ws, before, res, [out]):
            return
        outdir, count, w = ws / out, int(opts["--count"]), int(opts["--size"])
        h = int(opts.get("--height") or w)
        files = sorted(outdir.glob("*.png"))
        assert [p.name for p in files] == [f"{i:06d}.png" for i in range(count)], f"{args}: {[p.name for p in files]}"
        for p in files:
            arr = np.asarray(Image.open(p))
            assert arr.shape == (h, w) and set(np.unique(arr)) <= {0, 255}, f"{args}: {p.name} {arr.shape}"


# -- the short profile: part of the normal suite --------------------------------------------------
@settings(SHORT)
@given(case=sample_cases())
def test_fuzz_sample(conv_ckpt, case):
    run_sample_case(case, conv_ckpt)


@settings(SHORT)
@given(case=score_cases())
def test_fuzz_score(case):
    run_score_case(case)


@settings(SHORT)
@given(case=evalset_cases())
def test_fuzz_eval_set(case):
    run_evalset_case(case)


@settings(SHORT)
@given(case=masks_cases())
def test_fuzz_masks_generate(case):
    run_masks_case(case)


# -- in-process runs tell the truth ---------------------------------------------------------------
def test_in_process_runs_match_the_real_command(tmp_path):
    """The CliRunner above gives the exit code and the ``Error:`` line that ``python -m
    zoo_cli.main`` (what the ``zoo`` script runs) gives, for a success and for an operating-system error (the error layer of
    ``ZooGroup.main``, the most involved branch; a ``ZooError`` takes the same path)."""
    import subprocess
    import sys

    (tmp_path / "notes.txt").write_text("x")
    cases = [
        ["masks", "generate", "--kind", "box", "--size", "8", "--count", "1", "--out", "m"],  # success
        ["masks", "generate", "--kind", "box", "--size", "8", "--count", "1", "--out", "notes.txt/m"],  # an OSError (the CLI's error layer)
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    for args in cases:
        real = subprocess.run([sys.executable, "-m", "zoo_cli.main", *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        shutil.rmtree(tmp_path / "m", ignore_errors=True)
        mine = invoke(args, tmp_path)
        shutil.rmtree(tmp_path / "m", ignore_errors=True)
        assert mine.code == real.returncode, (args, mine.code, real.returncode, real.stderr)
        err = lambda text: [line for line in text.splitlines() if line.startswith("Error:")]  # noqa: E731
        assert err(mine.stderr) == err(real.stderr), (args, mine.stderr, real.stderr)
        assert mine.stdout == real.stdout, (args, mine.stdout, real.stdout)
    assert invoke(cases[0], tmp_path).code == 0 and invoke(cases[1], tmp_path).code != 0  # the cases differ


# -- the long profile: pytest -m fuzz -------------------------------------------------------------
def _signature(exc: BaseException) -> str:
    """What makes two failures the same: the kind of check and the message's first line,
    with temporary paths and numbers blurred."""
    lines = str(exc).splitlines()
    first = lines[0] if lines else type(exc).__name__
    if "escaped the CLI" in first:  # name the exception: the traceback's last line
        first += " " + next((line.strip() for line in reversed(lines) if re.match(r"^\s*\w[\w.]*(Error|Exception|Warning)\b", line)), "")
    first = re.sub(r"\[[^\]]*\]", "[...]", first)  # the command line and listed names differ from case to case
    first = re.sub(r"/tmp/\S+", "<tmp>", first)
    first = re.sub(r"\d+", "N", first)
    return f"{type(exc).__name__}: {first}"


@pytest.mark.fuzz
@pytest.mark.timeout(float(os.environ.get("ZOO_FUZZ_SECONDS", "600")) + 900)  # the suite's 600 s limit would cut a long run short
def test_fuzz_long(conv_ckpt):
    """Fresh random cases of every command for ``$ZOO_FUZZ_SECONDS`` seconds; a failure is
    recorded and the run goes on; at the end the count and each distinct failure are printed."""
    budget = float(os.environ.get("ZOO_FUZZ_SECONDS", "600"))
    runs = [("sample", sample_cases(), lambda case: run_sample_case(case, conv_ckpt)), ("score", score_cases(), run_score_case),
            ("eval-set", evalset_cases(), run_evalset_case), ("masks generate", masks_cases(), run_masks_case)]
    failures: dict[str, tuple[int, str]] = {}
    start = time.monotonic()
    CASES["count"] = 0
    rounds = 0
    while time.monotonic() - start < budget:
        name, strategy, body = runs[rounds % len(runs)]
        rounds += 1
        check = settings(LONG)(given(case=strategy)(body))
        try:
            check()
        except BaseException as exc:  # noqa: BLE001 - a failure is recorded, the run goes on
            if isinstance(exc, KeyboardInterrupt):
                raise
            key = f"{name}: {_signature(exc)}"
            n, text = failures.get(key, (0, ""))
            failures[key] = (n + 1, text or "".join(traceback.format_exception(exc))[-6000:])
            print(f"\n[fuzz] failure in {name} ({len(failures)} distinct so far): {key}", flush=True)
            if n == 0:
                print(failures[key][1], flush=True)
        print(f"[fuzz] {CASES['count']} cases in {time.monotonic() - start:.0f} s", flush=True)
    print(f"\n[fuzz] {CASES['count']} cases tried in {time.monotonic() - start:.0f} s; {len(failures)} distinct failure(s)")
    for key, (n, text) in failures.items():
        print(f"\n[fuzz] === {key} (seen {n} time(s)) ===\n{text}")
    assert not failures, f"{len(failures)} distinct failure(s); see the output above"


# -- what the fuzzer found (each fixed; one plain test per finding) -------------------------------
def _one_line_error(res: Outcome, *words: str) -> str:
    assert res.crash is None and "Traceback" not in res.stderr, res.crash or res.stderr
    errors = [line for line in res.stderr.splitlines() if line.startswith("Error:")]
    assert res.code == 2 and len(errors) == 1, (res.code, res.stderr)
    assert all(w in errors[0] for w in words), errors[0]
    return errors[0]


def test_score_refuses_a_batch_size_or_bootstrap_below_its_minimum(tmp_path):
    """Found by the fuzzer: ``zoo score --batch-size 0`` was a ValueError traceback (range step 0)."""
    for folder in ("gt", "pred"):
        write_file(tmp_path / folder, "im0", FileSpec("RGB", 7, 5, "PNG", "", "none", 1))
    base = ["score", "--pred", "pred", "--gt", "gt", "--metric", "psnr"]
    _one_line_error(invoke(base + ["--batch-size", "0"], tmp_path), "--batch-size 0", "at least 1")
    _one_line_error(invoke(base + ["--bootstrap", "-1"], tmp_path), "--bootstrap -1")
    assert invoke(base + ["--batch-size", "1", "--bootstrap", "0"], tmp_path).code == 0


def test_a_failed_eval_set_removes_the_parent_folders_it_made(tmp_path):
    """Found by the fuzzer: ``zoo data eval-set --out nested/deeper/out`` that failed at its
    second mask (another size) removed ``out`` but left the empty ``nested/deeper`` it had made."""
    for i in range(2):
        write_file(tmp_path / "images", f"im{i}", FileSpec("RGB", 20, 20, "PNG", "", "none", i))
    write_file(tmp_path / "masks", "m0", FileSpec("L", 16, 16, "PNG", "", "none", 5), mask=True)
    write_file(tmp_path / "masks", "m1", FileSpec("L", 5, 2, "PNG", "", "none", 6), mask=True)
    (tmp_path / "kept").mkdir()
    for out in ("nested/deeper/out", "kept/new/out"):
        res = invoke(["data", "eval-set", "--data", "images", "--masks", "masks", "--count", "2", "--size", "16", "--out", out], tmp_path)
        _one_line_error(res, "masks/m1.png is 5x2")
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.iterdir()) == ["images", "kept", "masks"]
    assert not any((tmp_path / "kept").iterdir())  # a folder that was there stays, emptied of what the command made
