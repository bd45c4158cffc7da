"""``zoo serve``'s HTTP API through the ASGI test client: every endpoint, bad inputs that leave
nothing behind, a full queue, cancel, two methods in one job, progress, and results that are
byte-equal to ``zoo sample``'s files (also when repeated from the zip's ``run.json``)."""

from __future__ import annotations

import ast
import io
import json
import socket
import tempfile
import threading
import time
import zipfile
from dataclasses import make_dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from zoo import MethodSpec, SampleOutput, hookimpl
from zoo.plugins import get_manager

fastapi = pytest.importorskip("fastapi", reason="zoo serve needs fastapi (python -m pip install -e '.[test]')")
from fastapi.testclient import TestClient  # noqa: E402

from zoo.serve import Limits, ServeSettings, create_app  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _png(arr: np.ndarray, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt, **kw)
    return buf.getvalue()


def _picture(h: int = 40, w: int = 48) -> np.ndarray:
    from zoo.data import render

    return np.ascontiguousarray(render(3, 11, max(h, w))[:h, :w])


def _mask(h: int = 40, w: int = 48, box=(8, 24, 10, 30)) -> np.ndarray:
    m = np.zeros((h, w), np.uint8)
    m[box[0]:box[1], box[2]:box[3]] = 255
    return m


@pytest.fixture
def conv_ckpt(tmp_path) -> Path:
    """A tiny conv-l1 checkpoint (random weights: the path, not the quality, is under test)."""
    from zoo.checkpoint import save_checkpoint
    from zoo.config import resolve_config
    from zoo.provenance import checkpoint_meta

    manager = get_manager()
    config, preset = resolve_config(manager.method("conv-l1"), "tiny", None)
    torch.manual_seed(0)
    model = manager.call("zoo_build_model", "conv-l1", config=config)
    path = tmp_path / "runs" / "conv" / "model.safetensors"
    return save_checkpoint(path, model.state_dict(), checkpoint_meta("conv-l1", config, preset, 0, {"kind": "test"}))


class SlowMethod:
    """`slow-net`: a network called up to 400 times under a progress bar, 20 ms apart, until
    ``release`` is set: a long method to fill the queue, watch progress and cancel."""

    release = threading.Event()

    @hookimpl
    def zoo_register_methods(self):
        cfg = make_dataclass("SlowCfg", [])
        return [MethodSpec(n, "test method", "classical", cfg, {"default": {}}, needs_training=False) for n in ("slow-net", "broken-net")]

    @hookimpl
    def zoo_build_model(self, method, config):
        return torch.nn.Conv2d(3, 3, 1) if method in ("slow-net", "broken-net") else None

    @hookimpl
    def zoo_sample(self, method, model, config, images, masks, generator):
        if method == "broken-net":
            raise RuntimeError("out of cheese\nsecond line")
        if method != "slow-net":
            return None
        from tqdm.auto import tqdm

        n = 0
        for _ in tqdm(range(400), desc="slow-net"):
            model(images)
            n += 1
            if SlowMethod.release.wait(0.02):
                break
        return SampleOutput(images, {"nfe": n})


@pytest.fixture
def slow_method():
    SlowMethod.release = threading.Event()
    get_manager().register(SlowMethod(), name="slowtest")
    yield SlowMethod
    SlowMethod.release.set()


@pytest.fixture
def no_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path / "cache"))


def _submit(client, image: bytes, mask: bytes, methods: str, name: str = "pic.png", **fields):
    data = {"methods": methods, **{k: str(v) for k, v in fields.items()}}
    return client.post("/api/jobs", files={"image": (name, image, "application/octet-stream"), "mask": ("mask.png", mask, "image/png")}, data=data)


def _wait(client, job_id: str, until=lambda j: j["status"] in ("done", "cancelled", "error"), timeout: float = 60.0) -> dict:
    end = time.time() + timeout
    while time.time() < end:
        job = client.get(f"/api/jobs/{job_id}").json()
        if until(job):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not get there in {timeout} s: {job}")


