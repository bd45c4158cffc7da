"""``zoo train --devices N``: start N training processes through ``accelerate launch``.

The parent writes the resolved call (method, data, engine options, ...) to
``RUN/launch.json`` and runs::

    python -m accelerate.commands.launch --multi_gpu --num_processes N ... -m zoo.train.launch RUN/launch.json

Each process reads the file and calls :func:`zoo.runner.train`; accelerate (torchrun
underneath) sets up the process group: NCCL on GPUs, gloo with ``--device cpu``. For
several machines call ``accelerate launch`` yourself with ``--num_machines``,
``--machine_rank`` and ``--main_process_ip``, then ``-m zoo_cli.main train ...`` (same
flags, without ``--devices``).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from zoo.fsutil import write_text

SPEC_FILE = "launch.json"


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
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)  # the processes handle Ctrl-C themselves
    try:
        return subprocess.call(cmd, env=env)
    finally:
        signal.signal(signal.SIGINT, old)


def main(argv: list[str] | None = None) -> int:
    """Entry point of each launched process."""
    import click

    from zoo import runner
    from zoo.errors import ZooError
    from zoo.train import Interrupted, TrainOptions

    argv = sys.argv[1:] if argv is None else argv
    spec = json.loads(Path(argv[0]).read_text())
    options = TrainOptions(**spec["options"])
    code = 0
    try:
        path = runner.train(**spec["train"], options=options)
        if int(os.environ.get("RANK", "0")) == 0:
            click.echo(f"checkpoint: {path}")
    except Interrupted as exc:
        click.echo(f"Interrupted: {exc}", err=True)
        code = exc.exit_code
    except ZooError as exc:
        click.echo(f"Error: {exc}", err=True)
        code = 2
    finally:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
    return code


if __name__ == "__main__":
    sys.exit(main())
