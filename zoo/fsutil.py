"""Atomic file writes: a crash never leaves a half-written file under the final name."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Callable, Iterator

from zoo.errors import note_os_context


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, inside: str | os.PathLike | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is fsynced and renamed over
    ``path`` in one step, on failure it is removed. Missing parent folders are made, but not
    ``inside`` (the command's output folder, made earlier): when it is gone the write is
    refused (:func:`still_there`)."""
    path = Path(path)
    if inside is not None:
        still_there(inside)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        usual_mode(tmp_path)  # mkstemp (and some writers, e.g. safetensors) make 0600
        with open(tmp_path, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, path)
    except Exception as exc:  # a full disk while writing names no file: say which one
        note_os_context(exc, "write", path)
        raise
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def usual_mode(path: str | os.PathLike) -> None:
    """Give a file or folder the mode the umask gives new ones (0644 / 0755 with umask 022)."""
    os.chmod(path, (0o777 if Path(path).is_dir() else 0o666) & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path: str | os.PathLike, text: str, inside: str | os.PathLike | None = None) -> None:
    with atomic_path(path, inside) as tmp:
        tmp.write_text(text)


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


_SHA_CACHE: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file, remembered per (path, size, mtime) for this process."""
    p = Path(path).resolve()
    st = p.stat()
    key = (str(p), st.st_size, st.st_mtime_ns)
    if key not in _SHA_CACHE:
        h = hashlib.sha256()
        with open(p, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        _SHA_CACHE[key] = h.hexdigest()
    return _SHA_CACHE[key]


# -- outputs of a command: never over an input, never over someone else's files ------------------
def still_there(folder: str | os.PathLike) -> None:
    """Refuse to go on writing into ``folder`` (which the command made or checked) once it is
    gone: :func:`atomic_path` would make it again, and the files written before would be lost
    without a word."""
    from zoo.errors import ZooError

    if not Path(folder).is_dir():
        raise ZooError(f"the output folder {folder} was removed while the command ran (the files written into it are gone); run the command again")


def check_output_dir(out: str | os.PathLike, inputs: dict[str, str | os.PathLike | None], overwrite: bool = False, flag: str = "--out",
                     remedy: str = "choose a new folder, or pass --overwrite to replace the files this command writes") -> Path:
    """Refuse an output folder that is a file, that is, contains or lies inside one of
    ``inputs`` (flag -> path), or that exists and is not empty without ``overwrite``
    (``remedy``: what the message suggests then; only name options the command has)."""
    from zoo.errors import ZooError

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ZooError(f"{flag} {out}: an existing file, not a folder; give a folder path")
    check_apart(out, inputs, flag)
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise ZooError(f"{flag} {out} exists and is not empty; {remedy}")
    return out


def check_apart(out: str | os.PathLike, inputs: dict[str, str | os.PathLike | None], flag: str = "--out") -> None:
    """Refuse an output path that is, contains or lies inside one of ``inputs`` (flag -> a
    file or folder; None entries are skipped). Symlinks are resolved, so a link to an input
    is that input."""
    from zoo.errors import ZooError

    resolved = Path(out).resolve()
    for name, path in inputs.items():
        if path is None:
            continue
        inp = Path(path).resolve()
        if resolved == inp or inp in resolved.parents or resolved in inp.parents:
            kind = "is, contains or lies inside" if inp.is_dir() or not inp.exists() else "is or contains"
            raise ZooError(f"{flag} {out} {kind} the input {name} {path}; choose a path outside the inputs")


def check_output_file(out: str | os.PathLike, inputs: dict[str, str | os.PathLike | None], overwrite: bool = False, flag: str = "--out",
                      example: str = "out.json") -> Path:
    """Refuse an output file that is an existing folder, that is, contains or lies inside one
    of ``inputs`` (even with ``overwrite``), or that exists without ``overwrite``: the file
    rule every command that writes one file shares (its ``--out`` with ``--overwrite``)."""
    from zoo.errors import ZooError

    out = Path(out)
    if out.is_dir():
        raise ZooError(f"{flag} {out}: an existing folder, not a file; give a file name, e.g. {example}")
    check_apart(out, inputs, flag)
    if out.exists() and not overwrite:
        raise ZooError(f"{flag} {out} exists; choose a new file name, or pass --overwrite to replace it")
    for parent in out.parents:  # a parent that is a file: one line now, not an OSError at the end
        if parent.exists():
            if not parent.is_dir():
                raise ZooError(f"{flag} {out}: {parent} is a file, not a folder")
            break
    return out


def _tree(folder: Path) -> set[Path]:
    """Every file and folder under ``folder``; one that another process removes meanwhile is
    skipped instead of failing the walk (``Path.rglob`` raises on it)."""
    found: set[Path] = set()
    for root, dirs, files in os.walk(folder):
        found.update(Path(root) / n for n in (*dirs, *files))
    return found


@contextlib.contextmanager
def removed_on_failure(*paths: str | os.PathLike, keep: Callable[[], bool] | None = None) -> Iterator[None]:
    """On an exception (not Ctrl-C), remove what the block created: a folder of ``paths``
    that did not exist before is removed whole; in one that existed, the files that were
    not there before are removed. Then the exception goes on. ``keep``: asked on failure;
    when it says True nothing is removed (e.g. finished work that a rerun resumes from)."""
    import shutil

    snapshot: dict[Path, set[Path] | None] = {}
    made: dict[Path, Path] = {}  # a path that did not exist -> its highest folder that did not either (made on the way)
    for p in map(Path, paths):
        snapshot[p] = _tree(p) if p.is_dir() else (None if not p.exists() else set())
        if snapshot[p] is None:
            top = p
            while top.parent != top and not top.parent.exists():
                top = top.parent
            made[p] = top
    try:
        yield
    except Exception:
        if keep is not None and keep():
            raise
        for p, before in snapshot.items():
            if before is None:
                if p.is_dir():
                    shutil.rmtree(p, ignore_errors=True)
                elif p.exists():
                    p.unlink()
                folder = p
                while folder != made[p]:  # the parent folders made on the way, while nothing else is in them
                    folder = folder.parent
                    try:
                        folder.rmdir()
                    except OSError:
                        break
            elif p.is_dir():
                for f in sorted(_tree(p), key=lambda x: len(x.parts), reverse=True):
                    if f not in before:
                        (shutil.rmtree(f, ignore_errors=True) if f.is_dir() else f.unlink(missing_ok=True))
        raise
