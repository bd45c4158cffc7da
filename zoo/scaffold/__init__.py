"""``zoo new-plugin NAME``: a pip-installable plugin package that works as generated.

``--kind method`` writes a small learned method (a dilated conv net trained with masked L1
through the shared engine: config with a ``tiny`` preset and field help, model, train,
sample, score; :mod:`zoo.scaffold.method`) and tests that run the contract kit
(:mod:`zoo.testing`) on it; ``--kind metric`` writes a per-image hole metric (gradient error
inside the hole against the ground truth; :mod:`zoo.scaffold.metric`) and tests that show it
tells a good fill from a bad one; ``--kind method,metric`` writes one package with both (the
method ``NAME`` and the metric ``NAME-grad-error``). Every package also gets a test that runs
the kit's ``hooks`` check on the plugin. The generated tests use only the API that
docs/plugins.md documents. Packages install offline with ``pip install --no-build-isolation
-e DIR`` where the zoo is installed.

NAME must be free: no loaded plugin (nor the core) may use it, or the plugin name derived
from it, for a plugin, method, metric, dataset or mask kind.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

from zoo.errors import ZooError
from zoo.fsutil import check_output_dir, removed_on_failure, write_text
from zoo.scaffold import method as _method
from zoo.scaffold import metric as _metric

KINDS = ("method", "metric")
_PARTS = {"method": _method, "metric": _metric}
_NAME = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")


def parse_kinds(kind: str) -> tuple[str, ...]:
    """``"method"``, ``"metric"`` or ``"method,metric"`` -> the kinds, in KINDS order."""
    parts = [p.strip() for p in str(kind).split(",") if p.strip()]
    bad = [p for p in parts if p not in KINDS]
    if not parts or bad:
        raise ZooError(f"unknown plugin kind {','.join(bad) or kind!r}; valid choices: method, metric, method,metric")
    return tuple(k for k in KINDS if k in parts)


def names(name: str, kinds: tuple[str, ...] = ("method",)) -> dict[str, str]:
    """``my-fill`` -> method ``my-fill``, plugin (entry-point key) ``my_fill``, package
    ``zoo_my_fill``, distribution ``zoo-my-fill``; the metric is ``my-fill``, or
    ``my-fill-grad-error`` beside a method."""
    if not _NAME.match(name):
        raise ZooError(f"plugin name {name!r}: use lowercase letters, digits and single dashes, starting with a letter (e.g. my-fill)")
    snake = name.replace("-", "_")
    metric = f"{name}-grad-error" if "method" in kinds else name
    return {"name": name, "plugin": snake, "package": f"zoo_{snake}", "dist": f"zoo-{name}", "title": name.replace("-", " ").title().replace(" ", ""),
            "metric": metric}


def _check_free(n: dict[str, str], kinds: tuple[str, ...]) -> None:
    """Refuse a name any loaded plugin or the core uses, in one line."""
    from zoo.plugins import get_manager

    used = get_manager().used_names()
    wanted = [("name", n["name"]), ("plugin name", n["plugin"])] + ([("metric name", n["metric"])] if "metric" in kinds else [])
    for what, value in wanted:
        if value in used:
            derived = "" if value == n["name"] else f" (from {n['name']!r})"
            raise ZooError(f"{what} {value!r}{derived} is already used ({used[value]}); choose another name")
    if importlib.util.find_spec(n["package"]) is not None:
        raise ZooError(f"the package name {n['package']!r} (from {n['name']!r}) is already importable here; choose another name")


def new_plugin(name: str, out: str | Path | None = None, kind: str = "method") -> Path:
    """Write the package for plugin ``name`` into ``out`` (default ``./zoo-NAME``); returns it.
    ``kind``: ``method``, ``metric`` or ``method,metric``."""
    kinds = parse_kinds(kind)
    n = names(name, kinds)
    _check_free(n, kinds)
    remedy = "choose a new folder with --out DIR" if out is None else "choose a new or empty folder"
    root = check_output_dir(out or f"zoo-{name}", {}, flag="--out" if out is not None else "the default --out", remedy=remedy)
    with removed_on_failure(root):
        for rel, text in _files(n, kinds).items():
            write_text(root / rel, text)
    return root


def _files(n: dict[str, str], kinds: tuple[str, ...]) -> dict[str, str]:
    parts = [_PARTS[k] for k in kinds]
    what = " and ".join(f"the {k} {n['metric'] if k == 'metric' else n['name']}" for k in kinds)
    zoo_names = sorted({name for part in parts for name in part.ZOO_IMPORTS}, key=lambda x: (x.islower(), x))
    imports = "\n".join(["from __future__ import annotations", "", f"from zoo import {', '.join(zoo_names)}"]
                        + [line for part in parts for line in ([""] + part.hook_imports(n) if part.hook_imports(n) else [])])
    hooks = '"""Hook implementations: wiring only (the logic lives in the files beside this one)."""\n\n' + imports + "\n\n\n" \
        + "\n\n".join(part.hooks(n) for part in parts)
    files = {
        "pyproject.toml": _pyproject(n, what[0].upper() + what[1:]),
        "README.md": _readme(n, " and ".join(f"the {k} `{n['metric'] if k == 'metric' else n['name']}`" for k in kinds), parts),
        f"{n['package']}/__init__.py": f'"""{what[0].upper() + what[1:]} for inpaint-zoo."""\n\n__version__ = "0.1.0"\n',
        f"{n['package']}/hooks.py": hooks,
        "tests/test_plugin.py": f'''"""The plugin loads, with valid hook names and arguments, and none of its names is refused."""

from zoo.testing import check_plugin


def test_the_plugin_passes_the_hooks_check():
    check_plugin("{n['plugin']}")
''',
    }
    for part in parts:
        files.update(part.files(n))
    return files


def _readme(n: dict[str, str], what: str, parts: list) -> str:
    return f"""# {n['dist']}

{what[0].upper() + what[1:]} as an [inpaint-zoo](https://pypi.org/project/inpaint-zoo/) plugin
(`{n['plugin']}`).

```bash
pip install --no-build-isolation -e .          # where inpaint-zoo is installed; no network needed
zoo plugins                                    # {n['plugin']} ... ok
python -m pytest                               # the zoo's contract kit on this plugin
```

""" + "\n".join(part.readme(n) for part in parts)


def _pyproject(n: dict[str, str], what: str) -> str:
    return f'''[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "{n['dist']}"
version = "0.1.0"
description = "{what} for inpaint-zoo"
readme = "README.md"
requires-python = ">=3.10"
dependencies = ["inpaint-zoo"]

[project.optional-dependencies]
test = ["pytest"]

# the key ({n['plugin']}) is the plugin's name: `zoo plugins` shows it, ZOO_LOAD_PLUGINS /
# ZOO_DISABLE_PLUGINS take it, and checkpoints record it
[project.entry-points."zoo.plugins"]
{n['plugin']} = "{n['package']}.hooks"

[tool.setuptools]
packages = ["{n['package']}"]

[tool.pytest.ini_options]
testpaths = ["tests"]
'''
