"""What a ``zoo serve`` offers: methods, and checkpoints by name only.

The checkpoints are the ``--checkpoint`` files the server was started with and the zoo
checkpoints in the registry cache (``$ZOO_CACHE_DIR/checkpoints/``, where ``zoo fetch`` puts
them). A request names one of these by its short name; a name that is not offered is refused
with the valid ones, and no path from a request is ever opened.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo.checkpoint import read_meta
from zoo.download import cache_dir
from zoo.errors import ZooError, choices_error
from zoo.plugins import get_manager
from zoo.serve.jobs import Offered
from zoo.serve.uploads import UploadError, safe_stem


def _short_name(path: Path) -> str:
    """``runs/conv/model.safetensors`` -> ``conv``; ``big.safetensors`` -> ``big``."""
    stem = path.stem if path.stem != "model" else (path.parent.name or "model")
    return safe_stem(stem, "checkpoint")


@dataclass
class Offer:
    methods: dict[str, Any]  # name -> MethodSpec, in display order
    checkpoints: list[Offered]

    @classmethod
    def build(cls, given: list[str], methods: list[str] | None, use_cache: bool = True) -> "Offer":
        """Read every ``--checkpoint`` (a ZooError names a missing or unreadable one), add the
        registry cache's, and choose the methods: ``methods`` (each checked), or every
        classical method and every method with a checkpoint."""
        manager = get_manager()
        known = manager.methods()
        offered: list[Offered] = []
        names: set[str] = set()

        def add(path: Path, source: str) -> None:
            meta = read_meta(path)
            if meta.method not in known:
                raise ZooError(f"--checkpoint {path} is a checkpoint of method {meta.method!r}, which no loaded plugin provides (see `zoo plugins`)")
            base = name = _short_name(path)
            i = 2
            while name in names:
                name, i = f"{base}-{i}", i + 1
            names.add(name)
            offered.append(Offered(name, meta.method, path.resolve(), source))

        for text in given:
            path = Path(text).expanduser()
            if not path.is_file():
                raise ZooError(f"--checkpoint {text}: no such file (give a zoo .safetensors checkpoint)")
            add(path, "--checkpoint")
        if use_cache:
            for path in sorted((cache_dir() / "checkpoints").glob("*.safetensors")):
                try:
                    add(path, "cache")
                except ZooError:
                    continue  # a damaged or foreign file in the cache is not offered
        with_ckpt = {c.method for c in offered}
        if methods is None:
            chosen = [m for m, (spec, _) in known.items() if not spec.needs_training or m in with_ckpt]
        else:
            chosen = []
            for m in methods:
                spec = manager.method(m)  # unknown: one line with the valid names
                if spec.needs_training and m not in with_ckpt:
                    raise ZooError(f"--methods {m}: it needs a checkpoint; pass --checkpoint FILE of a {m} model (`zoo train {m}`, `zoo import`, `zoo fetch`)")
                chosen.append(m)
        if not chosen:
            raise ZooError("no method to offer; pass --methods or --checkpoint")
        order = sorted(chosen, key=lambda m: (known[m][0].needs_training, m))
        return cls({m: known[m][0] for m in order}, [c for c in offered if c.method in chosen])

    def for_method(self, method: str) -> list[Offered]:
        return [c for c in self.checkpoints if c.method == method]

    def name_of(self, path: str) -> str | None:
        return next((c.name for c in self.checkpoints if str(c.path) == path), None)

    def methods_json(self) -> list[dict[str, Any]]:
        return [{"name": m, "family": spec.family, "summary": spec.summary, "needs_checkpoint": spec.needs_training,
                 "checkpoints": [{"name": c.name, "source": c.source} for c in self.for_method(m)]} for m, spec in self.methods.items()]


def parse_methods(text: str, offer: Offer) -> list[tuple[str, Offered | None, str]]:
    """``"telea,conv-l1@conv"`` -> [(method, checkpoint or None, result label)], each checked
    against the offer; UploadError (400) naming the valid choices otherwise."""
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise UploadError(f"choose at least one method: methods=NAME[,NAME...]; valid choices: {', '.join(offer.methods)}")
    picks: list[tuple[str, Offered | None, str]] = []
    for item in items:
        method, _, ck_name = item.partition("@")
        if method not in offer.methods:
            raise UploadError(str(choices_error("method", method, offer.methods)))
        spec, ckpts = offer.methods[method], offer.for_method(method)
        if ck_name:
            found = next((c for c in ckpts if c.name == ck_name), None)
            if found is None:
                valid = ", ".join(f"{method}@{c.name}" for c in ckpts) or f"{method} (takes no checkpoint)"
                raise UploadError(f"checkpoint {ck_name!r} is not offered by this server for {method}; valid choices: {valid}")
        elif spec.needs_training:
            if len(ckpts) > 1:
                raise UploadError(f"{method} has several checkpoints; choose one: {', '.join(f'{method}@{c.name}' for c in ckpts)}")
            found = ckpts[0]
        else:
            found = None
        label = method if found is None else f"{method}@{found.name}"
        if any(label == p[2] for p in picks):
            raise UploadError(f"{label} is listed twice")
        picks.append((method, found, label))
    return picks
