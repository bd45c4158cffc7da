"""Start-up time of the catalog commands, against a bare interpreter and `import torch`.

    python benchmarks/cli_startup/measure.py                 # 15 runs of each, both bytecode modes
    python benchmarks/cli_startup/measure.py --runs 30 --modes pyc

Each command runs ``--runs`` times in a fresh process (after one warm-up run), the commands
taking turns so that a burst of load on the machine spreads over all of them. Wall time is
``time.perf_counter`` around ``subprocess.run``; CPU time is the child's user + system time
from ``resource.getrusage(RUSAGE_CHILDREN)``. Two bytecode modes:

* ``pyc``: bytecode is cached (in a temporary ``PYTHONPYCACHEPREFIX``), as after any
  ordinary ``pip install``: what a user sees;
* ``no-pyc``: ``PYTHONDONTWRITEBYTECODE=1`` and no cache for the zoo's own modules, so each of
  them is compiled from source at every start (some sandboxes run Python this way).

Writes ``results.md`` and ``results.json`` beside this script (``--out`` elsewhere), with the
machine, the load average before and after, and the heaviest imports of ``zoo list``
(``python -X importtime``), summed by top-level package.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
TARGET = 3.0  # `zoo list` within 3x of `python -c pass`


def zoo_command() -> list[str]:
    """The ``zoo`` console script beside this interpreter, else ``python -m zoo_cli.main``."""
    script = Path(sys.executable).with_name("zoo")
    if script.is_file():
        return [str(script)]
    found = shutil.which("zoo")
    return [found] if found else [sys.executable, "-m", "zoo_cli.main"]


def commands() -> dict[str, list[str]]:
    zoo = zoo_command()
    return {
        "python -c pass": [sys.executable, "-c", "pass"],
        "python -c 'import torch'": [sys.executable, "-c", "import torch"],
        "zoo --version": [*zoo, "--version"],
        "zoo --help": [*zoo, "--help"],
        "zoo list": [*zoo, "list"],
        "zoo info lama": [*zoo, "info", "lama"],
        "zoo plugins": [*zoo, "plugins"],
        "zoo masks list": [*zoo, "masks", "list"],
    }


def environment(mode: str, cache: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZOO_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.pop("PYTHONPYCACHEPREFIX", None)
    if mode == "pyc":
        env["PYTHONPYCACHEPREFIX"] = cache
    else:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def run_once(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr[-2000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def measure(mode: str, runs: int, cache: str) -> dict[str, dict[str, float]]:
    env = environment(mode, cache)
    cmds = commands()
    for argv in cmds.values():  # warm-up: page cache, and the bytecode cache in mode pyc
        run_once(argv, env)
    walls: dict[str, list[float]] = {name: [] for name in cmds}
    cpus: dict[str, list[float]] = {name: [] for name in cmds}
    for _ in range(runs):
        for name, argv in cmds.items():
            wall, cpu = run_once(argv, env)
            walls[name].append(wall)
            cpus[name].append(cpu)
    base = statistics.median(walls["python -c pass"])
    return {
        name: {
            "median_s": statistics.median(walls[name]),
            "min_s": min(walls[name]),
            "cpu_median_s": statistics.median(cpus[name]),
            "x_bare": statistics.median(walls[name]) / base,
        }
        for name in cmds
    }


def _self_times(argv: list[str], env: dict[str, str]) -> Counter[str]:
    subprocess.run(argv, env=env, capture_output=True)  # warm-up
    err = subprocess.run(argv, env=env, capture_output=True, text=True).stderr
    total: Counter[str] = Counter()
    for line in err.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+\d+ \|\s*(\S+)", line)
        if m:
            total[m.group(2).split(".")[0]] += int(m.group(1))
    return total


def import_profile(mode: str, cache: str, top: int = 14) -> list[tuple[str, float]]:
    """Self import time of ``zoo list`` by top-level package, in ms (one run, after a warm-up),
    and the imports of ``python -c pass`` (site, .pth files) for comparison."""
    env = environment(mode, cache)
    total = _self_times([sys.executable, "-X", "importtime", "-m", "zoo_cli.main", "list"], env)
    bare = _self_times([sys.executable, "-X", "importtime", "-c", "pass"], env)
    rows = [(name, us / 1000) for name, us in total.most_common(top)]
    return rows + [("(all imports of zoo list)", sum(total.values()) / 1000), ("(all imports of python -c pass)", sum(bare.values()) / 1000)]


def machine() -> dict[str, str]:
    from zoo.device import cpu_name  # imports torch here, in the measuring process only

    cpu = cpu_name()
    try:
        torch_version = metadata.version("torch")
    except metadata.PackageNotFoundError:
        torch_version = "not installed"
    return {
        "cpu": f"{cpu}, {os.cpu_count()} cores",
        "python": platform.python_version(),
        "torch": torch_version,
        "platform": platform.platform(),
        "date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "zoo": " ".join(zoo_command()),
    }


def markdown(results: dict, info: dict, loads: dict, runs: int, profiles: dict) -> str:
    out = [
        f"Machine: {info['cpu']}; Python {info['python']}; torch {info['torch']}; {info['platform']}.",
        f"Date: {info['date']}. Load average (1 min) {loads['before']:.2f} before, {loads['after']:.2f} after.",
        f"{runs} runs of each command after one warm-up; `zoo` is `{info['zoo']}`.",
        "",
    ]
    for mode, rows in results.items():
        out += [f"### bytecode mode `{mode}`", "", "| command | median wall (s) | min wall (s) | median CPU (s) | x `python -c pass` |", "|---|---|---|---|---|"]
        for name, r in rows.items():
            out.append(f"| `{name}` | {r['median_s']:.3f} | {r['min_s']:.3f} | {r['cpu_median_s']:.3f} | {r['x_bare']:.2f} |")
        verdict = "met" if rows["zoo list"]["x_bare"] <= TARGET else "NOT met"
        out += ["", f"Target `zoo list` <= {TARGET:g}x `python -c pass`: {verdict} ({rows['zoo list']['x_bare']:.2f}x).", ""]
    for mode, rows in profiles.items():
        out += [f"### `python -X importtime -m zoo_cli.main list` (mode `{mode}`), self time by top-level package", "", "| package | ms |", "|---|---|"]
        out += [f"| {name} | {ms:.1f} |" for name, ms in rows]
        out.append("")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--modes", default="pyc,no-pyc", help="pyc, no-pyc or both (comma-separated)")
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args()
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not modes or any(m not in ("pyc", "no-pyc") for m in modes):
        parser.error("--modes: pyc, no-pyc or pyc,no-pyc")
    info = machine()
    loads = {"before": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory(prefix="zoo-pyc-") as cache:
        results = {mode: measure(mode, args.runs, cache) for mode in modes}
        profiles = {mode: import_profile(mode, cache) for mode in modes}
    loads["after"] = os.getloadavg()[0]
    text = markdown(results, info, loads, args.runs, profiles)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.md").write_text(text + "\n")
    payload = {"machine": info, "load_average_1min": loads, "runs": args.runs, "target_x_bare": TARGET, "results": results,
               "importtime_zoo_list_ms": {m: dict(rows) for m, rows in profiles.items()}}
    (args.out / "results.json").write_text(json.dumps(payload, indent=1) + "\n")


if __name__ == "__main__":
    main()
