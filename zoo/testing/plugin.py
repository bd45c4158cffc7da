"""Check ``hooks`` on a plugin: hook names and arguments, markers, status, refused names."""

from __future__ import annotations

from zoo.plugins import get_manager, hook_problems
from zoo.testing.common import KitFailure


def _refusals(noun: str, name: str) -> list[str]:
    """Plugins whose registration of the ``noun`` ``name`` was refused (another had it first)."""
    return [f"plugin {p.name}" for p in get_manager().plugins() for r in p.refused if r.startswith(f"{noun} {name} (")]


def _entry_point_object(name: str) -> object | None:
    """The module an installed plugin's entry point names (to diagnose a broken plugin)."""
    from importlib import metadata

    from zoo.plugins import ENTRY_POINT_GROUP

    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name:
            try:
                return ep.load()
            except Exception:  # noqa: BLE001 - its import error is the plugin's status
                return None
    return None


def _check_plugin_hooks(plugin: str | object, check: str = "hooks") -> None:
    manager = get_manager()
    manager.plugins()  # registration runs: a plugin whose registration fails is broken
    if isinstance(plugin, str):
        name, obj = plugin, manager.pm.get_plugin(plugin)
        info = manager.infos.get(name)
        if info is None:
            raise KitFailure(name, check, "found", f"no plugin named {name!r}; plugins: {', '.join(sorted(manager.infos))} "
                                                   "(installed? pip install -e DIR, then a new process)")
        if obj is None and info.status == "broken" and info.source != "test":  # installed: find out what is wrong
            obj = _entry_point_object(name)
    else:
        obj = plugin
        name = manager.pm.get_name(obj) or getattr(obj, "__name__", type(obj).__name__)
        info = manager.infos.get(name) if manager.pm.get_name(obj) else None
    if obj is not None:
        problems = hook_problems(manager.pm, obj)
        for sub, key in (("names", "is not a hook"), ("marker", "not marked @hookimpl")):
            found = [p for p in problems if key in p]
            if found:
                raise KitFailure(name, check, sub, "; ".join(found))
        if problems:
            raise KitFailure(name, check, "args", "; ".join(problems))
    if info is None:
        raise KitFailure(name, check, "found", "the plugin object is not registered (zoo.plugins.get_manager().register(obj, name=...))")
    if info.status != "ok":
        raise KitFailure(name, check, "status", f"plugin {name} is {info.status}: {info.error.replace(chr(10), '; ')}")
    if info.refused:
        raise KitFailure(name, check, "refused", f"names registered first by another plugin, so this plugin's are ignored: {'; '.join(info.refused)}; rename them")


def check_plugin(plugin: str | object) -> None:
    """Check ``hooks`` on a plugin, by its name (the entry-point key) or the plugin object
    (a module or an instance): hook names and arguments, the ``@hookimpl`` markers, its
    status and that none of its names was refused. Raises :class:`KitFailure`."""
    _check_plugin_hooks(plugin, "hooks")
