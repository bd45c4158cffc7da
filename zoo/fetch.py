"""``zoo fetch NAME``: a checkpoint listed in the registry, from its URL to a zoo checkpoint.

1. look NAME up among the ``checkpoints:`` of every method in ``registry.yaml`` (``NAME`` or
   ``METHOD/NAME``);
2. download it into the cache (:mod:`zoo.download`: ``$ZOO_CACHE_DIR/downloads/METHOD/NAME/``,
   resumable; Hub URLs into the Hugging Face cache); an entry with ``manual`` (a share page
   no client can download) is instead looked for at ``downloads/METHOD/NAME/FILE``, and
   when missing one line says where to get it and where to put it;
3. check its sha256: against the registry's, or, when the registry's is ``unknown``, against
   the one recorded in the cache manifest by the first fetch (trust on first use; the first
   fetch records it and says in one note that the file is unverified);
4. unpack an archive next to it;
5. import it with the method's importer into the preset the registry names, and save the
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
    notes: list[str] = []
    key = f"{method}/{ck.name}"
    folder = download.cache_dir() / "downloads" / method / ck.name
    if ck.manual:
        source = folder / ck.file
        if not source.is_file():
            raise ZooError(f"{key} cannot be downloaded: {ck.manual}, and put it at {source} (then run `zoo fetch {key}` again)")
    elif download.is_hub(ck.url):
        source = download.hub_download(ck.url, progress)
    else:
        filename = ck.file or Path(ck.url.split("?", 1)[0].rstrip("/")).name or "download"
        source = download.download(ck.url, folder / filename, ck.sha256 if ck.verified else "", progress)
    if source.is_file():
        if ck.verified and download.is_hub(ck.url) and download.sha256_of(source) != ck.sha256:
            raise ZooError(f"{source} from {ck.url} does not have the registry's sha256 {ck.sha256}; delete it from the Hugging Face cache and fetch again")
        seen, record = download.pin(key, ck.url, source, ck.verified, delete=not ck.manual and not download.is_hub(ck.url))
        if not ck.verified:
            first = "recorded on this first use" if seen == "recorded" else f"matches the one recorded on first use ({record['first_seen']})"
            notes.append(f"{key} is unverified (the registry has no sha256: {ck.sha256_reason}); its sha256 {record['sha256']} {first} in {download.manifest_path()}")
    if source.is_file() and download.is_archive(source):
        source = download.unpack(source, source.with_name(source.name + ".unpacked"))
    if target == cached and cached.is_file() and not overwrite:
        return Fetched(method, ck.name, cached, source, notes)  # imported by an earlier fetch
    from zoo.fsutil import check_output_file

    check_output_file(target, {"(the downloaded file)": source}, overwrite=True, example="model.safetensors")  # never over the download
    target.parent.mkdir(parents=True, exist_ok=True)
    provenance: dict[str, Any] = {"registry_name": ck.name, "url": ck.url, "license": ck.license}
    if ck.verified:
        provenance["registry_sha256"] = ck.sha256
    else:
        provenance["unverified"] = ck.sha256_reason
    runner.import_checkpoint(method, source, target, ck.preset, notes=notes, provenance=provenance, overwrite=True)
    return Fetched(method, ck.name, target, source, notes)


def verification(method: str, ck: OfficialCheckpoint, manifest: dict[str, dict]) -> dict[str, Any]:
    """One row of ``zoo fetch --list``: how the entry's file is verified, and how it is got."""
    key = f"{method}/{ck.name}"
    seen = manifest.get(key)
    if ck.verified:
        state, detail = "verified", f"sha256 {ck.sha256} from the registry"
    elif seen:
        state, detail = "pinned", f"unverified; sha256 {seen['sha256']} recorded on first use ({seen['first_seen']}), later downloads must match"
    else:
        state, detail = "unverified", f"no published sha256 ({ck.sha256_reason}); the first download's sha256 will be recorded"
    row = {"name": key, "state": state, "detail": detail, "download": "by hand" if ck.manual else "direct", "url": ck.url}
    if ck.manual:
        row["by_hand"] = f"{ck.manual}, and put it at {download.cache_dir() / 'downloads' / method / ck.name / ck.file}"
    return row


def list_checkpoints() -> list[dict[str, Any]]:
    """Every registry checkpoint with its verification state (``zoo fetch --list``)."""
    manifest = download.read_manifest()
    return [verification(m, c, manifest) for m, entry in sorted(load_registry().items()) for c in entry.checkpoints]
