"""``zoo fetch NAME``: a checkpoint listed in the registry, from its URL to a zoo checkpoint.

1. look NAME up among the ``checkpoints:`` of every method in ``registry.yaml`` (``NAME`` or
   ``METHOD/NAME``);
2. download it into the cache (:mod:`zoo.download`: ``$ZOO_CACHE_DIR/downloads/METHOD/NAME/``,
   resumable, sha256-verified when the registry gives one; Hub URLs into the Hugging Face
   cache);
3. unpack an archive next to it;
4. import it with the method's importer into the preset the registry names, and save the
   zoo checkpoint (``--out``, default ``$ZOO_CACHE_DIR/checkpoints/METHOD-NAME.safetensors``).

Each step is skipped when its result is already in the cache, so a rerun is cheap and an
interrupted download resumes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo import download
from zoo.errors import ZooError
from zoo.registry import OfficialCheckpoint, load_registry


@dataclass
class Fetched:
    method: str
    name: str
    checkpoint: Path  # the zoo checkpoint written
    source: Path  # the downloaded (and unpacked) official file or folder
    notes: list[str]


def find(name: str) -> tuple[str, OfficialCheckpoint]:
    """``NAME`` or ``METHOD/NAME`` -> (method, registry entry); unknown names list the valid ones."""
    found = [(m, c) for m, entry in load_registry().items() for c in entry.checkpoints]
    method, _, short = name.rpartition("/")
    hits = [(m, c) for m, c in found if c.name == short and (not method or m == method)]
    if len(hits) == 1:
        return hits[0]
    valid = ", ".join(sorted(f"{m}/{c.name}" for m, c in found)) or "(none)"
    if len(hits) > 1:
        raise ZooError(f"checkpoint name {name!r} is listed by several methods; give METHOD/NAME: {valid}")
    raise ZooError(f"unknown checkpoint {name!r}; valid choices: {valid} (the checkpoints: of registry.yaml)")


def fetch(name: str, out: str | Path | None = None, progress: bool = True, overwrite: bool = False) -> Fetched:
    from zoo import runner

    method, ck = find(name)
    cached = download.cache_dir() / "checkpoints" / f"{method}-{ck.name}.safetensors"
    target = Path(out) if out else cached
    if out and target.is_dir():
        raise ZooError(f"--out {target}: an existing folder, not a file; give a file name, e.g. model.safetensors")
    if out and target.exists() and not overwrite:
        raise ZooError(f"--out {target} exists; choose a new file name, or pass --overwrite to replace it")
    if download.is_hub(ck.url):
        source = download.hub_download(ck.url, progress)
    else:
        folder = download.cache_dir() / "downloads" / method / ck.name
        filename = Path(ck.url.split("?", 1)[0].rstrip("/")).name or "download"
        source = download.download(ck.url, folder / filename, ck.sha256, progress)
    if source.is_file() and download.is_archive(source):
        source = download.unpack(source, source.with_name(source.name + ".unpacked"))
    notes: list[str] = []
    if target == cached and cached.is_file() and not overwrite:
        return Fetched(method, ck.name, cached, source, notes)  # imported by an earlier fetch
    from zoo.fsutil import check_output_file

    check_output_file(target, {"(the downloaded file)": source}, overwrite=True, example="model.safetensors")  # never over the download
    target.parent.mkdir(parents=True, exist_ok=True)
    provenance: dict[str, Any] = {"registry_name": ck.name, "url": ck.url, "license": ck.license}
    if ck.sha256:
        provenance["registry_sha256"] = ck.sha256
    runner.import_checkpoint(method, source, target, ck.preset, notes=notes, provenance=provenance, overwrite=True)
    return Fetched(method, ck.name, target, source, notes)
