"""The catalog commands are fast: they import no torch (nor the rest of the heavy stack) and
no plugin's model code.

``zoo --version``, ``--help`` (of every command), ``list``, ``info``, ``plugins`` and ``masks
list`` run in a fresh interpreter; the test reads that interpreter's ``sys.modules`` after
the command, and again after every plugin's registration hooks have been called (the plugin
manager lists each plugin's metrics, datasets and mask kinds): torch must not be there, and
of a plugin only its ``hooks`` and ``config`` modules. A command that needs torch still works
and imports it when it runs. Timings are in benchmarks/cli_startup/, not here."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

#: Never imported by a catalog command (torch is the must; the others come with it or are
#: as heavy).
HEAVY = ("torch", "numpy", "PIL", "cv2", "scipy", "sklearn", "skimage", "matplotlib", "torchvision", "timm", "diffusers", "accelerate", "safetensors", "lpips", "torch_fidelity", "fastapi", "uvicorn", "starlette")
#: The modules of a plugin that registering it may import.
PLUGIN_REGISTRATION = ("hooks", "config")
REGISTRATION_HOOKS = ("zoo_register_methods", "zoo_register_metrics", "zoo_register_datasets", "zoo_register_mask_generators")

# Runs each argv of sys.argv[2] (a JSON list of argv lists) through the CLI's entry point in
# this one interpreter, then calls every plugin's registration hooks, and writes what was
# imported after each step to the file sys.argv[1].
PROBE = r"""
import json, sys

out_path, runs = sys.argv[1], json.loads(sys.argv[2])
HEAVY, PARTS, HOOKS = json.loads(sys.argv[3])


def seen():
    heavy = sorted({m.split(".")[0] for m in list(sys.modules)} & set(HEAVY))
    plugin_code = sorted(m for m in list(sys.modules) if m.startswith("zoo_plugins.") and m.count(".") >= 2 and m.split(".")[2] not in PARTS)
    return {"heavy": heavy, "plugin_code": plugin_code}


steps = []
for argv in runs:
    sys.argv = ["zoo", *argv]
    from zoo_cli.main import main

    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    sys.stdout.flush()
    steps.append({"argv": argv, "code": code, **seen()})

from zoo.plugins import get_manager

manager = get_manager()
broken = [p.name for p in manager.plugins() if p.status != "ok"]
for name in list(manager.infos):
    plugin = manager.pm.get_plugin(name)
    for hook in HOOKS:
        if plugin is not None and hasattr(plugin, hook):
            getattr(plugin, hook)()
steps.append({"argv": ["(every plugin's registration hooks)"], "code": 0, "broken": broken, **seen()})
with open(out_path, "w") as fh:
    json.dump(steps, fh)
