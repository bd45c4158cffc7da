"""Plugin manager: entry-point discovery, the ``ZOO_LOAD_PLUGINS`` allow-list, and
isolation of broken plugins.

Built-in plugins and third-party ones are found the same way: through the ``zoo.plugins``
entry-point group. The core's own defaults (the ``shapes`` dataset, mask kinds, metrics)
are an ordinary plugin, :mod:`zoo.builtins`, found through its entry point ``zoo`` in the
same group (so this module never imports it: the data, masks and metrics the built-in
plugin declares look names up through this manager), and always loaded, whatever the
allow-list says.

A plugin that raises while importing or while declaring its methods is unregistered and
listed by ``zoo plugins`` as ``broken`` with its error; everything else keeps working.
"""

from __future__ import annotations

import os
import traceback
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import pluggy

from zoo import hookspecs
from zoo.errors import ZooError, choices_error
from zoo.spec import MethodSpec

ENTRY_POINT_GROUP = "zoo.plugins"
ALLOW_ENV = "ZOO_LOAD_PLUGINS"
DISABLE_ENV = "ZOO_DISABLE_PLUGINS"
TRACE_ENV = "ZOO_TRACE_HOOKS"
CORE_PLUGIN, CORE_MODULE = "zoo", "zoo.builtins"  # the core's own datasets, mask kinds, metrics


@dataclass
class PluginInfo:
    """One row of ``zoo plugins``."""

    name: str
    version: str
    source: str  # distribution that provides it, or "core"
    status: str  # "ok" | "broken" | "disabled"
    hooks: list[str] = field(default_factory=list)
    methods: list[str] = field(default_factory=list)
    error: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "source": self.source,
            "status": self.status,
            "hooks": self.hooks,
            "methods": self.methods,
            "error": self.error,
        }