def _jobs_on_disk(app) -> list[Path]:
    return sorted((app.state.server.folder / "jobs").iterdir())


def test_two_methods_in_one_job_equal_zoo_sample_byte_for_byte_and_the_zip_repeats_them(tmp_path, cli, conv_ckpt, no_cache, monkeypatch):
    images, masks = tmp_path / "in" / "images", tmp_path / "in" / "masks"
    images.mkdir(parents=True)
    masks.mkdir(parents=True)
    Image.fromarray(_picture()).save(images / "photo.jpg", quality=90)  # a JPEG: the server decodes it as zoo sample does
    Image.fromarray(_mask()).save(masks / "photo.png")
    app = create_app(ServeSettings(checkpoints=[str(conv_ckpt)]))
    with TestClient(app) as client:
        offered = client.get("/api/methods").json()["methods"]
        assert {m["name"] for m in offered} >= {"telea", "conv-l1"}
        assert [c["name"] for m in offered if m["name"] == "conv-l1" for c in m["checkpoints"]] == ["conv"]  # runs/conv/model.safetensors
        r = _submit(client, (images / "photo.jpg").read_bytes(), (masks / "photo.png").read_bytes(), "telea,conv-l1", "photo.jpg", seed=5, samples=2)
        assert r.status_code == 202, r.text
        job = _wait(client, r.json()["id"])
        assert job["status"] == "done", job
        assert [run["label"] for run in job["runs"]] == ["telea", "conv-l1@conv"]
        served = {}
        for run in job["runs"]:
            assert run["status"] == "done" and len(run["results"]) == 2
            assert run["peak_memory_bytes"] is not None
            for res in run["results"]:
                got = client.get(res["url"])
                assert got.status_code == 200 and got.headers["content-type"] == "image/png"
                served[(run["method"], res["file"])] = got.content
                assert res["seconds"] >= 0
        assert job["runs"][1]["results"][0]["network_calls"] == 1 and job["runs"][0]["results"][0]["network_calls"] == 0
        ckpts = client.get("/api/checkpoints").json()
        assert ckpts["checkpoints"] == [{"name": "conv", "method": "conv-l1", "source": "--checkpoint", "loaded": True}]
        archive = zipfile.ZipFile(io.BytesIO(client.get(job["zip"]).content))
        inputs_png = client.get(job["image"]["url"]).content
    for method, ckpt in (("telea", None), ("conv-l1", conv_ckpt)):
        out = tmp_path / f"sample-{method}"
        res = cli("sample", method, *(["--checkpoint", ckpt] if ckpt else []), "--images", images, "--masks", masks, "--out", out, "--seed", 5, "--num-samples", 2)
        assert res.exit_code == 0, res.output
        for k in (0, 1):
            assert (out / f"photo_s{k}.png").read_bytes() == served[(method, f"photo_s{k}.png")], (method, k)
    # the zip: image, mask, results and a run.json whose commands repeat the results exactly
    names = set(archive.namelist())
    assert {"images/photo.png", "masks/photo.png", "run.json", "results/telea/photo_s0.png", "results/conv-l1@conv/photo_s1.png"} <= names
    assert archive.read("images/photo.png") == inputs_png
    unpacked = tmp_path / "unzipped"
    archive.extractall(unpacked)
    info = json.loads((unpacked / "run.json").read_text())
    assert info["seed"] == 5 and info["num_samples"] == 2 and len(info["runs"]) == 2
    monkeypatch.chdir(unpacked)
    for run in info["runs"]:
        assert run["command"][:2] == ["zoo", "sample"]
        res = cli(*run["command"][1:])
        assert res.exit_code == 0, res.output
        out = Path(run["command"][run["command"].index("--out") + 1])
        for rel in run["results"]:
            assert (unpacked / out / Path(rel).name).read_bytes() == (unpacked / rel).read_bytes(), rel
    assert not app.state.server.folder.exists()  # removed when the app stopped


