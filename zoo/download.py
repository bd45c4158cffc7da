"""Downloading published files into the cache: resumable, verified, unpacked.

Used by ``zoo fetch`` (:mod:`zoo.fetch`). Plain ``http(s)://`` URLs are fetched here with a
progress bar into ``FILE.part`` and renamed when complete; a rerun after an interruption
asks the server for the rest (an HTTP ``Range`` request) and starts over only when the
server ignores it. A sha256 given by the registry is checked after the download, and a
mismatch deletes the file. The sha256 of every file ``zoo fetch`` uses is recorded in the
cache manifest (``$ZOO_CACHE_DIR/downloads/manifest.json``); for an entry whose registry
sha256 is ``unknown`` that first record is the reference a later download must match
(trust on first use, like a lockfile). Hugging Face Hub URLs (``https://huggingface.co/R/resolve/REV/F``
and ``hf://ORG/REPO`` for a whole repository) go through ``huggingface_hub`` into its own
cache. ``ZOO_OFFLINE=1`` (or ``HF_HUB_OFFLINE=1``) downloads nothing. Every failure is one
:class:`~zoo.errors.ZooError` line that names the URL and the place to put the file by hand.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import shutil
import tarfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from zoo.errors import ZooError

CACHE_ENV = "ZOO_CACHE_DIR"
OFFLINE_ENV = "ZOO_OFFLINE"
CHUNK = 1 << 20
TIMEOUT_S = 60.0  # per read: a server that stops sending is an interruption, not a hang
_HUB = re.compile(r"^https://huggingface\.co/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<file>.+)$")


def cache_dir() -> Path:
    """``$ZOO_CACHE_DIR``, else ``$XDG_CACHE_HOME/inpaint-zoo``, else ``~/.cache/inpaint-zoo``."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "inpaint-zoo"


def offline() -> bool:
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes") for v in (OFFLINE_ENV, "HF_HUB_OFFLINE"))


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def manifest_path() -> Path:
    return cache_dir() / "downloads" / "manifest.json"


def read_manifest() -> dict[str, dict]:
    """``METHOD/NAME`` -> {url, file, sha256, first_seen, verified} of files fetched before."""
    import json

    path = manifest_path()
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ZooError(f"the cache manifest {path} is unreadable ({type(exc).__name__}); fix or delete it (its recorded sha256s are then trusted anew)") from None
    return data.get("files", {}) if isinstance(data, dict) else {}


def pin(key: str, url: str, path: Path, verified: bool, delete: bool = True) -> tuple[str, dict]:
    """Record (first use) or check (later) the sha256 of ``path`` under ``key`` in the cache
    manifest: returns ``("recorded" | "matches", record)``. For an unverified entry a file
    that differs from the first record is refused (and deleted when ``delete``, i.e. it is a
    download); for a verified one (its registry sha256 already checked) the record follows."""
    import datetime
    import json

    from zoo.fsutil import write_text

    got = sha256_of(path)
    files = read_manifest()
    old = files.get(key)
    if verified and old and old.get("sha256") != got:
        old = None  # the registry's sha256 (already checked) is the reference; the record follows it
    if old and old.get("sha256") != got:
        if delete:
            path.unlink()
        gone = "; the file was deleted" if delete else ""
        raise ZooError(f"{path.name} for {key} has sha256 {got}, but the first download (recorded in {manifest_path()} on {old.get('first_seen', '?')}) had {old.get('sha256')}{gone}; "
                       f"if the publisher changed the file on purpose, remove the {key!r} entry from the manifest to trust the new one")
    if old:
        return "matches", old
    record = {"url": url, "file": path.name, "sha256": got, "first_seen": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "verified": verified}
    files[key] = record
    manifest_path().parent.mkdir(parents=True, exist_ok=True)
    write_text(manifest_path(), json.dumps({"version": 1, "files": files}, indent=2, sort_keys=True) + "\n")
    return "recorded", record


def by_hand(url: str, target: Path) -> str:
    return f"download {url} yourself and put it at {target} (then run the command again)"


def download(url: str, target: Path, sha256: str = "", progress: bool = True) -> Path:
    """``url`` -> ``target`` (kept when already complete and, if given, of the right sha256)."""
    if target.is_file():
        _verify(target, sha256, url)
        return target
    if offline():
        raise ZooError(f"{OFFLINE_ENV}=1: not downloading; {by_hand(url, target)}")
    if url.startswith(("http://", "https://")):
        _http(url, target, progress)
    elif url.startswith("file://"):
        src = Path(urllib.request.url2pathname(url[len("file://") :].split("?", 1)[0]))
        if not src.is_file():
            raise ZooError(f"{url}: no such file; {by_hand(url, target)}")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, target)
    else:
        raise ZooError(f"cannot download {url!r}: only http(s)://, file:// and Hugging Face Hub addresses are supported")
    _verify(target, sha256, url)
    return target


