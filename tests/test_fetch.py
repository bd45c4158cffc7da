"""``zoo fetch NAME`` against a local HTTP server on 127.0.0.1 that the test starts (issue 17):
a good file (downloaded once, verified, imported), a zip archive, a wrong checksum (the file is
deleted), an interrupted download (resumed with a Range request), offline and no server (one
line naming the URL and where to put the file). Nothing leaves the loopback interface."""

from __future__ import annotations

import hashlib
import io
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch
import yaml

from zoo.checkpoint import load_model
from zoo.diffusion.guided_unet import GuidedUNet
from zoo_plugins.repaint.convert import preset_config
from zoo_plugins.repaint.model import unet_config


class Server:
    """Serves ``files`` (path -> bytes) with Range support; paths under /cut/ send only the
    first half of the body on their first request, then close the connection."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files, self.requests, self.cut_done = files, [], set()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                outer.requests.append((self.path, self.headers.get("Range")))
                body = outer.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                start = 0
                rng = self.headers.get("Range")
                if rng and rng.startswith("bytes="):
                    start = int(rng[6:].split("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                if self.path.startswith("/cut/") and self.path not in outer.cut_done:
                    outer.cut_done.add(self.path)
                    self.wfile.write(body[start : start + (len(body) - start) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body[start:])

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def tiny_guided_bytes() -> bytes:
    torch.manual_seed(0)
    net = GuidedUNet(unet_config(preset_config("tiny")))
    buf = io.BytesIO()
    torch.save({k: torch.randn_like(v) * 0.05 for k, v in net.state_dict().items()}, buf)
    return buf.getvalue()


@pytest.fixture
def site(tmp_path, monkeypatch):
    pt = tiny_guided_bytes()
    zbuf = io.BytesIO()
    with zipfile.ZipFile(zbuf, "w") as z:
        z.writestr("celeba_tiny.pt", pt)
    files = {"/tiny.pt": pt, "/tiny.zip": zbuf.getvalue(), "/cut/tiny.pt": pt}
    with Server(files) as server:
        reg = yaml.safe_load((Path(__file__).parents[1] / "zoo" / "registry.yaml").read_text())
        good = hashlib.sha256(pt).hexdigest()
        common = {"format": "guided-diffusion", "license": "MIT", "resolution": 32, "preset": "tiny"}
        reg["methods"]["repaint"]["checkpoints"] = {
            "tiny-good": {"url": server.url + "/tiny.pt", "sha256": good, **common},
            "tiny-zip": {"url": server.url + "/tiny.zip", "sha256": "unknown", "sha256_reason": "test", **common},
            "tiny-badsum": {"url": server.url + "/tiny.pt", "sha256": "0" * 64, **common},
            "tiny-cut": {"url": server.url + "/cut/tiny.pt", "sha256": good, **common},
            "tiny-gone": {"url": "http://127.0.0.1:9/tiny.pt", "sha256": "unknown", "sha256_reason": "test", **common},  # discard port: nothing listens
        }
        (tmp_path / "registry.yaml").write_text(yaml.safe_dump(reg))
        monkeypatch.setenv("ZOO_REGISTRY", str(tmp_path / "registry.yaml"))
        monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path / "cache"))
        monkeypatch.delenv("ZOO_OFFLINE", raising=False)
        yield server, tmp_path / "cache"


def _one_error(r) -> str:
    lines = [x for x in r.output.splitlines() if x.strip() and not x.startswith("\r")]
    assert r.exit_code == 2 and "Traceback" not in r.output, r.output
    assert lines[-1].startswith("Error:") and sum(x.startswith("Error:") for x in lines) == 1, r.output
    return lines[-1]


def test_good_file_is_downloaded_once_verified_and_imported(cli, site):
    server, cache = site
    r = cli("fetch", "tiny-good")
    assert r.exit_code == 0, r.output
    ckpt = cache / "checkpoints" / "repaint-tiny-good.safetensors"
    assert f"checkpoint: {ckpt}" in r.output
    model, cfg, meta = load_model(ckpt, "repaint")
    assert meta.preset == "tiny" and meta.provenance["url"].endswith("/tiny.pt") and meta.provenance["registry_sha256"] == meta.provenance["sha256"]
    assert (cache / "downloads" / "repaint" / "tiny-good" / "tiny.pt").is_file()
    n = len(server.requests)
    r = cli("fetch", "repaint/tiny-good")  # cached: no second download
    assert r.exit_code == 0 and len(server.requests) == n


def test_zip_archive_is_unpacked_and_imported(cli, site, tmp_path):
    server, cache = site
    r = cli("fetch", "tiny-zip", "--out", tmp_path / "z.safetensors")
    assert r.exit_code == 0, r.output
    assert (cache / "downloads" / "repaint" / "tiny-zip" / "tiny.zip.unpacked" / "celeba_tiny.pt").is_file()
    load_model(tmp_path / "z.safetensors", "repaint")
    r = cli("fetch", "tiny-zip", "--out", tmp_path / "z.safetensors")
    assert "exists" in _one_error(r)


def test_wrong_checksum_deletes_the_file(cli, site):
    server, cache = site
    err = _one_error(cli("fetch", "tiny-badsum"))
    assert "sha256" in err and "0" * 64 in err and "deleted" in err
    folder = cache / "downloads" / "repaint" / "tiny-badsum"
    assert not any(folder.iterdir()) if folder.exists() else True
    assert not (cache / "checkpoints").exists()


def test_interrupted_download_resumes_with_a_range_request(cli, site):
    server, cache = site
    err = _one_error(cli("fetch", "tiny-cut"))
    assert "interrupted at" in err and "run the command again to resume" in err
    part = cache / "downloads" / "repaint" / "tiny-cut" / "tiny.pt.part"
    have = part.stat().st_size
    assert 0 < have < len(server.files["/cut/tiny.pt"])
    r = cli("fetch", "tiny-cut")
    assert r.exit_code == 0, r.output
    assert server.requests[-1] == ("/cut/tiny.pt", f"bytes={have}-")
    assert not part.exists() and (cache / "downloads" / "repaint" / "tiny-cut" / "tiny.pt").read_bytes() == server.files["/cut/tiny.pt"]
    load_model(cache / "checkpoints" / "repaint-tiny-cut.safetensors", "repaint")


def test_offline_and_no_server_say_where_to_put_the_file(cli, site, monkeypatch):
    server, cache = site
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    err = _one_error(cli("fetch", "tiny-good"))
    assert server.url + "/tiny.pt" in err and str(cache / "downloads" / "repaint" / "tiny-good" / "tiny.pt") in err
    assert server.requests == []
    monkeypatch.delenv("ZOO_OFFLINE")
    err = _one_error(cli("fetch", "tiny-gone"))
    assert "could not download http://127.0.0.1:9/tiny.pt" in err and "put it at" in err
    err = _one_error(cli("fetch", "nope"))
    assert "unknown checkpoint 'nope'" in err and "repaint/tiny-good" in err