def test_known_pixels_are_exact_and_the_hole_content_does_not_matter(no_cache):
    pic, mask = _picture(), _mask()
    other = pic.copy()
    other[mask > 0] = 255 - other[mask > 0]  # a different hole content
    app = create_app(ServeSettings(methods=["telea"]))
    with TestClient(app) as client:
        outs = []
        for arr in (pic, other):
            job = _wait(client, _submit(client, _png(arr), _png(mask), "telea", seed=1).json()["id"])
            outs.append(np.asarray(Image.open(io.BytesIO(client.get(job["runs"][0]["results"][0]["url"]).content))))
            stored_mask = np.asarray(Image.open(io.BytesIO(client.get(job["mask"]["url"]).content)))
            assert np.array_equal(stored_mask, mask)  # binary, white = hole, as uploaded
    known = mask == 0
    assert np.array_equal(outs[0][known], pic[known])
    assert np.array_equal(outs[0], outs[1])  # hole pixels were erased before telea saw them
    assert not np.array_equal(outs[0][~known], pic[~known])



def test_a_photo_with_exif_rotation_takes_a_mask_drawn_on_it_as_displayed(no_cache):
    """A browser shows a JPEG with its EXIF orientation applied, and `zoo sample` reads it so:
    the mask brushed on the displayed photo (upright size) is accepted and the known pixels of
    the result equal the upright photo."""
    from PIL import ImageOps

    upright = _picture(40, 48)  # what the viewer sees: 48 wide, 40 high
    stored = np.ascontiguousarray(np.rot90(upright, k=1))  # the sensor's pixels, 40 wide, 48 high
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    jpeg = _png(stored, "JPEG", quality=95, exif=exif.tobytes())
    shown = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(jpeg))).convert("RGB"))
    assert shown.shape == (40, 48, 3)
    mask = _mask(40, 48)
    app = create_app(ServeSettings(methods=["telea"]))
    with TestClient(app) as client:
        resp = _submit(client, jpeg, _png(mask), "telea", name="photo.jpg", seed=1)
        assert resp.status_code == 202, resp.text  # queued
        job = _wait(client, resp.json()["id"])
        out = np.asarray(Image.open(io.BytesIO(client.get(job["runs"][0]["results"][0]["url"]).content)))
    known = mask == 0
    assert out.shape == (40, 48, 3) and np.array_equal(out[known], shown[known])


BAD = [
    ("corrupt image", lambda p, m: (_png(p)[:60] + b"\0" * 200, _png(m), "telea", {}), 400, "damaged"),
    ("not an image", lambda p, m: (b"#!/bin/sh\nrm -rf /\n", _png(m), "telea", {}), 400, "not an image"),
    ("mask of another size", lambda p, m: (_png(p), _png(_mask(20, 20, (2, 8, 2, 8))), "telea", {}), 400, "the mask is 20x20 but the image is 48x40"),
    ("unknown method", lambda p, m: (_png(p), _png(m), "telea,nope", {}), 400, "unknown method 'nope'; valid choices: conv-l1, telea"),
    ("checkpoint not offered", lambda p, m: (_png(p), _png(m), "conv-l1@other", {}), 400, "valid choices: conv-l1@conv"),
    ("a path as checkpoint", lambda p, m: (_png(p), _png(m), "conv-l1@/etc/passwd", {}), 400, "not offered"),
    ("100 % hole", lambda p, m: (_png(p), _png(np.full_like(m, 255)), "telea", {}), 400, "100 % hole"),
    ("no hole", lambda p, m: (_png(p), _png(np.zeros_like(m)), "telea", {}), 400, "no hole"),
    ("no method", lambda p, m: (_png(p), _png(m), "", {}), 400, "choose at least one method"),
    ("bad seed", lambda p, m: (_png(p), _png(m), "telea", {"seed": "x1"}), 400, "seed must be a whole number"),
    ("too many samples", lambda p, m: (_png(p), _png(m), "telea", {"samples": 99}), 400, "samples must be between 1 and 8"),
    ("over the pixel limit", lambda p, m: (_png(_picture(80, 100)), _png(_mask(80, 100)), "telea", {}), 413, "100x80 pixels, over the limit of 64x64"),
    ("decompression bomb", lambda p, m: (_bomb(), _png(m), "telea", {}), 413, "refused as a decompression bomb"),
    ("over the size limit", lambda p, m: (_png((np.random.default_rng(0).random((320, 320, 3)) * 255).astype(np.uint8)), _png(m), "telea", {}), 413, "MB, over the limit of"),
]


