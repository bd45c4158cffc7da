"""Plugin manager: entry-point discovery, the ``ZOO_LOAD_PLUGINS`` allow-list, isolation of
broken plugins, and dispatch of every method hook to the plugin that owns the method.

Built-in plugins and third-party ones are found the same way: through the ``zoo.plugins``
entry-point group. The core's own defaults (the ``shapes`` dataset, mask kinds, metrics)
are an ordinary plugin, :mod:`zoo.builtins`, found through its entry point ``zoo`` in the
same group (so this module never imports it: the data, masks and metrics the built-in
plugin declares look names up through this manager), and always loaded, whatever the
allow-list says.

What the manager checks for every plugin, so that no plugin can break another:

1. **Hooks**: every ``@hookimpl`` function must be named after a hook of
   :mod:`zoo.hookspecs` and take only that hook's arguments; a ``zoo_*`` hook function
   without the marker is reported too. A plugin with such a problem is ``broken`` (one line
   per problem, with the valid names) and is not registered.
2. **Registration** (once, in load order: the core, the built-in plugins, then third-party
   plugins by name): every plugin's ``zoo_register_methods`` / ``_metrics`` / ``_datasets``
   / ``_mask_generators`` are called. A plugin whose registration raises or returns the
   wrong type is ``broken`` and contributes nothing (no method, metric, dataset or mask
   kind of it stays). A name another plugin registered first is refused for the later
   plugin, with one warning naming both; the rest of that plugin works.
3. **Dispatch**: ``zoo_build_model``, ``zoo_train``, ``zoo_sample``, ``zoo_score`` and
   ``zoo_import_checkpoint`` for method M are called on the plugin that registered M and
   on no other (:meth:`ZooPluginManager.call`), and what they return is checked
   (:class:`zoo.errors.PluginError`: one line naming the plugin, the hook and the
   expected type). An exception raised inside a plugin's own code keeps its traceback and
   is tagged with the plugin and hook (:func:`zoo.errors.plugin_origin`), which the CLI
   prints first in one line.
"""

from __future__ import annotations

import os
import traceback
import warnings
from dataclasses import dataclass, field, is_dataclass
from importlib import metadata
from typing import Any

import pluggy

from zoo import hookspecs
from zoo.contract import hook_problems, result_problem
from zoo.errors import PluginError, ZooError, ZooWarning, choices_error, plugin_error, tag_plugin_origin
from zoo.spec import DatasetSpec, MaskGeneratorSpec, MethodSpec, MetricSpec

ENTRY_POINT_GROUP = "zoo.plugins"
ALLOW_ENV = "ZOO_LOAD_PLUGINS"
DISABLE_ENV = "ZOO_DISABLE_PLUGINS"
TRACE_ENV = "ZOO_TRACE_HOOKS"
CORE_PLUGIN, CORE_MODULE = "zoo", "zoo.builtins"  # the core's own datasets, mask kinds, metrics
BUILTIN_SOURCE = "inpaint-zoo"  # the distribution of the built-in plugins

#: Hooks called for one method, on the plugin that registered it only.
METHOD_HOOKS = ("zoo_build_model", "zoo_train", "zoo_sample", "zoo_score", "zoo_import_checkpoint")

#: What each plugin registers: kind -> (hook, spec type, singular noun for messages).
KINDS: dict[str, tuple[str, type, str]] = {
    "methods": ("zoo_register_methods", MethodSpec, "method"),
    "metrics": ("zoo_register_metrics", MetricSpec, "metric"),
    "datasets": ("zoo_register_datasets", DatasetSpec, "dataset"),
    "mask_kinds": ("zoo_register_mask_generators", MaskGeneratorSpec, "mask kind"),
}


@dataclass
class PluginInfo:
    """One row of ``zoo plugins``."""

    name: str
    version: str
    source: str  # distribution that provides it, or "core"
    status: str  # "ok" | "broken" | "disabled"
    hooks: list[str] = field(default_factory=list)
    methods: list[str] = field(default_factory=list)
    error: str = ""  # why it is broken or disabled; one line per problem
    metrics: list[str] = field(default_factory=list)
    datasets: list[str] = field(default_factory=list)
    mask_kinds: list[str] = field(default_factory=list)
    #: Names this plugin registers that another plugin had registered first (ignored).
    refused: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "source": self.source,
            "status": self.status,
            "hooks": self.hooks,
            "methods": self.methods,
            "metrics": self.metrics,
            "datasets": self.datasets,
            "mask_kinds": self.mask_kinds,
            "refused": self.refused,
            "error": self.error,
        }