"""


def _env() -> dict[str, str]:
    env = dict(os.environ)
    for var in ("ZOO_LOAD_PLUGINS", "ZOO_DISABLE_PLUGINS", "ZOO_REGISTRY", "ZOO_TRACE_HOOKS"):
        env.pop(var, None)
    return env


def _probe(tmp_path, runs: list[list[str]]) -> tuple[list[dict], subprocess.CompletedProcess]:
    out = tmp_path / "seen.json"
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, str(out), json.dumps(runs), json.dumps([HEAVY, PLUGIN_REGISTRATION, REGISTRATION_HOOKS])],
        capture_output=True, text=True, env=_env(), cwd=tmp_path, timeout=300,
    )
    assert out.is_file(), f"the probe failed (rc {proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    return json.loads(out.read_text()), proc


def _assert_light(steps: list[dict], proc: subprocess.CompletedProcess) -> None:
    for step in steps:
        where = f"`zoo {' '.join(step['argv'])}`"
        assert step["code"] == 0, f"{where} exited {step['code']}:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
        assert "torch" not in step["heavy"], f"{where} imported torch (run `python -X importtime -m zoo_cli.main {' '.join(step['argv'])}` to see the chain)"
        assert not step["heavy"], f"{where} imported {', '.join(step['heavy'])}"
        assert not step["plugin_code"], f"{where} imported plugin code beyond hooks/config: {', '.join(step['plugin_code'])}"


CATALOG = [
    ["--version"],
    ["--help"],
    ["list"],
    ["list", "--json"],
    ["info", "conv-l1"],
    ["info", "lama"],
    ["plugins"],
    ["plugins", "--json"],
    ["masks", "list"],
    ["data", "list"],
]


@pytest.mark.parametrize("argv", CATALOG, ids=" ".join)
def test_a_catalog_command_imports_no_torch_and_no_plugin_code(tmp_path, argv):
    """Each command alone in a fresh interpreter (so one command's imports hide no other's)."""
    steps, proc = _probe(tmp_path, [argv])
    _assert_light(steps, proc)
    assert not steps[-1]["broken"], f"plugins not loaded: {steps[-1]['broken']}"
    assert proc.stdout.strip(), f"`zoo {' '.join(argv)}` printed nothing"


def _every_command() -> list[list[str]]:
    import click

    from zoo_cli.main import app

    ctx = click.Context(app)
    found = []
    for name in app.list_commands(ctx):  # plugins' commands included
        found.append([name])
        command = app.get_command(ctx, name)
        if isinstance(command, click.Group):
            found += [[name, sub] for sub in command.list_commands(click.Context(command, parent=ctx))]
    return found


def test_every_commands_help_imports_no_torch(tmp_path):
    """``zoo COMMAND --help`` of every command and sub-command, one after another in one
    interpreter: no command module imports torch when it is imported or asked for help."""
    commands = _every_command()
    assert ["train"] in commands and ["masks", "generate"] in commands and len(commands) > 15
    steps, proc = _probe(tmp_path, [[*c, "--help"] for c in commands])
    _assert_light(steps, proc)
    assert proc.stdout.count("Usage:") == len(commands)


def test_a_command_that_needs_torch_still_works_and_imports_it_when_it_runs(tmp_path):
    steps, proc = _probe(tmp_path, [["data", "synth", "--count", "2", "--size", "16", "--out", "synth"]])
    assert steps[0]["code"] == 0, proc.stderr[-3000:]
    assert "torch" in steps[0]["heavy"]
    assert sorted(p.name for p in (tmp_path / "synth").glob("*.png")) and "wrote 2 shapes image(s)" in proc.stdout


def test_the_probe_sees_torch_when_a_command_imports_it(tmp_path):
    """The check can fail: a plugin command that imports torch at the top of its module is seen."""
    (tmp_path / "heavy_cmd.py").write_text(
        "import click\nimport torch\n\n@click.command('heavy')\ndef heavy():\n    click.echo('ok')\n"
    )
    probe = PROBE.replace("steps = []", "sys.path.insert(0, '.')\nimport heavy_cmd\nfrom zoo_cli.main import app\napp.add_command(heavy_cmd.heavy)\nsteps = []")
    out = tmp_path / "seen.json"
    subprocess.run([sys.executable, "-c", probe, str(out), json.dumps([["heavy"]]), json.dumps([HEAVY, PLUGIN_REGISTRATION, REGISTRATION_HOOKS])],
                   capture_output=True, text=True, env=_env(), cwd=tmp_path, timeout=300, check=True)
    steps = json.loads(out.read_text())
    with pytest.raises(AssertionError, match="imported torch"):
        _assert_light(steps, subprocess.CompletedProcess([], 0, "", ""))


def test_a_plugins_command_is_still_added_and_runs(tmp_path):
    """Plugins add their commands when the CLI first looks a command up (not at import, so that
    ``zoo --version`` loads no plugin): such a command is listed by --help and runs."""
    code = (
        "import sys, click\n"
        "from zoo import hookimpl\n"
        "from zoo.plugins import get_manager\n"
        "class Greeter:\n"
        "    @hookimpl\n"
        "    def zoo_register_commands(self, cli):\n"
        "        @click.command('hello')\n"
        "        def hello():\n"
        "            '''Say hello.'''\n"
        "            click.echo('hello from a plugin')\n"
        "        cli.add_command(hello)\n"
        "get_manager().register(Greeter(), name='greeter')\n"
        "sys.argv = ['zoo', *sys.argv[1:]]\n"
        "from zoo_cli.main import main\n"
        "main()\n"
    )
    for argv, expected in ((["hello"], "hello from a plugin"), (["--help"], "Say hello.")):
        proc = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, env=_env(), cwd=tmp_path, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert expected in proc.stdout