def _bomb() -> bytes:
    """A 14000x14000 1-bit PNG: about 25 kB on disk, 196 megapixels decoded (over twice PIL's MAX_IMAGE_PIXELS)."""
    buf = io.BytesIO()
    Image.new("1", (14000, 14000)).save(buf, format="PNG")
    return buf.getvalue()


def test_bad_inputs_get_one_clear_line_and_leave_nothing(conv_ckpt, no_cache):
    limits = Limits(max_upload_bytes=200_000, max_width=64, max_height=64)
    app = create_app(ServeSettings(checkpoints=[str(conv_ckpt)], limits=limits))
    pic, mask = _picture(), _mask()
    with TestClient(app) as client:
        for name, make, status, text in BAD:
            image, msk, methods, fields = make(pic, mask)
            r = _submit(client, image, msk, methods, **fields)
            assert r.status_code == status, (name, r.status_code, r.text)
            message = r.json()["error"]
            assert text in message and "\n" not in message, (name, message)
            assert _jobs_on_disk(app) == [], name
        r = client.post("/api/jobs", data={"methods": "telea"}, files={"image": ("a.png", _png(pic), "image/png")})
        assert r.status_code == 400 and "give both files" in r.json()["error"]
        r = client.post("/api/jobs", json={"methods": "telea"})
        assert r.status_code == 400 and "multipart/form-data" in r.json()["error"]
        assert client.get("/api/jobs/nope").status_code == 404 and "no job 'nope'" in client.get("/api/jobs/nope").json()["error"]
        assert client.post("/api/jobs/nope/cancel").status_code == 404
        assert _jobs_on_disk(app) == [] and app.state.server.jobs == {}
        ok = _submit(client, _png(pic), _png(mask), "telea")  # the same server still takes a good job
        assert ok.status_code == 202 and _wait(client, ok.json()["id"])["status"] == "done"


def test_a_large_upload_never_touches_the_system_temp_folder(no_cache, tmp_path, monkeypatch):
    """Starlette spools form files over 1 MB to the system's temporary folder; the server keeps
    them in memory (the request is capped first)."""
    app = create_app(ServeSettings(methods=["telea"]))
    big = _png((np.random.default_rng(1).random((700, 700, 3)) * 255).astype(np.uint8))
    assert len(big) > 1_200_000
    system_tmp = tmp_path / "system-tmp"
    system_tmp.mkdir()
    with TestClient(app) as client:
        monkeypatch.setattr(tempfile, "tempdir", str(system_tmp))
        r = _submit(client, big, _png(_mask(700, 700, (100, 200, 100, 300))), "telea")
        assert r.status_code == 202, r.text
        assert list(system_tmp.iterdir()) == []
        assert _wait(client, r.json()["id"])["status"] == "done"


