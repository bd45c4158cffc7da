"""Entry point of each training process that ``zoo train --devices N`` starts.

``python -m zoo.worker RUN/launch.json``: read the resolved call that
:func:`zoo.train.launch.launch` wrote, call :func:`zoo.runner.train`, and record how the
process stopped (see :mod:`zoo.train.launch` for how the parent reports it in one line).
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

from zoo.errors import failure_line, plain_warnings
from zoo.train import launch


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    plain_warnings()  # this process runs outside the CLI's warning handler
    for sig in (signal.SIGINT, signal.SIGTERM):  # before anything slow: see launch.PENDING
        signal.signal(sig, launch._early_handler)
    spec = json.loads(Path(argv[0]).read_text())
    run_dir = Path(spec["train"]["out_dir"])
    rank = int(os.environ.get("RANK", "0"))
    launch.write_text(run_dir / launch.RESULTS / f"pid_{rank}", str(os.getpid()))  # signals can be forwarded now
    code = 0
    try:
        import click

        from zoo import runner
        from zoo.errors import ZooError
        from zoo.train import Interrupted, TrainOptions

        options = TrainOptions(**spec["options"])
        try:
            path = runner.train(**spec["train"], options=options)
            if rank == 0:
                click.echo(f"checkpoint: {path}")
        except Interrupted as exc:  # every process saved together: a clean exit
            launch._record(run_dir, exc.exit_code, "Interrupted", str(exc))
        except ZooError as exc:  # exit non-zero so that torchrun stops processes waiting for this one
            launch._record(run_dir, 2, "Error", str(exc))
            code = 2
        except Exception as exc:  # a full disk, out of memory: the parent prints the one line
            known = failure_line(exc)
            if known is None:
                raise
            launch._record(run_dir, known[1], "Error", known[0])
            code = known[1]
    except KeyboardInterrupt:  # a second signal: no checkpoint for the current step
        launch._record(run_dir, 130, "Stopped", f"stopped at once by a second signal; the current step was not saved; continue from the last checkpoint with --resume {run_dir}")
        code = 1
    except BaseException:
        if not [r for r in launch._records(run_dir / launch.RESULTS, explaining=True) if r.get("rank") != rank]:
            raise
        code = 1  # a consequence of another process's recorded stop: stay quiet
    finally:
        import torch.distributed as dist

        if code == 0 and dist.is_available() and dist.is_initialized():
            dist.barrier()  # every process done before any tears its connections down (gloo can abort on a peer's early close)
            dist.destroy_process_group()
    return code


if __name__ == "__main__":
    sys.exit(main())
