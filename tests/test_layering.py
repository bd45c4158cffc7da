"""The core's imports point one way (see the layering at the top of zoo/__init__.py).

Every import statement of every file is read with ``ast``, also those inside functions: a
late import is still a dependency. The test fails when an import goes up a layer, when the
modules of zoo/ form a loop, when the core imports a plugin or the CLI, when a plugin
imports another plugin, and when a file of zoo/ grows past the size a reader finishes in
one sitting."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 500

# bottom to top; a module may import its own layer or lower ones, never a higher one
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("typed objects and helpers", ("zoo", "zoo.errors", "zoo.spec", "zoo.config", "zoo.fsutil", "zoo.imageio", "zoo.device", "zoo.official", "zoo.hookspecs", "zoo.download", "zoo.progress")),
    ("plugin manager and registry", ("zoo.contract", "zoo.plugins", "zoo.registry")),
    ("building blocks", ("zoo.data", "zoo.masks", "zoo.metrics", "zoo.diffusion", "zoo.layers")),
    ("checkpoints, provenance, the sample contract, the core plugin", ("zoo.checkpoint", "zoo.provenance", "zoo.inpaint", "zoo.builtins")),
    ("training engine", ("zoo.train",)),
    ("drivers", ("zoo.runner", "zoo.sampling", "zoo.compare", "zoo.report", "zoo.worker", "zoo.testing", "zoo.scaffold", "zoo.fetch", "zoo.bench", "zoo.study", "zoo.study_args", "zoo.study_report", "zoo.demo", "zoo.shard", "zoo.serve")),
]


def _modules(folder: Path, package: str) -> dict[str, Path]:
    found = {}
    for path in folder.rglob("*.py"):
        parts = list(path.relative_to(folder).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join([package, *parts])] = path
    return found


def _imports(module: str, path: Path) -> set[str]:
    """Absolute names of everything ``path`` imports (module names and ``from X import y`` as X.y)."""
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
                for _ in range(node.level - 1):
                    pkg = pkg.rsplit(".", 1)[0]
                base = f"{pkg}.{base}" if base else pkg
            names.add(base)
            names.update(f"{base}.{a.name}" for a in node.names)
    return names


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _layer(module: str) -> int:
    best = (-1, -1)
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            if module == p or module.startswith(p + "."):
                best = max(best, (len(p), i))
    assert best[1] >= 0, f"{module} is in no layer: add it to LAYERS (and to zoo/__init__.py's docstring)"
    return best[1]


CORE = _modules(ROOT / "zoo", "zoo")


def _graph() -> dict[str, set[str]]:
    graph = {}
    for mod, path in CORE.items():
        targets = {_resolve(n, CORE) for n in _imports(mod, path) if n == "zoo" or n.startswith("zoo.")}
        # importing a sub-module runs its package's __init__: a dependency only on the package itself
        graph[mod] = {t for t in targets if t and t != mod and not mod.startswith(t + ".")}
    return graph


def test_every_import_in_zoo_goes_down_or_sideways():
    wrong = []
    for mod, targets in _graph().items():
        for t in targets:
            if _layer(t) > _layer(mod):
                wrong.append(f"{mod} ({LAYERS[_layer(mod)][0]}) imports {t} ({LAYERS[_layer(t)][0]})")
    assert not wrong, "\n".join(sorted(wrong))


def test_no_import_loops_in_zoo():
    graph = _graph()
    state: dict[str, int] = {}
    loops: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                loops.append(stack[stack.index(nxt):] + [nxt] if nxt in stack else [node, nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for mod in sorted(graph):
        if mod not in state:
            visit(mod, [mod])
    assert not loops, "import loops:\n" + "\n".join(" -> ".join(loop) for loop in loops)


def test_the_core_never_imports_a_plugin_or_the_cli():
    bad = [f"{m} imports {n}" for m, p in CORE.items() for n in _imports(m, p) if n.split(".")[0] in ("zoo_plugins", "zoo_cli", "plugins", "cli")]
    assert not bad, bad


def test_plugins_never_import_each_other_and_cli_only_imports_the_core():
    plugins = _modules(ROOT / "plugins", "zoo_plugins")
    bad = []
    for mod, path in plugins.items():
        own = ".".join(mod.split(".")[:2])
        for n in _imports(mod, path):
            if n.startswith("zoo_plugins.") and not (n == own or n.startswith(own + ".")):
                bad.append(f"{mod} imports {n}")
            if n.split(".")[0] == "zoo_cli":
                bad.append(f"{mod} imports {n}")
    for mod, path in _modules(ROOT / "cli", "zoo_cli").items():
        bad += [f"{mod} imports {n}" for n in _imports(mod, path) if n.split(".")[0] == "zoo_plugins"]
    assert not bad, bad


@pytest.mark.parametrize("path", sorted(ROOT.joinpath("zoo").rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_core_file_is_oversized(path):
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(ROOT)} has {lines} lines (> {MAX_LINES}): split it by responsibility"


def test_the_checker_sees_a_loop_and_an_upward_import(tmp_path):
    """The walk itself works: a planted upward import and loop are reported."""
    fake = {"zoo.data": tmp_path / "a.py", "zoo.runner": tmp_path / "b.py"}
    fake["zoo.data"].write_text("def f():\n    from zoo.runner import train\n")
    fake["zoo.runner"].write_text("from zoo.data import open_data\n")
    globals()["CORE"], saved = fake, CORE
    try:
        with pytest.raises(AssertionError, match="zoo.data .* imports zoo.runner"):
            test_every_import_in_zoo_goes_down_or_sideways()
        with pytest.raises(AssertionError, match="import loops"):
            test_no_import_loops_in_zoo()
    finally:
        globals()["CORE"] = saved