class ZooPluginManager:
    """Loads plugins once and answers questions about them."""

    def __init__(self, allow: list[str] | None = None, entry_points: list[Any] | None = None, disable: list[str] | None = None, trace: bool = False) -> None:
        self.pm = pluggy.PluginManager("zoo")
        self.pm.add_hookspecs(hookspecs)
        self.infos: dict[str, PluginInfo] = {}
        self._names: dict[str, dict[str, tuple[Any, str]]] | None = None  # kind -> name -> (spec, plugin)
        self._callers: dict[tuple[str, str], Any] = {}
        self._allow = allow
        self._disable = list(disable or [])
        self._load(entry_points)
        if trace:
            self._trace()

    # -- loading ------------------------------------------------------------------------
    def _load(self, entry_points: list[Any] | None) -> None:
        from zoo import __version__

        installed = list(metadata.entry_points(group=ENTRY_POINT_GROUP))
        core = [ep for ep in installed if ep.name == CORE_PLUGIN and ep.value == CORE_MODULE]
        try:
            if not core:
                raise ZooError(f"the core plugin's entry point ({CORE_PLUGIN} = {CORE_MODULE!r} in group {ENTRY_POINT_GROUP}) is not installed; reinstall inpaint-zoo (python -m pip install -e .)")
            self._add(core[0].load(), CORE_PLUGIN, __version__, "core")
        except Exception as exc:  # noqa: BLE001 - reported by `zoo plugins`
            self.infos[CORE_PLUGIN] = PluginInfo(CORE_PLUGIN, __version__, "core", "broken", error=_one_line(exc))

        eps = entry_points if entry_points is not None else installed
        seen: set[tuple[str, str]] = {(CORE_PLUGIN, CORE_MODULE)}
        dists = {id(ep): _dist_of(ep) for ep in eps}
        # built-in plugins first (they own the registry's names), then third-party ones by name
        for ep in sorted(eps, key=lambda e: (dists[id(e)][0] != BUILTIN_SOURCE, e.name)):
            if (ep.name, ep.value) in seen:  # the same distribution found twice on sys.path
                continue
            seen.add((ep.name, ep.value))
            if ep.name in self.infos:
                if self.pm.get_plugin(ep.name) is not None:
                    self.pm.unregister(name=ep.name)
                self.infos[ep.name].status = "broken"
                self.infos[ep.name].error = f"two packages register a plugin named {ep.name!r} ({ep.value})"
                continue
            source, version = dists[id(ep)]
            if self._allow is not None and ep.name not in self._allow:
                self.infos[ep.name] = PluginInfo(ep.name, version, source, "disabled", error=f"not in ${ALLOW_ENV}")
                continue
            if ep.name in self._disable:
                self.infos[ep.name] = PluginInfo(ep.name, version, source, "disabled", error=f"in ${DISABLE_ENV}")
                continue
            try:
                module = ep.load()
            except Exception as exc:  # a broken plugin must not break the CLI
                self.infos[ep.name] = PluginInfo(ep.name, version, source, "broken", error=_one_line(exc))
                continue
            self._add(module, ep.name, version, source)
        if self._allow == []:
            warnings.warn(ZooWarning(f"{ALLOW_ENV} is set but empty: only the core plugin is loaded (unset it to load all)"), stacklevel=3)
        for env, names in ((ALLOW_ENV, self._allow or []), (DISABLE_ENV, self._disable)):
            unknown = [n for n in names if n not in self.infos]
            if unknown:
                valid = ", ".join(sorted(n for n in self.infos if n != CORE_PLUGIN)) or "(none)"
                warnings.warn(ZooWarning(f"{env}: no plugin named {', '.join(map(repr, unknown))}; valid names: {valid}"), stacklevel=3)

    def _add(self, plugin: object, name: str, version: str, source: str) -> PluginInfo:
        """Check ``plugin``'s hook functions, then register it (or record it as broken)."""
        problems = hook_problems(self.pm, plugin)
        if not problems:
            try:
                self.pm.register(plugin, name=name)
            except Exception as exc:  # noqa: BLE001 - pluggy's own validation; keep all of it
                problems = [line.strip() for line in str(exc).splitlines() if line.strip()] or [_one_line(exc)]
        if problems:
            info = PluginInfo(name, version, source, "broken", error="\n".join(problems))
        else:
            info = PluginInfo(name, version, source, "ok", self._hooks_of(name))
        self.infos[name] = info
        self._changed()
        return info

    def _trace(self) -> None:
        """Log every hook call and what it returned to stderr (``$ZOO_TRACE_HOOKS=1``)."""
        import sys

        def before(hook_name, hook_impls, kwargs):
            shown = {k: (v if isinstance(v, (str, int, float, bool, type(None))) else type(v).__name__) for k, v in kwargs.items()}
            print(f"[hook] {hook_name}({shown}) -> plugins {[i.plugin_name for i in hook_impls]}", file=sys.stderr)

        def after(outcome, hook_name, hook_impls, kwargs):
            if outcome.exception is not None:
                exc = outcome.exception
                print(f"[hook] {hook_name} raised {type(exc).__name__}: {exc}", file=sys.stderr)
                return
            print(f"[hook] {hook_name} returned {type(outcome.get_result()).__name__}", file=sys.stderr)

        self.pm.add_hookcall_monitoring(before, after)
        self._callers.clear()

    def register(self, plugin: object, name: str, version: str = "0", source: str = "test") -> PluginInfo:
        """Register a plugin object directly (tests, notebooks), with the same checks as an
        installed one; returns its row of ``zoo plugins`` (``status`` says whether it loaded)."""
        return self._add(plugin, name, version, source)

    def unregister(self, name: str) -> None:
        if self.pm.get_plugin(name) is not None:
            self.pm.unregister(name=name)
        self.infos.pop(name, None)
        self._changed()

    def _changed(self) -> None:
        self._names = None
        self._callers.clear()

    def _hooks_of(self, name: str) -> list[str]:
        plugin = self.pm.get_plugin(name)
        return sorted(h.name for h in self.pm.get_hookcallers(plugin) or [])

    def _broken(self, name: str, error: str) -> None:
        """Unregister plugin ``name`` and mark it broken: it contributes nothing."""
        if self.pm.get_plugin(name) is not None:
            self.pm.unregister(name=name)
        info = self.infos[name]
        info.status, info.error, info.hooks = "broken", error, []
        info.methods, info.metrics, info.datasets, info.mask_kinds, info.refused = [], [], [], [], []
        self._callers.clear()

    # -- registration -------------------------------------------------------------------
    def _registered(self) -> dict[str, dict[str, tuple[Any, str]]]:
        """kind -> name -> (spec, plugin), from every healthy plugin, in load order."""
        if self._names is not None:
            return self._names
        names: dict[str, dict[str, tuple[Any, str]]] = {kind: {} for kind in KINDS}
        self._names = names  # a registration hook that asks the manager sees what is known so far
        for plugin_name in list(self.infos):
            info = self.infos[plugin_name]
            if info.status != "ok" or self.pm.get_plugin(plugin_name) is None:
                continue
            try:
                declared = {kind: self._declared(plugin_name, kind) for kind in KINDS}
            except PluginError as exc:
                self._broken(plugin_name, str(exc))
                continue
            except Exception as exc:  # noqa: BLE001 - the plugin is broken, the zoo goes on
                self._broken(plugin_name, f"{getattr(exc, 'zoo_hook', 'registration')}: {_one_line(exc)}")
                continue
            for kind, specs in declared.items():
                noun = KINDS[kind][2]
                accepted = []
                for spec in specs:
                    if spec.name in names[kind]:
                        first = names[kind][spec.name][1]
                        info.refused.append(f"{noun} {spec.name} (registered first by {first})")
                        warnings.warn(ZooWarning(f"plugin {plugin_name!r} registers the {noun} {spec.name!r}, which plugin {first!r} registered first; "
                                                 f"{plugin_name}'s is ignored (rename it)", kind=f"{noun} name clash {spec.name}"), stacklevel=2)
                        continue
                    names[kind][spec.name] = (spec, plugin_name)
                    accepted.append(spec.name)
                setattr(info, kind, accepted)
        return names

    def _declared(self, plugin_name: str, kind: str) -> list[Any]:
        """What ``plugin_name``'s registration hook of ``kind`` returns, checked."""
        hook, spec_type, noun = KINDS[kind]
        caller = self._caller(hook, plugin_name)
        if caller is None:
            return []
        try:
            results = caller()
        except Exception as exc:
            exc.zoo_hook = hook  # type: ignore[attr-defined]
            raise
        out = []
        seen: set[str] = set()
        for result in results:
            if result is None:
                continue
            if isinstance(result, (str, bytes)) or not hasattr(result, "__iter__"):
                raise _hook_error(hook, f"returned {type(result).__name__}; expected a list of zoo.{spec_type.__name__}")
            for spec in result:
                if not isinstance(spec, spec_type):
                    raise _hook_error(hook, f"returned a {type(spec).__name__} in its list; expected zoo.{spec_type.__name__}")
                if not isinstance(spec.name, str) or not spec.name.strip():
                    raise _hook_error(hook, f"a {noun} has the name {spec.name!r}; expected a non-empty string")
                if spec.name in seen:
                    raise _hook_error(hook, f"the {noun} {spec.name!r} is listed twice")
                if kind == "methods" and is_dataclass(spec.config) and not isinstance(spec.config, type):
                    cls = type(spec.config).__name__
                    raise _hook_error(hook, f"method {spec.name!r}: config is an instance of {cls}; pass the class itself (config={cls})")
                seen.add(spec.name)
                out.append(spec)
        return out

    def add_commands(self, cli: Any) -> None:
        """Call every healthy plugin's ``zoo_register_commands(cli)``, after the registration
        pass (so a plugin found broken there adds none); a plugin whose hook raises is named
        in a warning and the others' commands are still added."""
        self._registered()
        for name, info in self.infos.items():
            caller = self._caller("zoo_register_commands", name) if info.status == "ok" else None
            if caller is None:
                continue
            try:
                caller(cli=cli)
            except Exception as exc:  # noqa: BLE001 - a plugin's command must not break the CLI
                warnings.warn(ZooWarning(f"plugin {name!r} failed to add its commands (zoo_register_commands: {_one_line(exc)})"), stacklevel=2)

    # -- dispatch -----------------------------------------------------------------------
    def _caller(self, hook_name: str, plugin_name: str):
        """A hook caller that calls ``plugin_name``'s implementation of ``hook_name`` and no
        other's (pluggy's ``subset_hook_caller``), or None when it has none."""
        key = (hook_name, plugin_name)
        if key not in self._callers:
            plugin = self.pm.get_plugin(plugin_name)
            hc = getattr(self.pm.hook, hook_name, None)
            if plugin is None or hc is None or not any(impl.plugin is plugin for impl in hc.get_hookimpls()):
                self._callers[key] = None
            else:
                others = [p for p in self.pm.get_plugins() if p is not plugin]
                self._callers[key] = self.pm.subset_hook_caller(hook_name, remove_plugins=others)
        return self._callers[key]

    def implements(self, method: str, hook_name: str) -> bool:
        """Whether the plugin that owns ``method`` implements ``hook_name``."""
        return self._caller(hook_name, self.owner("methods", method)) is not None

    def call(self, hook_name: str, method: str, **kwargs: Any) -> Any:
        """Call method hook ``hook_name`` for ``method`` on the plugin that registered it, and
        on no other; returns what it returned (``None`` when that plugin does not implement
        the hook). An exception from the plugin's code is tagged with the plugin and the
        hook (:func:`zoo.errors.plugin_origin`) and re-raised with its traceback."""
        if hook_name not in METHOD_HOOKS:
            raise ValueError(f"{hook_name} is not a method hook; method hooks: {', '.join(METHOD_HOOKS)}")
        plugin = self.owner("methods", method)
        caller = self._caller(hook_name, plugin)
        if caller is None:
            if hook_name in ("zoo_build_model", "zoo_sample"):
                raise plugin_error(plugin, hook_name, f"the plugin registers method {method!r} but does not implement {hook_name}", method)
            return None
        try:
            result = caller(method=method, **kwargs)
        except (ZooError, KeyboardInterrupt):
            raise
        except Exception as exc:
            tag_plugin_origin(exc, plugin, hook_name, method)
            raise
        problem = result_problem(hook_name, result)
        if problem:
            raise plugin_error(plugin, hook_name, problem, method)
        return result

    # -- queries ------------------------------------------------------------------------
    @property
    def hook(self) -> Any:
        return self.pm.hook

    def plugins(self) -> list[PluginInfo]:
        self._registered()  # registration errors mark plugins broken
        return [self.infos[k] for k in sorted(self.infos, key=lambda n: (n != "zoo", n))]

    def names(self, kind: str) -> dict[str, tuple[Any, str]]:
        """Every registered name of ``kind`` (methods, metrics, datasets, mask_kinds) ->
        (spec, plugin name)."""
        return self._registered()[kind]

    def specs(self, kind: str) -> dict[str, Any]:
        """Every registered name of ``kind`` -> its spec."""
        return {name: spec for name, (spec, _) in self.names(kind).items()}

    def owner(self, kind: str, name: str) -> str:
        """The plugin that registered ``name`` of ``kind``; a ZooError listing the valid names."""
        found = self.names(kind)
        if name not in found:
            if kind == "methods":
                self.method(name)  # the error that names plugins not loaded
            raise choices_error(KINDS[kind][2], name, found)
        return found[name][1]

    def used_names(self) -> dict[str, str]:
        """Every name any loaded plugin or the core uses (plugins, methods, metrics,
        datasets, mask kinds) -> what uses it, e.g. ``"metric of plugin zoo"``."""
        out = {name: f"plugin {name}" for name in self.infos}
        for kind, (_, _, noun) in KINDS.items():
            for name, (_, plugin) in self.names(kind).items():
                out.setdefault(name, f"{noun} of plugin {plugin}")
        return out

    def methods(self) -> dict[str, tuple[MethodSpec, str]]:
        """Method name -> (spec, plugin name), from every healthy plugin."""
        return self.names("methods")

    def method(self, name: str) -> MethodSpec:
        """The spec of one method, or a ZooError listing the valid names."""
        methods = self.methods()
        if name not in methods:
            err = choices_error("method", name, methods)
            missing = self.not_loaded()
            if missing:  # its plugin may be the one that failed or was switched off
                err = ZooError(f"{err}; not loaded: {'; '.join(m.replace(chr(10), '; ') for m in missing)} (see `zoo plugins`)")
            raise err
        return methods[name][0]

    def not_loaded(self) -> list[str]:
        """``"NAME (broken: ERROR)"`` / ``"NAME (disabled: WHY)"`` for every plugin not loaded."""
        self._registered()
        return [f"{p.name} ({p.status}: {p.error})" if p.error else f"{p.name} ({p.status})" for p in self.infos.values() if p.status != "ok"]

    def plugin_of(self, method: str) -> PluginInfo:
        return self.infos[self.owner("methods", method)]

    def collect(self, hook_name: str) -> list[Any]:
        """The specs every healthy plugin registers through a ``zoo_register_*`` hook, without
        refused duplicates (``zoo_register_commands`` is called on every plugin instead)."""
        for kind, (hook, _, _) in KINDS.items():
            if hook == hook_name:
                return list(self.specs(kind).values())
        raise ValueError(f"{hook_name} is not a registration hook; valid: {', '.join(h for h, _, _ in KINDS.values())}")


