"""``zoo sample --devices N``: the images split over N processes, the files as one process makes them.

The parent checks the output folder, writes the resolved call to ``OUT/.zoo-shard/spec.json``
and starts N processes ``python -m zoo.shard SPEC`` with ``RANK`` / ``WORLD_SIZE`` /
``LOCAL_RANK`` / ``MASTER_ADDR`` / ``MASTER_PORT`` set as torchrun sets them (so the same code
runs under ``accelerate launch`` across machines: ``accelerate launch ... -m zoo_cli.main sample
...`` without ``--devices``). Each process joins a gloo process group, takes the batches whose
index is congruent to its rank modulo N (:func:`mine`), writes their PNGs, and waits at a
barrier for the others. Every image's seed comes from its position
(:func:`zoo.inpaint.sample_seed`), never from the process, so the files are byte-identical to a
one-process run with the same ``--batch-size``. A process that stops on a user error records
its one line in ``OUT/.zoo-shard/rank_R.json``; the parent prints the first one.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from zoo.errors import ZooError
from zoo.fsutil import write_text

WORK = ".zoo-shard"


def world() -> tuple[int, int]:
    """(rank, world size) of this process: from the launcher's environment, else (0, 1)."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def mine(batch_index: int, rank: int, world_size: int) -> bool:
    """Whether batch ``batch_index`` is this process's share."""
    return batch_index % world_size == rank


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_sample(devices: int, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Run :func:`zoo.runner.sample_folder` (``kwargs``) over ``devices`` processes; returns
    ``{"count": images written, "info": the plugin's sample info}``."""
    from zoo.fsutil import check_output_dir, removed_on_failure

    if devices < 1:
        raise ZooError("--devices must be at least 1")
    out = check_output_dir(kwargs["out_dir"], {"--images": kwargs["images"], "--masks": kwargs["masks"]}, kwargs.get("overwrite", False))
    with removed_on_failure(out):
        work = out / WORK
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        spec = work / "spec.json"
        write_text(spec, json.dumps({**kwargs, "out_dir": str(out), "overwrite": True, "progress": False}, default=str))
        env = dict(os.environ, WORLD_SIZE=str(devices), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()))
        env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // devices)))
        procs = [subprocess.Popen([sys.executable, "-m", "zoo.shard", str(spec)], env={**env, "RANK": str(r), "LOCAL_RANK": str(r)})
                 for r in range(devices)]
        codes = [p.wait() for p in procs]
        records = [json.loads(p.read_text()) for p in sorted(work.glob("rank_*.json"))]
        errors = [r["error"] for r in records if r.get("error")]
        if errors:
            raise ZooError(errors[0])
        if any(codes) or len(records) != devices:
            raise RuntimeError(f"a sampling process failed (exit codes {codes}); see its traceback above")
        shutil.rmtree(work, ignore_errors=True)
    info: dict[str, Any] = {}
    for r in records:
        info.update(r.get("info", {}))
    return {"count": sum(r["count"] for r in records), "info": info, "notes": records[0].get("notes", [])}


def main(argv: list[str] | None = None) -> int:
    """One sampling process: ``python -m zoo.shard OUT/.zoo-shard/spec.json``."""
    import torch.distributed as dist

    from zoo import runner

    argv = sys.argv[1:] if argv is None else argv
    spec_path = Path(argv[0])
    kwargs = json.loads(spec_path.read_text())
    rank, size = world()
    dist.init_process_group("gloo", rank=rank, world_size=size)
    import torch

    record: dict[str, Any] = {"rank": rank}
    code, crash = 0, None
    try:
        report = runner.sample_folder(**kwargs, rank=rank, world_size=size)
        record.update(count=report.count, info={k: v for k, v in report.info.items() if isinstance(v, (int, float, str))}, notes=report.notes)
    except ZooError as exc:
        record.update(count=0, error=str(exc))
        code = 2
    except Exception as exc:  # noqa: BLE001 - still meet the others below, then show the traceback
        record.update(count=0)
        code, crash = 1, exc
    write_text(spec_path.parent / f"rank_{rank}.json", json.dumps(record))
    flag = torch.tensor([code])
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)  # every process meets here, failed or not: nobody waits forever
    dist.destroy_process_group()
    if crash is not None:
        raise crash
    return code


if __name__ == "__main__":
    sys.exit(main())
