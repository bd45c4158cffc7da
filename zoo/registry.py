"""``registry.yaml`` -> typed, validated catalog entries; listing and lookup of methods.

The registry is data, like timm's pretrained configs: for every built-in method its
plugin, summary, paper, license, family, presets and the official checkpoints that exist.
Methods declared by plugins that are not in the registry (third-party ones) are listed
beside the registry's with ``source`` set to their plugin.
"""

from __future__ import annotations

import fnmatch
import functools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo.errors import ZooError, choices_error
from zoo.spec import FAMILIES

REGISTRY_ENV = "ZOO_REGISTRY"


@dataclass(frozen=True)
class OfficialCheckpoint:
    name: str
    url: str
    sha256: str
    format: str
    license: str
    resolution: int
    preset: str
    source: str = ""
    note: str = ""
    #: why ``sha256`` is ``unknown`` (then ``zoo fetch`` pins what it first downloads)
    sha256_reason: str = ""
    #: a file no client can download (a share-folder page): where to get it by hand, one line
    manual: str = ""
    #: the file's name in the cache (default: the URL's last part; for ``manual`` entries:
    #: the name the user gives the file they put there)
    file: str = ""

    @property
    def verified(self) -> bool:
        """The registry gives the file's sha256 (else: trust on first use)."""
        return self.sha256 != UNKNOWN


@dataclass(frozen=True)
class RegistryEntry:
    name: str
    plugin: str
    summary: str
    paper: str
    license: str
    family: str
    presets: tuple[str, ...]
    checkpoints: tuple[OfficialCheckpoint, ...] = field(default_factory=tuple)


@dataclass
class MethodInfo:
    """One row of ``zoo list``: what the registry says and what the plugins provide."""

    name: str
    family: str
    summary: str
    plugin: str
    paper: str
    license: str
    presets: list[str]
    available: bool
    in_registry: bool
    needs_training: bool = True
    checkpoints: list[dict[str, Any]] = field(default_factory=list)
    #: Why an unavailable method is unavailable (its plugin is broken, disabled or not installed).
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


# -- loading and validation -------------------------------------------------------------
#: ``sha256:`` of an entry whose publisher gives no checksum (``sha256_reason`` says why)
UNKNOWN = "unknown"
_CKPT_FIELDS = {"url": str, "sha256": str, "format": str, "license": str, "resolution": int, "preset": str}
_CKPT_OPTIONAL = {"source": str, "note": str, "sha256_reason": str, "manual": str, "file": str}
_METHOD_FIELDS = {"plugin": str, "summary": str, "paper": str, "license": str, "family": str, "presets": list}


def _require(mapping: Any, key: str, tp: type, where: str) -> Any:
    if not isinstance(mapping, dict) or key not in mapping:
        raise ZooError(f"registry: missing key {where}.{key}")
    value = mapping[key]
    if not isinstance(value, tp) or isinstance(value, bool) and tp is not bool:
        raise ZooError(f"registry: {where}.{key} must be {tp.__name__}, got {type(value).__name__}")
    return value


def parse_registry(data: Any) -> dict[str, RegistryEntry]:
    """Validate the parsed YAML; the first problem raises a ZooError naming its key."""
    if not isinstance(data, dict) or "methods" not in data:
        raise ZooError("registry: missing key methods (a mapping of method name -> entry)")
    if not isinstance(data["methods"], dict):
        raise ZooError(f"registry: methods must be a mapping of method name -> entry, got {type(data['methods']).__name__}")
    entries: dict[str, RegistryEntry] = {}
    for name, raw in data["methods"].items():
        where = f"methods.{name}"
        if not isinstance(raw, dict):
            raise ZooError(f"registry: {where} must be a mapping")
        allowed = set(_METHOD_FIELDS) | {"checkpoints"}
        extra = sorted(set(raw) - allowed)
        if extra:
            raise ZooError(f"registry: unknown key {where}.{extra[0]}; valid keys: {', '.join(sorted(allowed))}")
        values = {k: _require(raw, k, tp, where) for k, tp in _METHOD_FIELDS.items()}
        if values["family"] not in FAMILIES:
            raise ZooError(f"registry: {where}.family {values['family']!r} is not one of {', '.join(FAMILIES)}")
        checkpoints = []
        for ck_name, ck in (raw.get("checkpoints") or {}).items():
            ck_where = f"{where}.checkpoints.{ck_name}"
            ck_values = {k: _require(ck, k, tp, ck_where) for k, tp in _CKPT_FIELDS.items()}
            for k in _CKPT_OPTIONAL:
                if k in ck:
                    ck_values[k] = _require(ck, k, str, ck_where)
            extra = sorted(set(ck) - set(_CKPT_FIELDS) - set(_CKPT_OPTIONAL))
            if extra:
                raise ZooError(f"registry: unknown key {ck_where}.{extra[0]}")
            if ck_values["preset"] not in values["presets"]:
                raise ZooError(f"registry: {ck_where}.preset {ck_values['preset']!r} is not in {where}.presets")
            _check_sha256(ck_values, ck_where)
            if ck_values.get("manual") and not ck_values.get("file"):
                raise ZooError(f"registry: {ck_where}.manual needs {ck_where}.file (the file name the user puts in the cache)")
            checkpoints.append(OfficialCheckpoint(name=ck_name, **ck_values))
        entries[name] = RegistryEntry(
            name=name,
            plugin=values["plugin"],
            summary=values["summary"],
            paper=values["paper"],
            license=values["license"],
            family=values["family"],
            presets=tuple(str(p) for p in values["presets"]),
            checkpoints=tuple(checkpoints),
        )
    return entries


