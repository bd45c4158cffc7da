"""The ``--out`` guarantee on every writing command, and the data rules that used to be silent
(issue 28, item 0).

``--out`` is never an input, never inside an input (nor around one), and never an existing
file or someone else's folder without ``--overwrite``: one parametrised row per command, each
asserting exit 2, one ``Error:`` line (the last), and a workspace that is byte-for-byte
unchanged. Then the rules that go with it: ``zoo train --overwrite`` removes the old run whole
(checkpoints too), duplicate stems are refused, EXIF orientation is applied to images and
masks, ``.tif``/``.gif`` are read and other image types are named in a warning, negative split
counts are refused, ``--devices`` is bounded before any process starts.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image


def _png(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def _snapshot(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "<dir>" for p in sorted(root.rglob("*"))}


def _invoke(args: list[str], env: dict[str, str] | None = None):
    from zoo_cli.main import app

    return CliRunner().invoke(app, args, env=env, catch_exceptions=True)


def _one_error(result) -> str:
    output = result.output
    lines = [line for line in output.splitlines() if line.strip()]
    assert result.exit_code == 2, f"exit {result.exit_code}\n{output}\n{result.exception!r}"
    assert "Traceback" not in output, output
    errors = [line for line in lines if line.startswith("Error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], output
    return errors[0]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    from zoo import runner
    from zoo.data import render
    from zoo.plugins import reset_manager
    from zoo.train import TrainOptions

    ws = tmp_path_factory.mktemp("out-guarantee")
    reset_manager()
    for i in range(3):
        _png(ws / "good/images" / f"im{i}.png", render(i, 3, 32))
        m = np.zeros((32, 32), np.uint8)
        m[8:20, 6:24] = 255
        _png(ws / "good/masks" / f"im{i}.png", m)
    runner.train("conv-l1", "shapes", preset="tiny", steps=2, out_dir=ws / "run", options=TrainOptions(progress=False, device="cpu"))
    (ws / "official.pt").write_bytes(b"an official checkpoint: never overwritten")
    (ws / "existing.safetensors").write_bytes(b"the user's checkpoint")
    (ws / "bench.json").write_text('{"the user": "results"}\n')
    (ws / "notes.txt").write_text("the user's notes\n")
    (ws / "userdir").mkdir()
    (ws / "userdir/README.md").write_text("# my project\n")
    reset_manager()
    return ws


TRAIN = ["train", "conv-l1", "--preset", "tiny", "--steps", "1"]
SAMPLE = ["sample", "telea", "--images", "good/images", "--masks", "good/masks"]
STUDY = ["study", "--data", "shapes", "--methods", "telea", "--budget", "5s", "--preset", "tiny", "--resolution", "32", "--eval-count", "20", "--no-progress"]
COMPARE = ["compare", "--metric", "psnr", "--data", "shapes", "--masks", "box", "--count", "2", "--size", "32"]

# (id, args, extra environment, text the one error line must contain)
ROWS: list[tuple[str, list[str], dict[str, str], str]] = [
    ("train-existing-run", TRAIN + ["--data", "shapes", "--out", "run"], {}, "--resume run, or pass --overwrite"),
    ("train-out-inside-data", TRAIN + ["--data", "good/images", "--out", "good/images/run"], {}, "the input --data good/images"),
    ("train-out-contains-data", TRAIN + ["--data", "good/images", "--out", "good", "--overwrite"], {}, "the input --data good/images"),
    ("train-out-holds-init", TRAIN + ["--data", "shapes", "--init", "run/model.safetensors", "--out", "run", "--overwrite"], {}, "the input --init"),
    ("train-out-not-a-run", TRAIN + ["--data", "shapes", "--out", "userdir", "--overwrite"], {}, "not a zoo run"),
    ("train-out-is-file", TRAIN + ["--data", "shapes", "--out", "notes.txt"], {}, "an existing file"),
    ("train-resume-and-overwrite", ["train", "conv-l1", "--resume", "run", "--overwrite"], {}, "give one of them"),
    ("import-out-is-input", ["import", "repaint", "official.pt", "--out", "official.pt"], {}, "the input OFFICIAL_FILE"),
    ("import-out-is-input-overwrite", ["import", "repaint", "official.pt", "--out", "official.pt", "--overwrite"], {}, "the input OFFICIAL_FILE"),
    ("import-out-inside-input-folder", ["import", "repaint", "good", "--out", "good/model.safetensors"], {}, "the input OFFICIAL_FILE"),
    ("import-out-exists", ["import", "repaint", "official.pt", "--out", "existing.safetensors"], {}, "pass --overwrite"),
    ("import-out-is-folder", ["import", "repaint", "official.pt", "--out", "userdir"], {}, "an existing folder"),
    ("bench-out-exists", ["bench", "telea", "--no-flops", "--repeats", "1", "--out", "bench.json"], {}, "pass --overwrite"),
    ("bench-out-under-a-file", ["bench", "telea", "--no-flops", "--repeats", "1", "--out", "notes.txt/bench.json"], {}, "is a file"),
    ("masks-convert-into-input", ["masks", "convert", "good/masks", "--out", "good/masks"], {}, "the input FOLDER"),
    ("masks-convert-inside-input", ["masks", "convert", "good/masks", "--out", "good/masks/converted"], {}, "the input FOLDER"),
    ("masks-convert-existing", ["masks", "convert", "good/masks", "--out", "userdir"], {}, "--overwrite"),
    ("data-prepare-inside-input", ["data", "prepare", "good", "--layout", "folder", "--out", "good/prepared"], {}, "the input SRC"),
    ("data-prepare-is-input", ["data", "prepare", "good", "--layout", "folder", "--out", "good", "--resume"], {}, "the input SRC"),
    ("demo-user-folder", ["demo", "--out", "userdir", "--budget", "fast"], {}, "not a zoo demo folder"),
    ("demo-out-is-file", ["demo", "--out", "notes.txt", "--budget", "fast"], {}, "an existing file"),
    ("study-user-folder", STUDY + ["--out", "userdir"], {}, "holds no study"),
    ("study-out-is-file", STUDY + ["--out", "notes.txt"], {}, "an existing file"),
    ("fetch-out-exists", ["fetch", "big-lama", "--out", "existing.safetensors"], {"ZOO_OFFLINE": "1"}, "pass --overwrite"),
    ("fetch-out-is-folder", ["fetch", "big-lama", "--out", "userdir", "--overwrite"], {"ZOO_OFFLINE": "1"}, "an existing folder"),
    ("new-plugin-existing", ["new-plugin", "mymethod", "--out", "userdir"], {}, "not empty"),
    ("new-plugin-out-is-file", ["new-plugin", "mymethod", "--out", "notes.txt"], {}, "an existing file"),
    ("sample-out-is-images", SAMPLE + ["--out", "good/images"], {}, "the input --images"),
    ("sample-out-existing", SAMPLE + ["--out", "userdir"], {}, "--overwrite"),
    ("compare-out-is-file", COMPARE + ["--methods", "telea", "--out", "notes.txt"], {}, "an existing file"),
    ("eval-set-inside-data", ["data", "eval-set", "--data", "good/images", "--masks", "box", "--count", "2", "--size", "32", "--out", "good/images/ev"], {}, "the input --data"),
    ("score-method-inside-data", ["score", "telea", "--data", "good/images", "--masks", "box", "--metric", "psnr", "--count", "2", "--size", "32", "--out", "good/images/sc"], {}, "the input --data"),
    ("masks-generate-out-is-file", ["masks", "generate", "--kind", "box", "--count", "2", "--size", "32", "--out", "notes.txt"], {}, "an existing file"),
    ("data-synth-out-is-file", ["data", "synth", "--count", "2", "--size", "32", "--out", "notes.txt"], {}, "an existing file"),
]


@pytest.mark.parametrize("row", ROWS, ids=[r[0] for r in ROWS])
def test_out_is_refused_and_nothing_changes(row, workspace, monkeypatch):
    name, args, env, expected = row
    monkeypatch.chdir(workspace)
    before = _snapshot(workspace)
    error = _one_error(_invoke(args, env))
    assert expected in error, f"{name}: {error!r} does not say {expected!r}"
    assert _snapshot(workspace) == before, f"{name}: a file was changed, removed or left behind"


def test_every_writing_command_has_a_row():
    commands = {" ".join(a for a in r[1][:2] if not a.startswith("-") and a not in ("telea", "conv-l1", "repaint", "big-lama", "mymethod")) for r in ROWS}
    for cmd in ("train", "import", "bench", "masks convert", "data prepare", "demo", "fetch", "new-plugin", "sample", "compare",
                "data eval-set", "masks generate", "data synth", "score", "study"):
        assert cmd in commands, cmd


# -- zoo train --overwrite: the old run goes whole --------------------------------------------------


def test_train_overwrite_removes_the_old_run_and_its_checkpoints(workspace, tmp_path, monkeypatch):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(workspace / "run", run)
    (run / "checkpoints" / "step_0000099").mkdir()  # an old checkpoint a later --resume would have picked
    (run / "stray.txt").write_text("written by the old run")
    monkeypatch.chdir(tmp_path)
    result = _invoke(TRAIN + ["--data", "shapes", "--out", "run", "--overwrite", "--device", "cpu", "--set", "channels=8"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step_0000001"]
    assert not (run / "stray.txt").exists()
    import json

    info = json.loads((run / "run.json").read_text())
    assert info["steps"] == 1 and info["config"]["channels"] == 8 and len(info["commands"]) == 1


def test_train_overwrite_with_a_bad_setting_keeps_the_old_run(workspace, tmp_path, monkeypatch):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(workspace / "run", run)
    before = _snapshot(run)
    monkeypatch.chdir(tmp_path)
    _one_error(_invoke(TRAIN + ["--data", "shapes", "--out", "run", "--overwrite", "--set", "channels=0"]))
    assert _snapshot(run) == before  # checked before the old run is removed


def test_train_into_an_empty_folder_needs_no_flag(tmp_path, monkeypatch):
    (tmp_path / "empty").mkdir()
    monkeypatch.chdir(tmp_path)
    result = _invoke(TRAIN + ["--data", "shapes", "--out", "empty", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "empty/model.safetensors").is_file()


def test_check_run_dir_rules(tmp_path):
    from zoo.errors import ZooError
    from zoo.train.rundir import check_run_dir

    run = tmp_path / "run"
    run.mkdir()
    (run / "launch.json").write_text("{}")  # a --devices run that never started: nothing to lose
    (run / ".launch").mkdir()
    assert check_run_dir(run, "shapes") == run
    (run / "log.jsonl").write_text("")
    with pytest.raises(ZooError, match="not a zoo run"):
        check_run_dir(run, "shapes", overwrite=True)
    (run / "run.json").write_text("{}")
    with pytest.raises(ZooError, match="--resume"):
        check_run_dir(run, "shapes")
    assert check_run_dir(run, "shapes", overwrite=True) == run
    assert check_run_dir(run, "shapes", existing=False) == run  # processes other than 0 of a launcher
    with pytest.raises(ZooError, match="the input --data"):
        check_run_dir(tmp_path / "data" / "run", str(tmp_path), existing=False)


# -- the other writers, where they may write ------------------------------------------------------


def test_bench_overwrite_replaces_the_file(workspace, tmp_path, monkeypatch):
    import json

    out = tmp_path / "bench.json"
    out.write_text("old\n")
    monkeypatch.chdir(tmp_path)
    result = _invoke(["bench", "telea", "--no-flops", "--warmup", "0", "--repeats", "1", "--resolution", "32", "--out", str(out), "--overwrite"])
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["results"][0]["method"] == "telea"


def test_masks_convert_writes_beside_the_input_and_overwrite_allows_a_full_folder(workspace, tmp_path):
    from zoo.imageio import load_mask

    out = tmp_path / "converted"
    assert _invoke(["masks", "convert", str(workspace / "good/masks"), "--out", str(out), "--mask-convention", "hole-black"]).exit_code == 0
    (out / "mine.txt").write_text("kept")
    result = _invoke(["masks", "convert", str(workspace / "good/masks"), "--out", str(out), "--overwrite"])
    assert result.exit_code == 0, result.output
    assert (out / "mine.txt").read_text() == "kept"
    assert load_mask(out / "im0.png").sum() == load_mask(workspace / "good/masks/im0.png").sum()


def test_masks_convert_that_fails_leaves_nothing(workspace, tmp_path):
    src = tmp_path / "masks"
    _png(src / "a.png", np.full((8, 8), 255, np.uint8))
    (src / "b.png").write_bytes(b"not a png")
    _one_error(_invoke(["masks", "convert", str(src), "--out", str(tmp_path / "out")]))
    assert not (tmp_path / "out").exists()


def test_demo_folder_rule(tmp_path):
    from zoo.demo import DEMO_MARK, check_demo_dir
    from zoo.errors import ZooError

    assert check_demo_dir(tmp_path / "new") == tmp_path / "new"
    (tmp_path / "empty").mkdir()
    check_demo_dir(tmp_path / "empty")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine/README.md").write_text("# my notes\n")
    with pytest.raises(ZooError, match="not a zoo demo folder"):
        check_demo_dir(tmp_path / "mine")
    (tmp_path / "old-demo").mkdir()
    (tmp_path / "old-demo/README.md").write_text("# zoo demo\n\nBudget ...\n")
    check_demo_dir(tmp_path / "old-demo")  # written by an earlier demo: a rerun resumes it
    (tmp_path / "mine" / DEMO_MARK).write_text("")
    check_demo_dir(tmp_path / "mine")


def test_check_output_file_rules(tmp_path):
    from zoo.errors import ZooError
    from zoo.fsutil import check_output_file

    src = tmp_path / "in.pt"
    src.write_bytes(b"x")
    assert check_output_file(tmp_path / "new.json", {"IN": src}) == tmp_path / "new.json"
    with pytest.raises(ZooError, match="the input IN"):
        check_output_file(src, {"IN": src}, overwrite=True)
    link = tmp_path / "link.pt"
    link.symlink_to(src)
    with pytest.raises(ZooError, match="the input IN"):  # a link to the input is the input
        check_output_file(link, {"IN": src}, overwrite=True)
    with pytest.raises(ZooError, match="exists"):
        check_output_file(src, {})
    assert check_output_file(src, {}, overwrite=True) == src


# -- data rules: stems, EXIF, file types, split counts --------------------------------------------


def test_duplicate_stems_are_refused_naming_both(tmp_path):
    from zoo.data import render

    images, masks = tmp_path / "images", tmp_path / "masks"
    _png(images / "a.png", render(0, 3, 32))
    Image.fromarray(render(1, 3, 32)).save(images / "a.jpg")
    _png(images / "b.png", render(2, 3, 32))
    for name in ("a", "b"):
        _png(masks / f"{name}.png", np.full((32, 32), 255, np.uint8))
    error = _one_error(_invoke(["sample", "telea", "--images", str(images), "--masks", str(masks), "--out", str(tmp_path / "out")]))
    assert "a.jpg" in error and "a.png" in error
    assert not (tmp_path / "out").exists()
    error = _one_error(_invoke(["train", "conv-l1", "--data", str(images), "--preset", "tiny", "--steps", "1", "--out", str(tmp_path / "run")]))
    assert "a.jpg" in error and "a.png" in error
    (images / "a.jpg").unlink()
    Image.fromarray(render(1, 3, 32)).save(images / "sub-a.jpg")  # other names are fine
    from zoo.imageio import list_images

    assert [p.name for p in list_images(images)] == ["a.png", "b.png", "sub-a.jpg"]


def test_duplicate_stems_differing_in_case_of_the_suffix(tmp_path):
    from zoo.errors import ZooError
    from zoo.imageio import list_images

    _png(tmp_path / "x.png", np.zeros((4, 4, 3), np.uint8))
    (tmp_path / "x.PNG").write_bytes((tmp_path / "x.png").read_bytes())
    with pytest.raises(ZooError, match=r"x\.PNG and .*x\.png|x\.png and .*x\.PNG"):
        list_images(tmp_path)


def _exif_png(path: Path, arr: np.ndarray, orientation: int) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, exif=exif)


def test_exif_orientation_is_applied_to_images_and_masks(tmp_path):
    from zoo.imageio import image_size, load_image, load_mask, readable_size

    stored = np.zeros((20, 30, 3), np.uint8)  # stored 30 wide, 20 tall; red at the stored top-left
    stored[0, 0] = (255, 0, 0)
    _exif_png(tmp_path / "img.png", stored, 6)  # 6: the viewer turns it 90 degrees clockwise
    img = load_image(tmp_path / "img.png")
    assert img.shape == (3, 30, 20)  # shown 20 wide, 30 tall
    red = (img[0] > 0.9) & (img[1] < -0.9)
    assert red.nonzero().tolist() == [[0, 19]]  # the stored top-left is shown top-right
    assert readable_size(tmp_path / "img.png") == (20, 30) == image_size(tmp_path / "img.png")
    from zoo.metrics.inception import read_uint8  # what FID / IDS read

    assert read_uint8(tmp_path / "img.png").shape == (3, 30, 20) and read_uint8(tmp_path / "img.png")[0, 0, 19] == 255
    m = np.zeros((20, 30), np.uint8)
    m[0, :5] = 255  # a hole along the stored top edge: the shown right edge
    _exif_png(tmp_path / "mask.png", m, 6)
    mask = load_mask(tmp_path / "mask.png")[0]
    assert mask.shape == (30, 20)
    assert mask[:5, 19].tolist() == [1.0] * 5 and mask.sum() == 5
    _exif_png(tmp_path / "flip.png", stored, 2)  # 2: mirrored left-right, same size
    assert load_image(tmp_path / "flip.png")[0, 0, 29] > 0.9


def test_a_hole_drawn_on_the_photo_as_shown_lands_there(tmp_path):
    """The user story: a phone photo (EXIF-rotated) and a mask drawn on it as displayed."""
    from zoo.imageio import load_image

    rng = np.random.default_rng(0)
    stored = rng.integers(0, 255, (32, 48, 3), dtype=np.uint8)
    _exif_png(tmp_path / "images/photo.png", stored, 8)  # shown 32 wide, 48 tall
    m = np.zeros((48, 32), np.uint8)
    m[10:20, 5:15] = 255
    _png(tmp_path / "masks/photo.png", m)
    result = _invoke(["sample", "telea", "--images", str(tmp_path / "images"), "--masks", str(tmp_path / "masks"), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    out = load_image(tmp_path / "out/photo.png")
    shown = load_image(tmp_path / "images/photo.png")
    assert out.shape == (3, 48, 32)
    known = torch_from(m == 0)
    assert (out[:, known] == shown[:, known]).all()


def torch_from(arr: np.ndarray):
    import torch

    return torch.from_numpy(arr)


def test_tif_and_gif_are_read_and_other_image_types_are_named(tmp_path):
    import warnings

    from zoo.data import render
    from zoo.errors import ZooWarning
    from zoo.imageio import list_images, load_image, load_mask

    Image.fromarray(render(0, 3, 32)).save(tmp_path / "a.tif")
    Image.fromarray(render(1, 3, 32)).save(tmp_path / "b.tiff")
    Image.fromarray(render(2, 3, 32)).convert("P").save(tmp_path / "c.gif")
    (tmp_path / "d.heic").write_bytes(b"not read")
    (tmp_path / "notes.json").write_text("{}")  # not an image type: no word about it
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        files = list_images(tmp_path)
    assert [p.name for p in files] == ["a.tif", "b.tiff", "c.gif"]
    messages = [str(w.message) for w in caught if isinstance(w.message, ZooWarning)]
    assert len(messages) == 1 and ".heic" in messages[0] and "d.heic" in messages[0]
    assert load_image(tmp_path / "a.tif").shape == (3, 32, 32)
    expected = load_image(tmp_path / "a.tif")
    assert (load_image(tmp_path / "a.tif") == expected).all()
    assert load_image(tmp_path / "c.gif").shape == (3, 32, 32)
    Image.fromarray(np.where(np.arange(32)[None, :] < 10, 255, 0).astype(np.uint8).repeat(32, 0)).save(tmp_path / "m.gif")
    assert load_mask(tmp_path / "m.gif").sum() == 10 * 32
    f = (np.arange(32 * 32, dtype=np.float32).reshape(32, 32) / (32 * 32 - 1))  # a float TIFF in [0, 1]
    Image.fromarray(f, mode="F").save(tmp_path / "f.tif")
    img = load_image(tmp_path / "f.tif")
    assert img.min() == -1.0 and img.max() == 1.0


def test_data_prepare_reads_tif_and_gif(tmp_path):
    from zoo.data import render

    src = tmp_path / "src"
    src.mkdir()
    for i, ext in enumerate(("png", "tif", "gif", "jpg")):
        Image.fromarray(render(i, 3, 40)).save(src / f"im{i}.{ext}")
    result = _invoke(["data", "prepare", str(src), "--layout", "folder", "--size", "32", "--val-count", "1", "--test-count", "1", "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "out/images").iterdir()) == ["im0.png", "im1.png", "im2.png", "im3.png"]


@pytest.mark.parametrize("flag,value", [("--val-count", "-1"), ("--test-count", "-5"), ("--limit", "0"), ("--limit", "-1")])
def test_data_prepare_refuses_counts_that_make_splits_overlap(tmp_path, flag, value):
    from zoo.data import render

    src = tmp_path / "src"
    for i in range(6):
        _png(src / f"im{i}.png", render(i, 3, 32))
    before = _snapshot(tmp_path)
    error = _one_error(_invoke(["data", "prepare", str(src), "--layout", "folder", "--size", "32", flag, value, "--out", str(tmp_path / "out")]))
    assert flag in error and value in error
    assert _snapshot(tmp_path) == before


def test_data_prepare_splits_are_disjoint(tmp_path):
    import json

    from zoo.data import render

    src = tmp_path / "src"
    for i in range(9):
        _png(src / f"im{i}.png", render(i, 3, 32))
    assert _invoke(["data", "prepare", str(src), "--layout", "folder", "--size", "32", "--val-count", "0", "--test-count", "100", "--out", str(tmp_path / "out")]).exit_code == 0
    manifest = json.loads((tmp_path / "out/manifest.json").read_text())
    assert all(len(f["split"]) == 1 for f in manifest["files"])
    assert manifest["counts"] == {"train": 6, "val": 0, "test": 3}


# -- --devices ------------------------------------------------------------------------------------


def _devices_rows(tmp_path: Path) -> list[list[str]]:
    return [
        ["train", "conv-l1", "--data", "shapes", "--preset", "tiny", "--steps", "1", "--device", "cpu", "--out", str(tmp_path / "run")],
        ["sample", "telea", "--images", str(tmp_path / "good/images"), "--masks", str(tmp_path / "good/masks"), "--device", "cpu", "--out", str(tmp_path / "out")],
        COMPARE + ["--methods", "telea", "--device", "cpu", "--out", str(tmp_path / "cmp")],
    ]


@pytest.mark.parametrize("which", ["train", "sample", "compare"])
def test_devices_above_the_cores_is_refused_before_any_process(workspace, tmp_path, which, monkeypatch):
    import shutil

    from zoo.device import cpu_cores

    shutil.copytree(workspace / "good", tmp_path / "good")
    args = {r[0]: r for r in _devices_rows(tmp_path)}[which]
    started = []
    import subprocess

    monkeypatch.setattr(subprocess.Popen, "__init__", lambda self, *a, **k: started.append(a) or (_ for _ in ()).throw(AssertionError("a process started")))
    before = _snapshot(tmp_path)
    too_many = cpu_cores() + 1
    error = _one_error(_invoke(args + ["--devices", str(too_many)]))
    assert f"--devices {too_many}" in error and f"{cpu_cores()} CPU core(s)" in error and "valid choices: 1 ..." in error
    assert not started and _snapshot(tmp_path) == before


def test_devices_bounded_by_memory_on_a_cpu(monkeypatch):
    from zoo import device
    from zoo.errors import ZooError

    monkeypatch.setattr(device, "cpu_cores", lambda: 64)
    monkeypatch.setattr(device, "available_memory_gib", lambda: 3.5)
    assert device.max_devices("cpu")[0] == 3
    device.check_devices(3, "cpu")
    with pytest.raises(ZooError, match=r"--devices 4: this machine has 64 CPU core\(s\) and 3.5 GiB .* at most 3 process"):
        device.check_devices(4, "cpu")
    monkeypatch.setattr(device, "available_memory_gib", lambda: 0.2)
    device.check_devices(1, "cpu")  # one process is always allowed
    with pytest.raises(ZooError, match="at most 1 process"):
        device.check_devices(2, "cpu")
    with pytest.raises(ZooError, match="at least 1"):
        device.check_devices(0, "cpu")


def test_devices_bounded_by_the_gpus(monkeypatch):
    import torch

    from zoo import device
    from zoo.errors import ZooError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    device.check_devices(2, "cuda")
    with pytest.raises(ZooError, match=r"--devices 3: 2 CUDA GPU\(s\) are visible"):
        device.check_devices(3, "cuda")
