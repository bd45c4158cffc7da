"""``zoo train --devices N``: start N training processes through ``accelerate launch``.

The parent writes the resolved call (method, data, engine options, ...) to
``RUN/launch.json`` and runs accelerate's launcher (torchrun underneath) in a session of
its own::

    python -m zoo.train.launch --launcher RUN -- --multi_gpu --num_processes N ... -m zoo.train.launch RUN/launch.json

Each process reads the file and calls :func:`zoo.runner.train`; accelerate sets up the
process group: NCCL on GPUs, gloo with ``--device cpu``. For several machines call
``accelerate launch`` yourself with ``--num_machines``, ``--machine_rank`` and
``--main_process_ip``, then ``-m zoo_cli.main train ...`` (same flags, without
``--devices``).

How stops are reported, so that the user sees one line:

* a process that stops on a user error records it in ``RUN/.launch/rank_R.json`` and
  exits 2, so torchrun stops the others (which may be waiting for it in a collective);
  they exit quietly when they find that record; the launcher's crash report is not
  printed when a record explains the stop;
* Ctrl-C / SIGTERM reach only the parent (the launcher runs in its own session); the
  parent sends one SIGINT/SIGTERM to each training process (their pids are in
  ``RUN/.launch/pid_R``), which finish the step, save and exit 0 after recording the stop;
  a second Ctrl-C is forwarded too and stops them at once;
* the parent prints the lowest rank's record once and exits with its code (2, or
  128 + signal). Real crashes (no record) keep their tracebacks.
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
    returns the exit code for ``zoo train`` (after printing a stop's one line)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    spec = run_dir / SPEC_FILE
    write_text(spec, json.dumps({"train": {**train_kwargs, "out_dir": str(run_dir)}, "options": asdict(options)}, indent=2, default=str))
    accelerate_args = [
        "--multi_gpu", "--num_processes", str(devices), "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no",
        "--main_process_port", str(free_port()),
        "-m", "zoo.train.launch", str(spec),
    ]  # fmt: skip
    cmd = [sys.executable, "-m", "zoo.train.launch", "--launcher", str(run_dir), "--", *accelerate_args]
    env = dict(os.environ)
    if "OMP_NUM_THREADS" not in env:  # do not oversubscribe the CPU cores
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // devices))
    results = run_dir / RESULTS
    shutil.rmtree(results, ignore_errors=True)
    proc = subprocess.Popen(cmd, env=env, start_new_session=True)  # terminal signals reach only us

    def forward(signum, frame) -> None:
        pids = _worker_pids(results)
        if not pids:  # still starting: stop the whole launch
            try:
                os.killpg(proc.pid, signum)
            except ProcessLookupError:
                pass
        for pid in pids:
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    old = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        code = proc.wait()
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
    stops = _records(results)
    shutil.rmtree(results, ignore_errors=True)
    if stops:  # one line, once, from the lowest rank that stopped
        import click

        click.echo(f"{stops[0]['kind']}: {stops[0]['message']}", err=True)
        return int(stops[0]["code"])
    return code


def _worker_pids(results: Path) -> list[int]:
    pids = []
    for path in results.glob("pid_*"):
        try:
            pids.append(int(path.read_text().strip()))
        except (OSError, ValueError):
            continue
    return pids


def _records(results: Path) -> list[dict[str, Any]]:
    """The stops the processes recorded (user errors, signals), lowest rank first."""
    stops = []
    for path in results.glob("rank_*.json"):
        try:
            stops.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    return sorted((r for r in stops if r.get("code")), key=lambda r: r.get("rank", 0))


def _record(run_dir: str | Path, code: int, kind: str, message: str) -> None:
    rank = int(os.environ.get("RANK", "0"))
    write_text(Path(run_dir) / RESULTS / f"rank_{rank}.json", json.dumps({"rank": rank, "code": code, "kind": kind, "message": message}))


def launcher_main(run_dir: str, accelerate_args: list[str]) -> int:
    """accelerate's launcher, quiet about a stop that a training process recorded."""
    import logging

    from accelerate.commands.launch import launch_command, launch_command_parser

    # torchrun's per-failure log lines repeat what the record or the child's traceback says
    os.environ.setdefault("LOGLEVEL", "CRITICAL")
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)
    args = launch_command_parser().parse_args(accelerate_args)
    try:
        launch_command(args)
    except BaseException:  # ChildFailedError, SignalException, ...
        if _records(Path(run_dir) / RESULTS):
            return 1  # the parent prints the recorded line
        raise
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of each launched process (and, with ``--launcher``, of the launcher)."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--launcher":
        return launcher_main(argv[1], argv[3:] if len(argv) > 2 and argv[2] == "--" else argv[2:])

    import click

    from zoo import runner
    from zoo.errors import ZooError
    from zoo.train import Interrupted, TrainOptions

    spec = json.loads(Path(argv[0]).read_text())
    options = TrainOptions(**spec["options"])
    run_dir = Path(spec["train"]["out_dir"])
    rank = int(os.environ.get("RANK", "0"))
    write_text(run_dir / RESULTS / f"pid_{rank}", str(os.getpid()))
    code = 0
    try:
        path = runner.train(**spec["train"], options=options)
        if rank == 0:
            click.echo(f"checkpoint: {path}")
    except Interrupted as exc:  # every process saved together: a clean exit
        _record(run_dir, exc.exit_code, "Interrupted", str(exc))
    except ZooError as exc:  # exit non-zero so that torchrun stops processes waiting for this one
        _record(run_dir, 2, "Error", str(exc))
        code = 2
    except BaseException:
        others = [r for r in _records(run_dir / RESULTS) if r.get("rank") != rank]
        if not others:
            raise
        code = 1  # a consequence of another process's recorded stop: stay quiet
    finally:
        import torch.distributed as dist

        if code == 0 and dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
    return code


if __name__ == "__main__":
    sys.exit(main())
