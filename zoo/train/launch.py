"""``zoo train --devices N``: start N training processes through ``accelerate launch``.

The parent writes the resolved call (method, data, engine options, ...) to
``RUN/launch.json`` and runs::

    python -m accelerate.commands.launch --multi_gpu --num_processes N ... -m zoo.train.launch RUN/launch.json

Each process reads the file and calls :func:`zoo.runner.train`; accelerate (torchrun
underneath) sets up the process group: NCCL on GPUs, gloo with ``--device cpu``. A
process that stops on a user error or a signal records it in ``RUN/.launch/rank_R.json``
and exits 0, so the launcher does not print its crash report; the parent then prints the
one line once and exits with the code (2, or 128 + signal). Real crashes keep their
tracebacks. For
several machines call ``accelerate launch`` yourself with ``--num_machines``,
``--machine_rank`` and ``--main_process_ip``, then ``-m zoo_cli.main train ...`` (same
flags, without ``--devices``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from zoo.fsutil import write_text

SPEC_FILE = "launch.json"
RESULTS = ".launch"


def under_launcher() -> bool:
    """True inside a process that accelerate/torchrun started."""
    return "LOCAL_RANK" in os.environ or int(os.environ.get("WORLD_SIZE", "1")) > 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(devices: int, train_kwargs: dict[str, Any], options: Any, run_dir: Path) -> int:
    """Run ``devices`` processes of ``runner.train(**train_kwargs, options=options)``;
    returns the launcher's exit code."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    spec = run_dir / SPEC_FILE
    write_text(spec, json.dumps({"train": {**train_kwargs, "out_dir": str(run_dir)}, "options": asdict(options)}, indent=2, default=str))
    cmd = [
        sys.executable, "-m", "accelerate.commands.launch",
        "--multi_gpu", "--num_processes", str(devices), "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no",
        "--main_process_port", str(free_port()),
        "-m", "zoo.train.launch", str(spec),
    ]  # fmt: skip
    env = dict(os.environ)
    if "OMP_NUM_THREADS" not in env:  # do not oversubscribe the CPU cores
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // devices))
    results = run_dir / RESULTS
    shutil.rmtree(results, ignore_errors=True)
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)  # the processes handle Ctrl-C themselves
    try:
        code = subprocess.call(cmd, env=env)
    finally:
        signal.signal(signal.SIGINT, old)
    stops = []
    for path in sorted(results.glob("rank_*.json")):
        try:
            stops.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    shutil.rmtree(results, ignore_errors=True)
    failed = sorted((r for r in stops if r.get("code")), key=lambda r: r.get("rank", 0))
    if failed:  # one line, once, from the lowest rank that stopped
        import click

        click.echo(f"{failed[0]['kind']}: {failed[0]['message']}", err=True)
        return int(failed[0]["code"])
    return code


def _record(run_dir: str | Path, code: int, kind: str, message: str) -> None:
    rank = int(os.environ.get("RANK", "0"))
    write_text(Path(run_dir) / RESULTS / f"rank_{rank}.json", json.dumps({"rank": rank, "code": code, "kind": kind, "message": message}))


def main(argv: list[str] | None = None) -> int:
    """Entry point of each launched process."""
    import click

    from zoo import runner
    from zoo.errors import ZooError
    from zoo.train import Interrupted, TrainOptions

    argv = sys.argv[1:] if argv is None else argv
    spec = json.loads(Path(argv[0]).read_text())
    options = TrainOptions(**spec["options"])
    run_dir = spec["train"]["out_dir"]
    code = 0
    try:
        path = runner.train(**spec["train"], options=options)
        if int(os.environ.get("RANK", "0")) == 0:
            click.echo(f"checkpoint: {path}")
    except Interrupted as exc:
        _record(run_dir, exc.exit_code, "Interrupted", str(exc))
    except ZooError as exc:
        _record(run_dir, 2, "Error", str(exc))
    finally:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
    return code


if __name__ == "__main__":
    sys.exit(main())
