"""``zoo train --devices N``: start N training processes through ``accelerate launch``.

The parent writes the resolved call (method, data, engine options, ...) to
``RUN/launch.json`` and runs accelerate's launcher (torchrun underneath) in a session of
its own::

    python -m zoo.train.launch --launcher RUN -- --multi_gpu --num_processes N ... -m zoo.worker RUN/launch.json

Each process (:mod:`zoo.worker`) reads the file and calls :func:`zoo.runner.train`; accelerate sets up the
process group: NCCL on GPUs, gloo with ``--device cpu``. For several machines call
``accelerate launch`` yourself with ``--num_machines``, ``--machine_rank`` and
``--main_process_ip``, then ``-m zoo_cli.main train ...`` (same flags, without
``--devices``).

How stops are reported, so that the user sees one line:

* a process that stops on a user error records it in ``RUN/.launch/rank_R.json`` and
  exits 2, so torchrun stops the others (which may be waiting for it in a collective);
  they exit quietly when they find that record; the launcher's crash report is not
  printed when a record explains the stop;
* Ctrl-C / SIGTERM / SIGHUP reach only the parent (the launcher runs in its own session);
  the parent sends each training process one SIGINT/SIGTERM per signal (their pids are in
  ``RUN/.launch/pid_R``; a process still starting gets it when it writes its pid); they
  finish the step, save and exit 0 after recording the stop. A second Ctrl-C stops them at
  once (recorded as "Stopped"). If ``zoo train`` itself dies, the launcher sends SIGTERM;
* the parent prints one record once (a user error first) and exits with its code (2,
  130 for a second Ctrl-C, or 128 + signal). Real crashes keep their tracebacks.
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
    import time

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    spec = run_dir / SPEC_FILE
    write_text(spec, json.dumps({"train": {**train_kwargs, "out_dir": str(run_dir)}, "options": asdict(options)}, indent=2, default=str))
    accelerate_args = [
        "--multi_gpu", "--num_processes", str(devices), "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no",
        "--main_process_port", str(free_port()),
        "-m", "zoo.worker", str(spec),
    ]  # fmt: skip
    cmd = [sys.executable, "-m", "zoo.train.launch", "--launcher", str(run_dir), "--", *accelerate_args]
    env = dict(os.environ)
    if "OMP_NUM_THREADS" not in env:  # do not oversubscribe the CPU cores
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // devices))
    results = run_dir / RESULTS
    shutil.rmtree(results, ignore_errors=True)

    # Every stop signal goes to every training process exactly once, also to processes
    # that have not written their pid yet (they get it when they do). A closed terminal
    # (SIGHUP) stops the run like SIGTERM.
    signals: list[int] = []
    delivered: dict[int, int] = {}

    def queue(signum, frame) -> None:
        signals.append(signal.SIGTERM if signum == signal.SIGHUP else signum)
        deliver()

    def deliver() -> None:
        for pid in _worker_pids(results):
            while delivered.get(pid, 0) < len(signals):
                try:
                    os.kill(pid, signals[delivered.get(pid, 0)])
                except ProcessLookupError:
                    pass
                delivered[pid] = delivered.get(pid, 0) + 1

    old = {sig: signal.signal(sig, queue) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        proc = subprocess.Popen(cmd, env=env, start_new_session=True)  # terminal signals reach only us
        while True:
            try:
                code = proc.wait(timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                if signals:
                    deliver()
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
    if code < 0:  # the launcher itself was killed by a signal
        code = 128 - code
    stops = _records(results)
    shutil.rmtree(results, ignore_errors=True)
    if not stops:
        return code
    import click

    first = stops[0]  # one line, once: a user error first, then a hard stop, then a clean one
    click.echo(f"{first['kind']}: {first['message']}", err=True)
    if first["kind"] == "Interrupted" and code != 0:
        return code  # a clean stop beside a real crash (whose traceback was shown): the crash's code
    return int(first["code"])


def _worker_pids(results: Path) -> list[int]:
    pids = []
    for path in results.glob("pid_*"):
        try:
            pids.append(int(path.read_text().strip()))
        except (OSError, ValueError):
            continue
    return pids


_ORDER = {"Error": 0, "Stopped": 1, "Interrupted": 2}


def _records(results: Path, explaining: bool = False) -> list[dict[str, Any]]:
    """The stops the processes recorded, most telling first: user errors ("Error"),
    immediate stops on a second signal ("Stopped"), clean stops ("Interrupted").
    ``explaining``: only those that explain other processes failing (not clean stops)."""
    stops = []
    for path in results.glob("rank_*.json"):
        try:
            stops.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    stops = [r for r in stops if r.get("code") and (not explaining or r.get("kind") != "Interrupted")]
    return sorted(stops, key=lambda r: (_ORDER.get(r.get("kind"), 3), r.get("rank", 0)))


def _record(run_dir: str | Path, code: int, kind: str, message: str) -> None:
    rank = int(os.environ.get("RANK", "0"))
    write_text(Path(run_dir) / RESULTS / f"rank_{rank}.json", json.dumps({"rank": rank, "code": code, "kind": kind, "message": message}))


def launcher_main(run_dir: str, accelerate_args: list[str]) -> int:
    """accelerate's launcher, quiet about a stop that a training process recorded; stops
    the training processes (SIGTERM: save and exit) if ``zoo train`` dies."""
    import logging
    import threading
    import time

    from accelerate.commands.launch import launch_command, launch_command_parser

    results = Path(run_dir) / RESULTS
    parent = os.getppid()

    def watch_parent() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        for pid in _worker_pids(results):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    threading.Thread(target=watch_parent, daemon=True).start()
    # torchrun's per-failure log lines repeat what the record or the child's traceback says
    os.environ.setdefault("LOGLEVEL", "CRITICAL")
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)
    args = launch_command_parser().parse_args(accelerate_args)
    try:
        launch_command(args)
    except BaseException:  # ChildFailedError, SignalException, ...
        if _records(results, explaining=True):
            return 1  # the parent prints the recorded line
        raise
    return 0


# Signals a training process received before the engine's own handler was installed
# (the engine picks them up: a stop requested during start-up saves after the first step).
PENDING: list[int] = []


def _early_handler(signum, frame) -> None:
    if PENDING:  # a second signal: stop at once
        raise KeyboardInterrupt
    PENDING.append(signum)


if __name__ == "__main__":  # the launcher: python -m zoo.train.launch --launcher RUN -- ACCELERATE_ARGS
    argv = sys.argv[1:]
    if not argv or argv[0] != "--launcher":
        sys.exit("usage: python -m zoo.train.launch --launcher RUN -- ACCELERATE_ARGS")
    sys.exit(launcher_main(argv[1], argv[3:] if len(argv) > 2 and argv[2] == "--" else argv[2:]))
