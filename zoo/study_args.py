"""The arguments of ``zoo study`` read into values (:mod:`zoo.study`): budgets, mask kinds and
the method list, whose entries may be variants of a method (:func:`split_variant`,
:func:`sample_variant`). Each bad value is one line naming what is valid."""

from __future__ import annotations

import math

from zoo.errors import ZooError, choices_error
from zoo.study_report import REFERENCE, budget_label


def parse_budgets(text: str) -> list[float]:
    """``15m,45m`` -> seconds, in the order given; 0, ``abc`` or a repeat is one line."""
    from zoo.config import parse_duration

    parts = [p.strip() for p in str(text).split(",")]
    if not all(parts):
        raise ZooError(f"--budget {text!r}: expected durations separated by commas, e.g. 15m or 5m,15m")
    out: list[float] = []
    for p in parts:
        try:
            seconds = float(parse_duration(p))
        except ZooError as exc:
            raise ZooError(f"--budget {p!r}: {str(exc).splitlines()[0]}") from None
        if not seconds > 0 or not math.isfinite(seconds):
            raise ZooError(f"--budget {p!r}: a budget must be a positive duration, e.g. 90s, 15m or 2h")
        if seconds in out:
            raise ZooError(f"--budget {text!r}: {budget_label(seconds)} is listed twice")
        out.append(seconds)
    return out


VARIANT_HELP = "a variant is METHOD[:key=value...][/key=value...], e.g. dit-mca:attention=self or dit-mca/guidance=2"


def _pairs(label: str, parts: list[str], seen: dict[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in parts:
        key, sep, value = part.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ZooError(f"--methods {label!r}: {VARIANT_HELP}")
        if key.strip() in out or key.strip() in seen:
            raise ZooError(f"--methods {label!r}: {key.strip()} is set twice")
        out[key.strip()] = value.strip()
    return out


def split_variant(label: str) -> tuple[str, dict[str, str]]:
    """``dit-mca:attention=self:window=4`` -> ("dit-mca", {"attention": "self", "window": "4"}):
    a method name, then config values separated by ``:``, for a study of one method's
    variants (a learned method is trained with them, a classical one samples with them).
    Sampling values after ``/`` (:func:`sample_variant`) are not part of it."""
    train_part = str(label).split("/", 1)[0]
    name, *parts = train_part.split(":")
    return name.strip(), _pairs(label, parts, {})


def sample_variant(label: str) -> dict[str, str]:
    """``dit-mca:attention=self/guidance=2/jump_n_sample=1`` -> {"guidance": "2", "jump_n_sample":
    "1"}: values the method samples with; the trained model is the one of the part before
    ``/`` (:func:`run_label`), so sampling variants of one model cost no training."""
    if "/" not in str(label):
        return {}
    return _pairs(label, str(label).split("/")[1:], split_variant(label)[1])


def run_label(label: str) -> str:
    """The part of a label that decides the trained model: ``dit-mca/guidance=2`` -> ``dit-mca``."""
    return str(label).split("/", 1)[0]


def check_sample_variant(label: str, spec, build_config) -> None:
    """A sampling variant of a learned method samples the trained model with other values; one
    that changes the network (``dit-mca/depth=2``) could never load it, so it is one line now,
    before anything is trained. ``build_config(overrides)`` resolves the trained config with the
    given sampling values; each network is built on the meta device and compared by parameter
    names and shapes. A plugin whose model cannot be built there is not checked (the mismatch
    is then reported when the variant samples)."""
    import torch

    from zoo.plugins import get_manager

    def shapes(overrides: dict[str, str]) -> dict[str, tuple[int, ...]] | None:
        try:
            with torch.device("meta"):
                model = get_manager().call("zoo_build_model", spec.name, config=build_config(overrides))
        except Exception:  # noqa: BLE001 - building on meta is a best-effort check
            return None
        return {k: tuple(v.shape) for k, v in model.state_dict().items()}

    trained = shapes({})
    values = sample_variant(label)
    changing = [f"{k}={v}" for k, v in values.items() if trained is not None and shapes({k: v}) not in (None, trained)]
    if changing:
        raise ZooError(f"--methods {label!r}: {', '.join(changing)} changes the network, so the trained model cannot sample "
                       f"with it; give it as a training variant instead: {run_label(label)}:{':'.join(changing)}")


def parse_methods(text: str) -> list[str]:
    """``all`` (every method in ``zoo list``) or ``m1,m2``, where an entry may be a variant
    (``dit-mca:attention=self``, :func:`split_variant`); the reference ``telea`` is always
    included (first). Unknown names are one line with the valid choices."""
    from zoo.plugins import get_manager

    known = sorted(get_manager().methods())
    names = known if str(text).strip() == "all" else [m.strip() for m in str(text).split(",") if m.strip()]
    if not names:
        raise ZooError(f"--methods {text!r}: give 'all' or method names separated by commas; valid choices: {', '.join(known)}")
    for name in names:
        if split_variant(name)[0] not in known:
            raise choices_error("method", split_variant(name)[0], ["all", *known])
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise ZooError(f"--methods: {dup!r} is listed twice")
    if REFERENCE not in known:
        raise ZooError(f"the study's reference method {REFERENCE!r} is not installed (it comes with the built-in baselines plugin)")
    return [REFERENCE] + [n for n in names if n != REFERENCE]


def parse_masks(text: str) -> list[str]:
    from zoo.masks import mask_kind

    names = [m.strip() for m in str(text).split(",") if m.strip()]
    if not names:
        raise ZooError(f"--masks {text!r}: give one or more mask kinds separated by commas (see `zoo masks list`)")
    for name in names:
        mask_kind(name)  # unknown: one line with the valid kinds
    if len(set(names)) != len(names):
        raise ZooError(f"--masks {text!r}: a mask kind is listed twice")
    return names


__all__ = ["VARIANT_HELP", "check_sample_variant", "parse_budgets", "parse_masks", "parse_methods", "run_label", "sample_variant", "split_variant"]
