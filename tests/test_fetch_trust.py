"""A registry that keeps its word (issue 26, item 7): every checkpoint has a sha256 or
``unknown`` with a reason, a malformed one is refused at load in one line; an unverified file
is fetched with a one-line note, its sha256 pinned in the cache manifest, and a later download
that differs is refused (trust on first use); ``zoo fetch --list`` shows each entry's state;
an entry no client can download says where to get the file and where to put it. Files come
from file:// URLs (no network)."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pytest
import torch
import yaml

from zoo.diffusion.guided_unet import GuidedUNet
from zoo.registry import load_registry
from zoo_plugins.repaint.convert import preset_config
from zoo_plugins.repaint.model import unet_config

REGISTRY = Path(__file__).parents[1] / "zoo" / "registry.yaml"


def guided_bytes(seed: int) -> bytes:
    torch.manual_seed(seed)
    net = GuidedUNet(unet_config(preset_config("tiny")))
    buf = io.BytesIO()
    torch.save({k: torch.randn_like(v) * 0.05 for k, v in net.state_dict().items()}, buf)
    return buf.getvalue()


@pytest.fixture
def local(tmp_path, monkeypatch):
    src = tmp_path / "published"
    src.mkdir()
    (src / "tiny.pt").write_bytes(guided_bytes(0))
    reg = yaml.safe_load(REGISTRY.read_text())
    common = {"format": "guided-diffusion", "license": "MIT", "resolution": 32, "preset": "tiny"}
    reg["methods"]["repaint"]["checkpoints"] = {
        "tiny-unverified": {"url": (src / "tiny.pt").as_uri(), "sha256": "unknown", "sha256_reason": "the publisher gives none", **common},
        "tiny-verified": {"url": (src / "tiny.pt").as_uri(), "sha256": hashlib.sha256((src / "tiny.pt").read_bytes()).hexdigest(), **common},
        "tiny-by-hand": {"url": "https://example.invalid/folder?share=1", "manual": "a share folder page: open it in a browser and download tiny.pt",
                         "file": "tiny.pt", "sha256": "unknown", "sha256_reason": "none published", **common},
    }
    (tmp_path / "registry.yaml").write_text(yaml.safe_dump(reg))
    monkeypatch.setenv("ZOO_REGISTRY", str(tmp_path / "registry.yaml"))
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("ZOO_OFFLINE", raising=False)
    return src, tmp_path / "cache", tmp_path / "registry.yaml"


def _one_error(r) -> str:
    lines = [x for x in r.output.splitlines() if x.strip()]
    assert r.exit_code == 2 and "Traceback" not in r.output and len(lines) == 1 and lines[0].startswith("Error:"), r.output
    return lines[0]


def test_shipped_registry_keeps_its_word():
    for method, entry in load_registry(REGISTRY).items():
        for ck in entry.checkpoints:
            assert ck.sha256_reason if not ck.verified else len(ck.sha256) == 64, f"{method}/{ck.name}"
            if method == "mat":  # share-folder links: the entry says where to get the file by hand
                assert ck.manual and ck.file.endswith(".pkl")


def test_unverified_file_is_pinned_on_first_use_and_a_changed_one_refused(cli, local):
    src, cache, _ = local
    r = cli("fetch", "tiny-unverified")
    assert r.exit_code == 0, r.output
    notes = [x for x in r.output.splitlines() if x.startswith("Note:")]
    assert len(notes) == 1 and "unverified" in notes[0] and "recorded on this first use" in notes[0]
    manifest = json.loads((cache / "downloads" / "manifest.json").read_text())["files"]
    got = hashlib.sha256((src / "tiny.pt").read_bytes()).hexdigest()
    assert manifest["repaint/tiny-unverified"]["sha256"] == got and manifest["repaint/tiny-unverified"]["verified"] is False
    r = cli("fetch", "tiny-unverified")  # the same file again: matches
    assert r.exit_code == 0 and "matches the one recorded on first use" in r.output, r.output
    # the publisher's file changes; a re-download is refused and deleted
    (src / "tiny.pt").write_bytes(guided_bytes(1))
    download = cache / "downloads" / "repaint" / "tiny-unverified" / "tiny.pt"
    download.unlink()
    err = _one_error(cli("fetch", "tiny-unverified", "--out", local[0].parent / "new.safetensors"))
    assert got in err and "first download" in err and "deleted" in err and not download.exists()
    assert not (local[0].parent / "new.safetensors").exists()


def test_list_shows_each_entry_state(cli, local):
    r = cli("fetch", "--list", "--json")
    assert r.exit_code == 0, r.output
    rows = {row["name"]: row for row in json.loads(r.output)}
    assert rows["repaint/tiny-verified"]["state"] == "verified" and rows["repaint/tiny-unverified"]["state"] == "unverified"
    assert rows["repaint/tiny-by-hand"]["download"] == "by hand" and "put it at" in rows["repaint/tiny-by-hand"]["by_hand"]
    assert rows["mat/places-512-fulldata"]["download"] == "by hand"
    assert cli("fetch", "tiny-unverified").exit_code == 0
    rows = {row["name"]: row for row in json.loads(cli("fetch", "--list", "--json").output)}
    assert rows["repaint/tiny-unverified"]["state"] == "pinned"
    text = cli("fetch", "--list").output
    assert any(line.startswith("repaint/tiny-unverified") and "pinned" in line for line in text.splitlines())


def test_by_hand_entry_says_where_to_put_the_file(cli, local):
    src, cache, _ = local
    err = _one_error(cli("fetch", "repaint/tiny-by-hand"))
    where = cache / "downloads" / "repaint" / "tiny-by-hand" / "tiny.pt"
    assert "open it in a browser and download tiny.pt" in err and str(where) in err
    where.parent.mkdir(parents=True)
    where.write_bytes((src / "tiny.pt").read_bytes())
    r = cli("fetch", "repaint/tiny-by-hand")
    assert r.exit_code == 0 and "unverified" in r.output, r.output
    assert where.is_file()  # the user's file is kept


@pytest.mark.parametrize("sha, reason, message", [
    ("ABC", None, "sha256 must be 64 lowercase hex digits"),
    ("", None, "sha256 must be 64 lowercase hex digits"),
    ("unknown", None, "sha256_reason is missing"),
    ("0" * 64, "why", "sha256_reason is only for sha256: unknown"),
])
def test_malformed_sha256_is_refused_at_load_in_one_line(cli, local, sha, reason, message):
    path = local[2]
    reg = yaml.safe_load(path.read_text())
    ck = reg["methods"]["repaint"]["checkpoints"]["tiny-verified"]
    ck["sha256"] = sha
    if reason:
        ck["sha256_reason"] = reason
    path.write_text(yaml.safe_dump(reg))
    err = _one_error(cli("fetch", "--list"))
    assert "methods.repaint.checkpoints.tiny-verified.sha256" in err and message in err
