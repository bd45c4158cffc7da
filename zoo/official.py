"""Reading official checkpoints without executing anything they contain.

Published ``.ckpt`` / ``.pt`` / ``.pth`` files are pickles. A plain ``pickle.load`` runs any
callable the file names, so the zoo never uses one. :func:`load_official` first tries
``torch.load(weights_only=True)``; when the file also carries non-tensor objects (a
Lightning checkpoint with a pickled OmegaConf training config, callback state, ...), it
falls back to a restricted unpickler that keeps tensors and plain containers and turns every
other class or function into an inert :class:`Opaque` placeholder that records its arguments
and does nothing.
"""

from __future__ import annotations

import pickle
import types
from pathlib import Path
from typing import Any

import torch

from zoo.errors import ZooError

#: Globals a checkpoint may name that rebuild tensors or plain containers.
_ALLOWED: dict[str, set[str]] = {
    "torch._utils": {"_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_parameter", "_rebuild_parameter_with_state"},
    "collections": {"OrderedDict"},
    "torch": {"Size"},
    "builtins": {"set", "frozenset", "slice", "complex"},
}


class Opaque:
    """An inert stand-in for a class or function a checkpoint names but the zoo does not trust.

    Calling it, building it or setting its state only records what was passed.
    """

    _zoo_name = "?"

    def __new__(cls, *args: Any, **kwargs: Any) -> "Opaque":
        obj = object.__new__(cls)
        obj.__dict__["_zoo_args"] = args
        obj.__dict__["_zoo_state"] = None
        obj.__dict__["_zoo_items"] = {}
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        self.__dict__["_zoo_state"] = state

    def __setitem__(self, key: Any, value: Any) -> None:
        self.__dict__["_zoo_items"][key] = value

    def append(self, value: Any) -> None:
        self.__dict__["_zoo_items"][len(self.__dict__["_zoo_items"])] = value

    def extend(self, values: Any) -> None:
        for v in values:
            self.append(v)

    def __call__(self, *args: Any, **kwargs: Any) -> "Opaque":
        return _placeholder("call", self._zoo_name)(*args)

    def __repr__(self) -> str:
        return f"<opaque {self._zoo_name}>"


def _placeholder(module: str, name: str) -> type:
    return type("Opaque", (Opaque,), {"_zoo_name": f"{module}.{name}"})


class RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the globals in the allow-list; everything else becomes :class:`Opaque`."""

    def find_class(self, module: str, name: str) -> Any:
        if name in _ALLOWED.get(module, ()):
            return super().find_class(module, name)
        if module == "torch" and (name.endswith("Storage") or name in _dtype_names()):
            return super().find_class(module, name)
        if module == "torch.storage" and name == "UntypedStorage":
            return super().find_class(module, name)
        return _placeholder(module, name)


def _dtype_names() -> set[str]:
    return {n for n in dir(torch) if isinstance(getattr(torch, n, None), torch.dtype)}


#: A module object with the interface ``torch.load(pickle_module=...)`` expects.
restricted_pickle = types.ModuleType("zoo_restricted_pickle")
restricted_pickle.Unpickler = RestrictedUnpickler  # type: ignore[attr-defined]
# torch's legacy (non-zip) loader reads its header with ``pickle_module.load``: that must be
# restricted too, or a legacy-format file runs code before the tensors are even read
restricted_pickle.load = lambda file, **kwargs: RestrictedUnpickler(file, **kwargs).load()  # type: ignore[attr-defined]
restricted_pickle.__name__ = "zoo_restricted_pickle"


def load_official(path: str | Path) -> Any:
    """Load an official checkpoint on the CPU without executing code from it."""
    path = Path(path)
    if not path.exists():
        raise ZooError(f"official checkpoint {path} does not exist")
    if path.is_dir():
        raise ZooError(f"{path} is a folder; give the checkpoint file inside it")
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        pass  # non-tensor objects beside the weights: use the restricted unpickler
    except Exception as exc:
        raise ZooError(f"{path} is not a readable PyTorch checkpoint ({_reason(exc)})") from None
    try:
        return torch.load(str(path), map_location="cpu", weights_only=False, pickle_module=restricted_pickle)
    except Exception as exc:
        raise ZooError(f"{path} is not a readable PyTorch checkpoint ({_reason(exc)})") from None


def _reason(exc: BaseException) -> str:
    text = str(exc).splitlines()[0][:160] if str(exc) else ""
    if "enforce fail" in text or "PytorchStreamReader" in text:  # torch's C++ zip reader
        return "a zip archive that is not a PyTorch checkpoint; if it is a download, unpack it and give the checkpoint inside"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def tensors_only(obj: Any) -> dict[str, torch.Tensor]:
    """Keep the tensor entries of a (possibly nested) state dict, flat, in file order."""
    if not isinstance(obj, dict):
        raise ZooError(f"expected a state dict, found {type(obj).__name__}")
    return {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