def _verify(path: Path, sha256: str, url: str) -> None:
    if not sha256:
        return
    got = sha256_of(path)
    if got != sha256:
        path.unlink()
        raise ZooError(f"{path.name} from {url} has sha256 {got}, the registry says {sha256}; the file was deleted (a damaged or changed download)")


def _http(url: str, target: Path, progress: bool) -> None:
    from tqdm.auto import tqdm

    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    have = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "inpaint-zoo", **({"Range": f"bytes={have}-"} if have else {})})
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_S)  # noqa: S310 - http(s) only, checked above
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # the part is already whole (or bigger than the file): start over
            part.unlink()
            return _http(url, target, progress)
        raise ZooError(f"could not download {url} (HTTP {exc.code} {exc.reason}); {by_hand(url, target)}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        raise ZooError(f"could not download {url} ({reason}); {by_hand(url, target)}") from None
    with response:
        resumed = have and response.status == 206
        if have and not resumed:  # the server sent the whole file: start over
            have = 0
        length = response.headers.get("Content-Length")
        total = have + int(length) if length and length.isdigit() else None
        done = have
        try:
            with open(part, "ab" if resumed else "wb") as fh, tqdm(
                total=total, initial=have, unit="B", unit_scale=True, unit_divisor=1024, desc=f"fetch {target.name}", disable=not progress, dynamic_ncols=True
            ) as bar:
                while True:
                    block = response.read(CHUNK)
                    if not block:
                        break
                    fh.write(block)
                    done += len(block)
                    bar.update(len(block))
        except (OSError, urllib.error.URLError, http.client.HTTPException) as exc:  # connection reset, timeout, IncompleteRead
            raise ZooError(f"the download of {url} was interrupted at {done} of {total or '?'} bytes ({type(exc).__name__}); run the command again to resume") from None
    if total is not None and done < total:
        raise ZooError(f"the download of {url} was interrupted at {done} of {total} bytes; run the command again to resume")
    os.replace(part, target)


def hub_download(url: str, progress: bool = True) -> Path:
    """A Hugging Face Hub address -> the file (or, for ``hf://ORG/REPO``, the folder) in
    the Hugging Face cache."""
    try:
        import huggingface_hub as hub
    except ImportError:
        raise ZooError(f"{url} is on the Hugging Face Hub: pip install huggingface_hub, or download it by hand and give the file to `zoo import`") from None
    m = _HUB.match(url)
    where = "the Hugging Face cache (huggingface-cli download)"
    try:
        if url.startswith("hf://"):
            return Path(hub.snapshot_download(url[len("hf://") :], local_files_only=offline()))
        if m:
            return Path(hub.hf_hub_download(m["repo"], m["file"], revision=m["rev"], local_files_only=offline()))
    except Exception as exc:  # noqa: BLE001 - offline, missing repo, network: one line
        first = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        how = f"{OFFLINE_ENV}=1 and the file is not in {where}" if offline() else f"{type(exc).__name__}: {first}"
        raise ZooError(f"could not fetch {url} ({how}); download it by hand and give it to `zoo import`") from None
    raise ZooError(f"{url!r} is not a Hugging Face Hub address (https://huggingface.co/ORG/REPO/resolve/REV/FILE or hf://ORG/REPO)")


def is_hub(url: str) -> bool:
    return url.startswith("hf://") or bool(_HUB.match(url))


def unpack(archive: Path, dest: Path) -> Path:
    """Unpack a .zip / .tar(.gz|.bz2|.xz) into ``dest`` (once); returns what it holds: its
    only entry when there is one (``big-lama.zip`` -> ``dest/big-lama``), else ``dest``.
    Members that would land outside ``dest`` (absolute paths, ``..``, links) are refused."""
    if not dest.is_dir():
        tmp = dest.with_name(dest.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            if zipfile.is_zipfile(archive):
                with zipfile.ZipFile(archive) as z:
                    for name in z.namelist():
                        _inside(tmp, name, archive)
                    z.extractall(tmp)
            elif tarfile.is_tarfile(archive):
                with tarfile.open(archive) as t:
                    for member in t.getmembers():
                        _inside(tmp, member.name, archive)
                        if not (member.isfile() or member.isdir()):
                            raise ZooError(f"{archive.name}: member {member.name} is a link or device; not unpacked")
                    t.extractall(tmp, filter="data")
            else:
                raise ZooError(f"{archive.name} is not a zip or tar archive")
        except (zipfile.BadZipFile, tarfile.TarError, EOFError) as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise ZooError(f"{archive.name} is a damaged archive ({exc}); delete it and fetch again") from None
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        os.replace(tmp, dest)
    entries = [p for p in dest.iterdir() if not p.name.startswith(".") and p.name != "__MACOSX"]
    return entries[0] if len(entries) == 1 else dest


def _inside(root: Path, name: str, archive: Path) -> None:
    target = (root / name).resolve()
    if not str(target).startswith(str(root.resolve()) + os.sep) and target != root.resolve():
        raise ZooError(f"{archive.name}: member {name!r} would be written outside the unpack folder; not unpacked")


def is_archive(path: Path) -> bool:
    return path.name.endswith((".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz"))