def test_a_full_queue_is_429_and_cancel_stops_a_running_and_a_waiting_job(slow_method, no_cache):
    app = create_app(ServeSettings(methods=["slow-net", "telea"], max_queue=1))
    pic, mask = _png(_picture()), _png(_mask())
    with TestClient(app) as client:
        first = _submit(client, pic, mask, "slow-net,telea").json()
        running = _wait(client, first["id"], until=lambda j: j["runs"][0]["progress"]["step"] >= 1)
        progress = running["runs"][0]["progress"]
        assert running["status"] == "running" and progress["phase"] == "slow-net" and progress["total"] == 400 and 1 <= progress["step"] < 400
        assert progress["network_calls"] >= progress["step"]  # the bar is redrawn every 0.1 s; calls are counted live
        second = _submit(client, pic, mask, "telea")
        assert second.status_code == 202 and second.json()["queue_position"] == 1
        third = _submit(client, pic, mask, "telea")
        assert third.status_code == 429
        assert third.json()["error"] == "the queue is full (1 job(s) waiting, --max-queue 1); try again when a job has finished"
        assert len(_jobs_on_disk(app)) == 2
        waiting = client.post(f"/api/jobs/{second.json()['id']}/cancel").json()
        assert waiting["status"] == "cancelled" and waiting["runs"][0]["status"] == "cancelled"
        client.post(f"/api/jobs/{first['id']}/cancel")
        done = _wait(client, first["id"], timeout=20)
        assert done["status"] == "cancelled"
        assert [r["status"] for r in done["runs"]] == ["cancelled", "cancelled"]  # stopped mid-method; telea never started
        assert done["runs"][0]["progress"]["step"] < 400 and done["runs"][0]["results"] == []
        again = _submit(client, pic, mask, "telea")  # the worker is free again
        assert again.status_code == 202 and _wait(client, again.json()["id"])["status"] == "done"


def test_a_failing_method_shows_its_error_and_the_others_still_run(slow_method, no_cache):
    app = create_app(ServeSettings(methods=["broken-net", "telea"]))
    with TestClient(app) as client:
        job = _wait(client, _submit(client, _png(_picture()), _png(_mask()), "broken-net,telea").json()["id"])
    assert job["status"] == "done"
    broken, telea = job["runs"]
    assert broken["status"] == "error" and broken["error"] == "RuntimeError: out of cheese" and broken["results"] == []
    assert telea["status"] == "done" and len(telea["results"]) == 1


def test_models_stay_loaded_in_an_lru_of_max_models(conv_ckpt, no_cache, monkeypatch):
    from zoo.serve import jobs

    built = []
    real = jobs.build_model
    monkeypatch.setattr(jobs, "build_model", lambda m, c: built.append(m) or real(m, c))
    app = create_app(ServeSettings(checkpoints=[str(conv_ckpt)], max_models=1))
    pic, mask = _png(_picture()), _png(_mask())
    with TestClient(app) as client:
        for methods in ("conv-l1", "conv-l1", "telea", "conv-l1"):
            assert _wait(client, _submit(client, pic, mask, methods).json()["id"])["status"] == "done"
        assert client.get("/api/checkpoints").json()["loaded_models"] == [{"method": "conv-l1", "checkpoint": "conv", "device": "cpu"}]
    assert built == ["conv-l1", "telea", "conv-l1"]  # the second conv-l1 job reused the loaded model; telea pushed it out


def test_old_finished_jobs_are_dropped_with_their_files(no_cache):
    app = create_app(ServeSettings(methods=["telea"], keep_jobs=1))
    pic, mask = _png(_picture()), _png(_mask())
    with TestClient(app) as client:
        first = _wait(client, _submit(client, pic, mask, "telea").json()["id"])
        second = _wait(client, _submit(client, pic, mask, "telea").json()["id"])
        assert client.get(f"/api/jobs/{first['id']}").status_code == 404
        assert client.get(second["runs"][0]["results"][0]["url"]).status_code == 200
        assert [p.name for p in _jobs_on_disk(app)] == [second["id"]]