def _check_sha256(ck: dict[str, Any], where: str) -> None:
    """``sha256``: 64 lowercase hex digits, or ``unknown`` with a ``sha256_reason``."""
    sha, reason = ck["sha256"], ck.get("sha256_reason", "").strip()
    if sha == UNKNOWN:
        if not reason:
            raise ZooError(f"registry: {where}.sha256 is unknown but {where}.sha256_reason is missing; say why there is no published sha256")
        return
    if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
        raise ZooError(f"registry: {where}.sha256 must be 64 lowercase hex digits, or 'unknown' with sha256_reason; {sha!r} is malformed")
    if reason:
        raise ZooError(f"registry: {where}.sha256_reason is only for sha256: unknown")


def registry_path() -> Path:
    env = os.environ.get(REGISTRY_ENV)
    return Path(env) if env else Path(__file__).with_name("registry.yaml")


@functools.lru_cache(maxsize=4)
def _load_cached(path: str, mtime: float) -> dict[str, RegistryEntry]:
    import yaml  # here, not at the top: `zoo --version` and `--help` read no registry

    try:  # libyaml's safe loader when PyYAML has it (10x faster; the registry is read by every command)
        data = yaml.load(Path(path).read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as exc:
        raise ZooError(f"registry: {path} is not valid YAML ({str(exc).splitlines()[0]})") from None
    return parse_registry(data)


def load_registry(path: str | Path | None = None) -> dict[str, RegistryEntry]:
    path = Path(path) if path else registry_path()
    if not path.is_file():
        raise ZooError(f"registry file {path} does not exist")
    return _load_cached(str(path), path.stat().st_mtime)


# -- listing ----------------------------------------------------------------------------
def list_methods(pattern: str | None = None) -> list[MethodInfo]:
    """Registry methods and plugin-declared methods, merged, filtered by a wildcard."""
    from zoo.plugins import get_manager

    registry = load_registry()
    manager = get_manager()
    declared = manager.methods()
    rows: dict[str, MethodInfo] = {}
    for name, entry in registry.items():
        spec = declared.get(name, (None, None))[0]
        rows[name] = MethodInfo(
            name=name,
            family=entry.family,
            summary=entry.summary,
            plugin=entry.plugin,
            paper=entry.paper,
            license=entry.license,
            presets=list(spec.presets) if spec else list(entry.presets),
            available=spec is not None and declared[name][1] == entry.plugin,
            in_registry=True,
            needs_training=spec.needs_training if spec else True,
            checkpoints=[c.__dict__ for c in entry.checkpoints],
            reason=_unavailable_reason(manager, entry.plugin, declared.get(name)),
        )
    for name, (spec, plugin) in declared.items():
        if name in rows:
            continue
        rows[name] = MethodInfo(
            name=name,
            family=spec.family,
            summary=spec.summary,
            plugin=plugin,
            paper=spec.paper,
            license=spec.license,
            presets=list(spec.presets),
            available=True,
            in_registry=False,
            needs_training=spec.needs_training,
        )
    names = sorted(rows)
    if pattern:
        names = [n for n in names if fnmatch.fnmatch(n, pattern)]
    return [rows[n] for n in names]


def _unavailable_reason(manager: Any, plugin: str, declared: Any) -> str:
    if declared is not None and declared[1] == plugin:
        return ""
    if declared is not None:
        return f"declared by plugin {declared[1]!r}, not {plugin!r} as the registry says"
    info = manager.infos.get(plugin)
    if info is None:
        return f"plugin {plugin!r} is not installed"
    return f"plugin {plugin!r} is {info.status}" + (f": {info.error}" if info.error else "")


def method_info(name: str) -> MethodInfo:
    rows = {m.name: m for m in list_methods()}
    if name not in rows:
        from zoo.plugins import get_manager

        get_manager().method(name)  # unknown: the error also names the plugins that did not load
        raise choices_error("method", name, rows)
    return rows[name]