def _hook_error(hook: str, message: str) -> PluginError:
    exc = PluginError(f"{hook}: {message}")
    exc.zoo_hook = hook  # type: ignore[attr-defined]
    return exc


def _dist_of(ep: Any) -> tuple[str, str]:
    """(distribution name, version) of an entry point, "?" when unknown, read from the first
    lines of its METADATA file (``dist.metadata`` parses the whole file with the email
    package, which the catalog commands cannot afford for every plugin)."""
    dist = getattr(ep, "dist", None)
    if dist is None:
        return "?", "?"
    fields: dict[str, str] = {}
    text = dist.read_text("METADATA") or dist.read_text("PKG-INFO") or ""
    for line in text.splitlines():
        if not line.strip():
            break  # the headers end at the first blank line
        name, _, value = line.partition(":")
        if name in ("Name", "Version") and name not in fields:
            fields[name] = value.strip()
    return fields.get("Name", "?"), fields.get("Version", "?")


def _one_line(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip().splitlines()
    where = traceback.extract_tb(exc.__traceback__)
    loc = f" ({where[-1].filename}:{where[-1].lineno})" if where else ""
    return (text[0] if text else type(exc).__name__) + loc


_MANAGER: ZooPluginManager | None = None


def allow_list() -> list[str] | None:
    raw = os.environ.get(ALLOW_ENV)
    if raw is None:
        return None
    return [p.strip() for p in raw.split(",") if p.strip()]


def get_manager() -> ZooPluginManager:
    """The process-wide plugin manager (created on first use)."""
    global _MANAGER
    if _MANAGER is None:
        disable = [p.strip() for p in os.environ.get(DISABLE_ENV, "").split(",") if p.strip()]
        _MANAGER = ZooPluginManager(allow=allow_list(), disable=disable, trace=os.environ.get(TRACE_ENV, "") not in ("", "0"))
    return _MANAGER


def reset_manager() -> None:
    """Forget the loaded plugins (after installing a package, or in tests)."""
    global _MANAGER
    _MANAGER = None


def require_method(name: str) -> MethodSpec:
    return get_manager().method(name)


__all__ = ["ZooPluginManager", "PluginInfo", "METHOD_HOOKS", "get_manager", "reset_manager", "require_method", "hook_problems", "ZooError"]