def test_registry_cache_checkpoints_are_offered_by_name(conv_ckpt, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    (cache / "checkpoints").mkdir(parents=True)
    (cache / "checkpoints" / "conv-l1-mine.safetensors").write_bytes(conv_ckpt.read_bytes())
    (cache / "checkpoints" / "broken.safetensors").write_bytes(b"not a checkpoint")
    monkeypatch.setenv("ZOO_CACHE_DIR", str(cache))
    app = create_app(ServeSettings())
    with TestClient(app) as client:
        conv = next(m for m in client.get("/api/methods").json()["methods"] if m["name"] == "conv-l1")
        assert conv["checkpoints"] == [{"name": "conv-l1-mine", "source": "cache"}]
        r = _submit(client, _png(_picture()), _png(_mask()), "conv-l1")
        assert _wait(client, r.json()["id"])["runs"][0]["checkpoint"] == "conv-l1-mine"


def test_the_page_and_its_assets_are_served_from_the_package_with_no_cdn(no_cache):
    app = create_app(ServeSettings(methods=["telea"]))
    with TestClient(app) as client:
        page = client.get("/")
        assert page.status_code == 200 and "<canvas" in page.text
        for asset in ("/static/app.js", "/static/style.css"):
            assert client.get(asset).status_code == 200
        spec = client.get("/api/openapi.json").json()
        assert {"/api/methods", "/api/checkpoints", "/api/jobs", "/api/jobs/{job_id}", "/api/jobs/{job_id}/cancel", "/api/jobs/{job_id}/zip"} <= set(spec["paths"])
        assert "multipart/form-data" in spec["paths"]["/api/jobs"]["post"]["requestBody"]["content"]
    static = ROOT / "zoo" / "serve" / "static"
    for path in static.iterdir():
        text = path.read_text()
        assert "http://" not in text and "https://" not in text and "//cdn" not in text, path.name


def test_settings_errors_are_one_line(cli, tmp_path, no_cache):
    r = cli("serve", "--port", 0, "--methods", "telea,nope")
    assert r.exit_code == 2 and "unknown method 'nope'" in r.output and len(r.output.strip().splitlines()) == 1
    r = cli("serve", "--port", 0, "--checkpoint", tmp_path / "missing.safetensors")
    assert r.exit_code == 2 and "missing.safetensors: no such file" in r.output
    r = cli("serve", "--port", 0, "--methods", "conv-l1")
    assert r.exit_code == 2 and "needs a checkpoint" in r.output
    r = cli("serve", "--port", 0, "--max-pixels", "big")
    assert r.exit_code == 2 and "WIDTHxHEIGHT" in r.output


def test_a_non_loopback_host_warns_in_one_line_and_the_folder_goes_on_exit(cli, no_cache, monkeypatch):
    import uvicorn

    seen = {}

    def serve_briefly(self, sockets=None):  # stands in for the event loop: the app is built, the socket bound
        seen["folder"] = self.config.app.state.server.folder
        seen["exists"] = seen["folder"].is_dir()
        seen["address"] = sockets[0].getsockname()

    monkeypatch.setattr(uvicorn.Server, "run", serve_briefly)
    r = cli("serve", "--host", "0.0.0.0", "--port", 0, "--methods", "telea")
    assert r.exit_code == 0, r.output
    lines = r.output.strip().splitlines()
    assert lines[0] == "Warning: --host 0.0.0.0 makes this server reachable from other machines; it has no authentication"
    assert lines[1].startswith(f"zoo serve: http://0.0.0.0:{seen['address'][1]}/  (1 methods: telea;")
    assert lines[2] == f"temporary files: {seen['folder']} (removed on exit)" and lines[-1] == "zoo serve: stopped; temporary files removed"
    assert seen["exists"] and not seen["folder"].exists()
    r = cli("serve", "--port", 0, "--methods", "telea")  # loopback: no warning
    assert r.exit_code == 0 and "Warning" not in r.output


def test_a_port_in_use_is_one_line_and_exit_2(cli, no_cache):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        r = cli("serve", "--port", port, "--methods", "telea")
    assert r.exit_code == 2
    assert r.output.strip() == f"Error: port {port} on 127.0.0.1 is in use; stop what holds it or pick another with --port (0: any free port)"


def test_nothing_in_zoo_imports_zoo_serve():
    found = []
    for path in (ROOT / "zoo").rglob("*.py"):
        if "serve" in path.relative_to(ROOT / "zoo").parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            found += [f"{path.name} imports {n}" for n in names if n == "zoo.serve" or n.startswith("zoo.serve.")]
    assert not found, found
