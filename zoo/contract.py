"""What the core checks of every plugin: its hook functions (names, arguments, markers)
and what its method hooks return. The plugin manager (:mod:`zoo.plugins`) applies these
checks when it loads a plugin and on every method-hook call; the messages are the ones
authors see in ``zoo plugins`` and in one-line errors."""

from __future__ import annotations

import difflib
import inspect
from typing import Any

import pluggy

from zoo import hookspecs


def hook_names() -> dict[str, list[str]]:
    """Every hook of the contract -> its argument names, from :mod:`zoo.hookspecs`."""
    out = {}
    for name, fn in vars(hookspecs).items():
        if name.startswith("zoo_") and callable(fn):
            out[name] = list(inspect.signature(fn).parameters)
    return out


def hook_problems(pm: pluggy.PluginManager, plugin: object) -> list[str]:
    """What is wrong with ``plugin``'s hook functions, one line per problem: a ``@hookimpl``
    whose name is no hook of the contract, one that declares arguments its hook does not
    pass, and a function named like a hook that lacks the ``@hookimpl`` marker."""
    specs = hook_names()
    problems = []
    for attr in sorted(dir(plugin)):
        try:
            obj = getattr(plugin, attr)
        except Exception:  # noqa: BLE001 - a property that raises is not a hook
            continue
        opts = pm.parse_hookimpl_opts(plugin, attr)
        if opts is None:
            if attr in specs and inspect.isroutine(obj) and getattr(obj, "__module__", None) != hookspecs.__name__:
                problems.append(f"{attr} is not marked @hookimpl (from zoo import hookimpl), so the zoo never calls it")
            continue
        name = opts.get("specname") or attr
        if name not in specs:
            near = difflib.get_close_matches(name, specs, n=1)
            hint = f"did you mean {near[0]}? " if near else ""
            problems.append(f"@hookimpl {name} is not a hook of the zoo ({hint}hooks: {', '.join(sorted(specs))})")
            continue
        params = inspect.signature(obj).parameters.values()
        args = [p.name for p in params if p.default is inspect.Parameter.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        extra = [a for a in args if a not in specs[name]]
        if extra:
            problems.append(f"{name}: argument(s) {', '.join(map(repr, extra))} are declared in the hookimpl but can not be found in the hookspec "
                            f"(it passes {', '.join(specs[name]) or 'nothing'})")
    return problems


#: What each method hook must return, as the messages say it.
_EXPECTED = {
    "zoo_build_model": "a torch.nn.Module",
    "zoo_train": "a zoo.TrainResult(state_dict=..., step=...)",
    "zoo_sample": "a zoo.SampleOutput(images=..., info={...})",
    "zoo_score": "a dict of name -> float, or None",
    "zoo_import_checkpoint": "a zoo.ImportedCheckpoint, or None for a file it cannot read",
}


def result_problem(hook: str, result: Any) -> str:
    """Why ``result`` is not what method hook ``hook`` must return ("" when it is)."""
    from zoo.spec import ImportedCheckpoint, SampleOutput, TrainResult

    got = "None" if result is None else f"a {type(result).__module__.split('.')[0]}.{type(result).__name__}" if not isinstance(result, (dict, list, tuple, str)) else f"a {type(result).__name__}"
    if hook == "zoo_build_model":
        import torch

        if isinstance(result, torch.nn.Module):
            return ""
    elif hook == "zoo_train":
        if isinstance(result, TrainResult):
            if not isinstance(result.state_dict, dict):
                return f"returned a TrainResult whose state_dict is {type(result.state_dict).__name__}; expected model.state_dict() (a dict of tensors)"
            return ""
        if result is None:
            return f"returned None after training; expected {_EXPECTED[hook]} (is a `return` missing?)"
    elif hook == "zoo_sample":
        if isinstance(result, SampleOutput):
            import torch

            if not isinstance(result.images, torch.Tensor):
                return f"returned a SampleOutput whose images are {type(result.images).__name__}; expected a tensor (B, 3, H, W) in [-1, 1]"
            if not isinstance(result.info, dict):
                return f"returned a SampleOutput whose info is {type(result.info).__name__}; expected a dict"
            return ""
    elif hook == "zoo_score":
        if result is None:
            return ""
        if isinstance(result, dict):
            bad = [k for k, v in result.items() if not isinstance(k, str) or isinstance(v, bool) or not _is_number(v)]
            if not bad:
                return ""
            k = bad[0]
            return f"returned {k!r}: {type(result[k]).__name__}; expected {_EXPECTED[hook]} (a one-element tensor is fine: float(x))"
    elif hook == "zoo_import_checkpoint":
        if result is None or isinstance(result, ImportedCheckpoint):
            return ""
    return f"returned {got}; expected {_EXPECTED[hook]}"


def _is_number(value: Any) -> bool:
    if isinstance(value, (int, float)):
        return True
    numel = getattr(value, "numel", None)  # a one-element tensor or numpy scalar
    if callable(numel):
        return numel() == 1
    return type(value).__module__ == "numpy" and getattr(value, "shape", None) == ()
