"""Config dataclasses, named presets and ``--set key=value`` overrides.

A method's config is a dataclass; a preset is a mapping of field overrides. Overrides are
parsed against the field's declared type, and unknown keys or wrong types are
:class:`~zoo.errors.ZooError` s that list the valid choices.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from typing import Any, Iterable, Mapping

from zoo.errors import ZooError, choices_error
from zoo.spec import MethodSpec


def field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints.get(f.name, Any) for f in dataclasses.fields(cls)}


def _strip_optional(tp: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def coerce(value: Any, tp: Any, key: str) -> Any:
    """Convert ``value`` (a string from the command line, or a YAML/JSON value) to ``tp``."""
    tp, optional = _strip_optional(tp)
    if isinstance(value, str):
        text = value.strip()
        if optional and text.lower() in ("none", "null", ""):
            return None
        if tp is str:
            return value
        if typing.get_origin(tp) is typing.Literal:
            return _literal(value, tp, key)
        if tp in (int, float):
            return parse_number(text, tp, key)
        import yaml  # here, not at the top: `zoo --version` and `--help` need no YAML

        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            raise ZooError(f"--set {key}: cannot parse {text!r} as {_type_name(tp)}") from None
    if value is None:
        if optional:
            return None
        raise ZooError(f"--set {key}: a value of type {_type_name(tp)} is required, not none")
    if tp is Any:
        return value
    if typing.get_origin(tp) is typing.Literal:
        return _literal(value, tp, key)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ZooError(f"--set {key}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ZooError(f"--set {key}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise ZooError(f"--set {key}: expected a finite number, got {value!r}")
            return float(value)
        raise ZooError(f"--set {key}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ZooError(f"--set {key}: expected a string, got {value!r}")
    origin = typing.get_origin(tp)
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ZooError(f"--set {key}: expected a list like [1, 2], got {value!r}")
        args = typing.get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ZooError(f"--set {key}: expected {len(args)} values, got {len(value)}")
            return tuple(coerce(v, a, key) for v, a in zip(value, args))
        inner = args[0] if args else Any
        items = [coerce(v, inner, key) for v in value]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ZooError(f"--set {key}: expected a mapping, got {value!r}")
        return dict(value)
    return value


def parse_number(text: str, tp: type, key: str) -> int | float:
    """A number as a person writes it: ``1e-4``, ``1E4``, ``.5``, ``-3``, ``1_000``, ``+2``
    (YAML 1.1 reads ``1e-4`` as text). An integer field takes a whole number written either
    way (``1e4`` is 10000); ``inf`` and ``nan`` are refused, every field needs a finite value."""
    kind = "an integer" if tp is int else "a number"
    try:
        number = float(text)
    except ValueError:
        try:
            return tp(int(text, 0))  # 0x1F, 0o17, 0b101
        except ValueError:
            raise ZooError(f"--set {key}: expected {kind}, got {text!r}") from None
    if not math.isfinite(number):
        raise ZooError(f"--set {key}: expected a finite number, got {text!r}")
    if tp is float:
        return number
    try:
        return int(text)  # exact for any size ("12345678901234567890")
    except ValueError:
        pass
    if number.is_integer() and abs(number) <= 2**53:
        return int(number)
    raise ZooError(f"--set {key}: expected an integer, got {text}")


def _literal(value: Any, tp: Any, key: str) -> Any:
    allowed = typing.get_args(tp)
    if value in allowed:
        return value
    raise ZooError(f"--set {key}: invalid value {value!r}; valid choices: {', '.join(map(str, allowed))}")


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def apply_overrides(config: Any, overrides: Mapping[str, Any], method: str | None = None) -> Any:
    """Return a copy of ``config`` with ``overrides`` applied and type-checked."""
    types_ = field_types(type(config))
    aliases = getattr(type(config), "SET_ALIASES", {})  # e.g. repaint's ``class`` (a Python keyword) -> class_label
    renamed = getattr(type(config), "VALUE_ALIASES", {})  # e.g. dit-mca's old attention="contextual" -> "contextual-global"
    changes = {}
    for key, value in overrides.items():
        key = aliases.get(key, key)
        if key not in types_:
            raise choices_error(f"config key for {method or 'this method'}", key, types_)
        if isinstance(value, str) and value in renamed.get(key, {}):
            value = renamed[key][value]
        changes[key] = coerce(value, types_[key], key)
    try:
        return dataclasses.replace(config, **changes)
    except (TypeError, ValueError) as exc:  # __post_init__ validation in the config
        raise ZooError(f"invalid config: {exc}") from None


def parse_set_options(items: Iterable[str]) -> dict[str, str]:
    """``["a=1", "b=x"]`` -> ``{"a": "1", "b": "x"}``."""
    out: dict[str, str] = {}
    for item in items:
        if "=" not in item:
            raise ZooError(f"--set expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        out[key.strip()] = value
    return out


def parse_method_set_options(items: Iterable[str]) -> dict[str, dict[str, str]]:
    """``["repaint.sampling=fast", "mat.z=1"]`` -> ``{"repaint": {"sampling": "fast"}, "mat": {"z": "1"}}``:
    ``--set`` of commands that run several methods (``zoo compare``, ``zoo bench``)."""
    out: dict[str, dict[str, str]] = {}
    for key, value in parse_set_options(items).items():
        method, dot, field_name = key.partition(".")
        if not dot or not method or not field_name:
            raise ZooError(f"--set {key}={value}: write METHOD.KEY=VALUE, e.g. repaint.sampling=fast")
        out.setdefault(method, {})[field_name] = value
    return out


def resolve_config(spec: MethodSpec, preset: str | None = None, overrides: Mapping[str, Any] | None = None) -> tuple[Any, str]:
    """Build the config of ``spec`` for ``preset`` (default: the spec's default) with overrides."""
    preset = preset or spec.default
    if preset not in spec.presets:
        raise choices_error(f"preset for {spec.name}", preset, spec.presets)
    config = apply_overrides(spec.config(), spec.presets[preset], spec.name)
    if overrides:
        config = apply_overrides(config, overrides, spec.name)
    return validate_config(config, spec.name), preset


#: Integer config fields that count something a model needs at least one of: these names...
SIZE_FIELDS = ("resolution", "channels", "dim", "depth", "heads", "batch_size", "steps", "size", "width", "layers", "blocks", "iters", "iterations")
#: ... and names ending in ``_`` + one of these (``hidden_dim``, ``patch_size``); a name like
#: ``warmup_steps`` or ``skip_channels`` may well be 0 and is left to the config's validate().
SIZE_SUFFIXES = ("resolution", "dim", "depth", "heads", "size", "width")


#: Upper limits of sizes and counts (docs/guarantees.md, "Sizes"), by config field or option name
#: (``--batch-size`` -> ``batch_size``): a larger value is a typo or a run that cannot finish,
#: refused before any work starts. A training batch is also checked against the machine's memory.
MAX_SIDE = 16384
UPPER_LIMITS: dict[str, int] = {
    "resolution": MAX_SIDE, "size": MAX_SIDE, "height": MAX_SIDE,  # image sides, pixels
    "batch_size": 65536, "grad_accum": 65536,
    "steps": 10**9,  # training steps
    "count": 10**8, "val_count": 10**8, "test_count": 10**8, "limit": 10**8,  # images or masks
    "num_samples": 10000,  # samples per image
    "repeats": 10**6, "warmup": 10**6, "bootstrap": 10**6, "workers": 1024,
}
#: The config fields that :data:`UPPER_LIMITS` bounds (other names in it are options only; a
#: training resolution is checked with a memory estimate: zoo.train.memory.check_first_batch).
LIMITED_FIELDS = ("batch_size", "steps")


def check_upper_limit(name: str, value: Any, what: str | None = None) -> None:
    """Refuse ``value`` above ``UPPER_LIMITS[name]`` in one line; ``what``: the value as the
    user wrote it (``--steps 10000000000``, ``config resolution=100000 for conv-l1``)."""
    limit = UPPER_LIMITS.get(name)
    if limit is not None and isinstance(value, int) and not isinstance(value, bool) and value > limit:
        raise ZooError(f"{what or f'{name}={value}'}: at most {limit} (the zoo's upper limit for {name.replace('_', ' ')}; see docs/guarantees.md)")


def require(ok: bool, name: str, value: Any, rule: str) -> None:
    """For a config's ``validate()``: ``require(self.lr > 0, "lr", self.lr, "must be > 0")``
    raises ``ValueError("lr=0.0: must be > 0")`` when ``ok`` is false."""
    if not ok:
        raise ValueError(f"{name}={value!r}: {rule}")


def validate_config(config: Any, method: str | None = None) -> Any:
    """Check a resolved config before anything is built; returns it unchanged.

    Generic rule: an integer field named one of :data:`SIZE_FIELDS`, or ending in ``_`` + one
    of :data:`SIZE_SUFFIXES` (``hidden_dim``, ``patch_size``), must be at least 1. Then the config's
    own ``validate()`` runs, if it has one (ranges, divisibility the model needs, choices);
    it raises :class:`ZooError` with one line naming the field. Every method's config goes
    through here (``resolve_config``, checkpoints, ``--resume``)."""
    who = f" for {method}" if method else ""
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if isinstance(value, bool) or not isinstance(value, int):
            continue
        if (f.name in SIZE_FIELDS or any(f.name.endswith("_" + s) for s in SIZE_SUFFIXES)) and value < 1:
            raise ZooError(f"config {f.name}={value}{who}: must be at least 1")
        if f.name in LIMITED_FIELDS:
            check_upper_limit(f.name, value, f"config {f.name}={value}{who}")
    check = getattr(config, "validate", None)
    if callable(check):
        try:
            check()
        except (TypeError, ValueError) as exc:
            raise ZooError(f"invalid config{who}: {exc}") from None
    return config


def config_to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def config_from_dict(cls: type, data: Mapping[str, Any], method: str | None = None) -> Any:
    """Rebuild a config from a checkpoint's metadata; unknown keys are a ZooError."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ZooError(
            f"checkpoint config has keys {', '.join(unknown)} that {method or 'this method'} does not know; "
            "it was written by another version of this method"
        )
    return validate_config(apply_overrides(cls(), {k: v for k, v in data.items()}, method), method)


def config_json(config: Any) -> str:
    return json.dumps(config_to_dict(config), sort_keys=True)


def describe_fields(cls: type, config: Any | None = None) -> list[dict[str, Any]]:
    """Rows for ``zoo info``: name, type, default (and comment-free help when present)."""
    config = config if config is not None else cls()
    types_ = field_types(cls)
    rows = []
    for f in dataclasses.fields(cls):
        rows.append(
            {
                "name": f.name,
                "type": _type_name(types_[f.name]),
                "default": getattr(config, f.name),
                "help": f.metadata.get("help", ""),
            }
        )
    return rows


_DURATION_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0}


def parse_duration(text: str) -> float:
    """A wall-clock duration -> seconds: ``90s``, ``15m``, ``2h``, ``1h30m``, ``1.5h``, or a
    bare number of seconds (``45``). Units run from hours down to seconds, each at most
    once. Zero, negative and unreadable durations are a one-line :class:`ZooError`."""
    import re

    raw = str(text).strip().lower().replace(" ", "")
    number = r"(\d+(?:\.\d*)?|\.\d+)"
    match = re.fullmatch(rf"(?:{number}h)?(?:{number}m)?(?:{number}s)?", raw) if raw else None
    if raw and re.fullmatch(number, raw):
        seconds = float(raw)
    elif match and any(match.groups()):
        seconds = sum(float(v) * unit for v, unit in zip(match.groups(), _DURATION_UNITS.values()) if v)
    else:
        sign = " (a duration cannot be negative)" if raw.startswith("-") else ""
        raise ZooError(f"duration {text!r} is not readable{sign}; give a positive number with a unit, e.g. 90s, 15m, 2h or 1h30m")
    if not seconds > 0 or seconds == float("inf"):
        raise ZooError(f"duration {text!r} must be more than 0 seconds, e.g. 90s, 15m, 2h or 1h30m")
    return seconds
