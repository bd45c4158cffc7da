"""``zoo plugins``, ``zoo list``, ``zoo info``."""

from __future__ import annotations

import click

from zoo_cli.output import print_json, print_table


@click.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def plugins_cmd(as_json: bool) -> None:
    """List loaded plugins: name, version, source, status, hooks."""
    from zoo.plugins import get_manager

    infos = get_manager().plugins()
    if as_json:
        print_json([p.as_dict() for p in infos])
        return
    def hooks_or_error(p) -> str:
        return ",".join(h.removeprefix("zoo_") for h in p.hooks) or (p.error.splitlines() or [""])[0]

    rows = [(p.name, p.version, p.source, p.status, ",".join(p.methods) or "-", hooks_or_error(p)) for p in infos]
    print_table(rows, ["name", "version", "source", "status", "methods", "hooks / error"])
    details = []
    for p in infos:
        parts = [f"{label} {', '.join(names)}" for label, names in (("metrics", p.metrics), ("datasets", p.datasets), ("mask kinds", p.mask_kinds)) if names]
        lines = ["; ".join(parts)] if parts else []
        lines += [f"refused {r}" for r in p.refused]
        if p.status == "broken" and "\n" in p.error:
            lines += p.error.splitlines()
        if lines:
            details.append(f"{p.name}: {lines[0]}")
            details += [f"  {line}" for line in lines[1:]]
    if details:
        click.echo("")
        for line in details:
            click.echo(line)


@click.command("list")
@click.argument("pattern", required=False)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def list_cmd(pattern: str | None, as_json: bool) -> None:
    """List methods (registry and plugins); PATTERN filters with wildcards, e.g. 'conv*'."""
    from zoo.registry import list_methods

    import warnings

    from zoo.errors import ZooWarning
    from zoo.plugins import get_manager

    methods = list_methods(pattern)
    for p in get_manager().plugins():
        if p.status == "broken":
            warnings.warn(ZooWarning(f"plugin {p.name!r} ({p.source} {p.version}) failed to load: {p.error}; its methods are missing"))
    if as_json:
        print_json([m.as_dict() for m in methods])
        return
    rows = [(m.name, m.family, m.plugin, "yes" if m.available else f"no ({m.reason})", ",".join(m.presets), m.summary) for m in methods]
    print_table(rows, ["method", "family", "plugin", "available", "presets", "summary"])


@click.command("info")
@click.argument("method")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def info_cmd(method: str, as_json: bool) -> None:
    """Family, presets, config fields with defaults, paper, license and checkpoints."""
    from zoo.config import describe_fields, resolve_config
    from zoo.plugins import get_manager
    from zoo.registry import method_info

    info = method_info(method)
    data = info.as_dict()
    if info.available:
        spec = get_manager().method(method)
        data["config_fields"] = describe_fields(spec.config)
        data["preset_values"] = {p: dict(spec.presets[p]) for p in spec.presets}
        data["default_preset"] = spec.default
        data["resolved_default"] = describe_fields(spec.config, resolve_config(spec)[0])
    if as_json:
        print_json(data)
        return
    click.echo(f"{info.name}  ({info.family}, plugin {info.plugin}{'' if info.available else f', NOT LOADED: {info.reason}'})")
    click.echo(f"  {info.summary}")
    click.echo(f"  paper:   {info.paper}")
    click.echo(f"  license: {info.license}")
    click.echo(f"  presets: {', '.join(info.presets)}" + (f"  (default: {data['default_preset']})" if info.available else ""))
    if info.available:
        for p, values in data["preset_values"].items():
            click.echo(f"    {p}: " + (", ".join(f"{k}={v}" for k, v in values.items()) or "(base values)"))
        preset = data["default_preset"]
        click.echo(f"  config fields (dataclass defaults, and the values of the default preset {preset}; --set key=value):")
        rows = [(f["name"], f["type"], f["default"], r["default"]) + ((f["help"],) if any(x["help"] for x in data["config_fields"]) else ()) for f, r in zip(data["config_fields"], data["resolved_default"])]
        helps = ["help"] if any(x["help"] for x in data["config_fields"]) else []
        print_table(rows, ["field", "type", "default", f"preset {preset}", *helps], indent="    ")
    if info.checkpoints:
        click.echo("  official checkpoints:")
        for c in info.checkpoints:
            click.echo(f"    {c['name']}: {c['resolution']}px -> preset {c['preset']}, {c['format']}, {c['license']}")
            click.echo(f"      {c['url']}")
            check = f"sha256 {c['sha256']}" if c["sha256"] != "unknown" else f"unverified: {c['sha256_reason']} (pinned on first fetch)"
            click.echo(f"      {check}" + (f"; by hand: {c['manual']}" if c.get("manual") else ""))


COMMANDS = [plugins_cmd, list_cmd, info_cmd]