class ZooPluginManager:
    """Loads plugins once and answers questions about them."""

    def __init__(self, allow: list[str] | None = None, entry_points: list[Any] | None = None, disable: list[str] | None = None, trace: bool = False) -> None:
        self.pm = pluggy.PluginManager("zoo")
        self.pm.add_hookspecs(hookspecs)
        self.infos: dict[str, PluginInfo] = {}
        self._methods: dict[str, tuple[MethodSpec, str]] | None = None
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
            self.pm.register(core[0].load(), name=CORE_PLUGIN)
            self.infos[CORE_PLUGIN] = PluginInfo(CORE_PLUGIN, __version__, "core", "ok", self._hooks_of(CORE_PLUGIN))
        except Exception as exc:  # noqa: BLE001 - reported by `zoo plugins`
            self.infos[CORE_PLUGIN] = PluginInfo(CORE_PLUGIN, __version__, "core", "broken", error=_one_line(exc))

        eps = entry_points if entry_points is not None else installed
        seen: set[tuple[str, str]] = {(CORE_PLUGIN, CORE_MODULE)}
        for ep in sorted(eps, key=lambda e: e.name):
            if (ep.name, ep.value) in seen:  # the same distribution found twice on sys.path
                continue
            seen.add((ep.name, ep.value))
            if ep.name in self.infos:
                if self.pm.get_plugin(ep.name) is not None:
                    self.pm.unregister(name=ep.name)
                self.infos[ep.name].status = "broken"
                self.infos[ep.name].error = f"two packages register a plugin named {ep.name!r} ({ep.value})"
                continue
            dist = getattr(ep, "dist", None)
            version = dist.version if dist is not None else "?"
            source = dist.metadata["Name"] if dist is not None else "?"
            if self._allow is not None and ep.name not in self._allow:
                self.infos[ep.name] = PluginInfo(ep.name, version, source, "disabled", error=f"not in ${ALLOW_ENV}")
                continue
            if ep.name in self._disable:
                self.infos[ep.name] = PluginInfo(ep.name, version, source, "disabled", error=f"in ${DISABLE_ENV}")
                continue
            try:
                module = ep.load()
                self.pm.register(module, name=ep.name)
            except Exception as exc:  # a broken plugin must not break the CLI
                self.infos[ep.name] = PluginInfo(ep.name, version, source, "broken", error=_one_line(exc))
                continue
            self.infos[ep.name] = PluginInfo(ep.name, version, source, "ok", self._hooks_of(ep.name))
        if self._allow == []:
            import warnings

            from zoo.errors import ZooWarning

            warnings.warn(ZooWarning(f"{ALLOW_ENV} is set but empty: only the core plugin is loaded (unset it to load all)"), stacklevel=3)
        for env, names in ((ALLOW_ENV, self._allow or []), (DISABLE_ENV, self._disable)):
            unknown = [n for n in names if n not in self.infos]
            if unknown:
                import warnings

                from zoo.errors import ZooWarning

                valid = ", ".join(sorted(n for n in self.infos if n != CORE_PLUGIN)) or "(none)"
                warnings.warn(ZooWarning(f"{env}: no plugin named {', '.join(map(repr, unknown))}; valid names: {valid}"), stacklevel=3)

    def _trace(self) -> None:
        """Log every hook call and what it returned to stderr (``$ZOO_TRACE_HOOKS=1``)."""
        import sys

        def before(hook_name, hook_impls, kwargs):
            shown = {k: (v if isinstance(v, (str, int, float, bool, type(None))) else type(v).__name__) for k, v in kwargs.items()}
            print(f"[hook] {hook_name}({shown}) -> plugins {[i.plugin_name for i in hook_impls]}", file=sys.stderr)

        def after(outcome, hook_name, hook_impls, kwargs):
            try:
                result = outcome.get_result()
            except BaseException as exc:  # noqa: BLE001 - shown, then re-raised by pluggy
                print(f"[hook] {hook_name} raised {type(exc).__name__}: {exc}", file=sys.stderr)
                return
            print(f"[hook] {hook_name} returned {type(result).__name__}", file=sys.stderr)

        self.pm.add_hookcall_monitoring(before, after)

    def register(self, plugin: object, name: str, version: str = "0", source: str = "test") -> None:
        """Register a plugin object directly (tests, notebooks)."""
        self.pm.register(plugin, name=name)
        self.infos[name] = PluginInfo(name, version, source, "ok", self._hooks_of(name))
        self._methods = None

    def unregister(self, name: str) -> None:
        self.pm.unregister(name=name)
        self.infos.pop(name, None)
        self._methods = None

    def _hooks_of(self, name: str) -> list[str]:
        plugin = self.pm.get_plugin(name)
        return sorted(h.name for h in self.pm.get_hookcallers(plugin) or [])

    # -- queries ------------------------------------------------------------------------
    @property
    def hook(self) -> Any:
        return self.pm.hook

    def plugins(self) -> list[PluginInfo]:
        self.methods()  # registration errors mark plugins broken
        return [self.infos[k] for k in sorted(self.infos, key=lambda n: (n != "zoo", n))]

    def methods(self) -> dict[str, tuple[MethodSpec, str]]:
        """Method name -> (spec, plugin name), from every healthy plugin."""
        if self._methods is not None:
            return self._methods
        found: dict[str, tuple[MethodSpec, str]] = {}
        for name in list(self.infos):
            info = self.infos[name]
            plugin = self.pm.get_plugin(name)
            if info.status != "ok" or plugin is None or not hasattr(plugin, "zoo_register_methods"):
                continue
            try:
                specs = list(plugin.zoo_register_methods() or [])
                for spec in specs:
                    if not isinstance(spec, MethodSpec):
                        raise TypeError(f"zoo_register_methods returned {type(spec).__name__}, not MethodSpec")
                    if spec.name in found:
                        raise ValueError(f"method {spec.name!r} is already declared by plugin {found[spec.name][1]!r}")
            except Exception as exc:
                self.pm.unregister(name=name)
                info.status, info.error, info.hooks = "broken", _one_line(exc), []
                continue
            for spec in specs:
                found[spec.name] = (spec, name)
            info.methods = [s.name for s in specs]
        self._methods = found
        return found

    def method(self, name: str) -> MethodSpec:
        """The spec of one method, or a ZooError listing the valid names."""
        methods = self.methods()
        if name not in methods:
            err = choices_error("method", name, methods)
            missing = self.not_loaded()
            if missing:  # its plugin may be the one that failed or was switched off
                err = ZooError(f"{err}; not loaded: {'; '.join(missing)} (see `zoo plugins`)")
            raise err
        return methods[name][0]

    def not_loaded(self) -> list[str]:
        """``"NAME (broken: ERROR)"`` / ``"NAME (disabled: WHY)"`` for every plugin not loaded."""
        self.methods()
        return [f"{p.name} ({p.status}: {p.error})" if p.error else f"{p.name} ({p.status})" for p in self.infos.values() if p.status != "ok"]

    def plugin_of(self, method: str) -> PluginInfo:
        self.method(method)
        return self.infos[self.methods()[method][1]]

    def collect(self, hook_name: str) -> list[Any]:
        """Concatenate the lists every plugin returns from a ``zoo_register_*`` hook."""
        results = getattr(self.pm.hook, hook_name)()
        return [item for lst in results if lst for item in lst]


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


__all__ = ["ZooPluginManager", "PluginInfo", "get_manager", "reset_manager", "require_method", "ZooError"]
