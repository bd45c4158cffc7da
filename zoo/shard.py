"""``zoo sample --devices N`` and ``zoo compare --devices N``: the images split over N processes,
the files as one process makes them.

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

``zoo compare --devices N``: the parent builds the eval set; each process samples its batches
of every entry (progress in ``predictions/<label>/progress.rankR.json``, so an interrupted run
resumes without redoing finished batches); then the parent merges the progress files, scores
and writes the report exactly as one process does.
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


def _start(devices: int, work: Path, spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Start ``devices`` processes on ``spec``; wait; their records (a user error: ZooError)."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    path = work / "spec.json"
    write_text(path, json.dumps(spec, default=str))
    env = dict(os.environ, WORLD_SIZE=str(devices), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()))
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // devices)))
    procs = [subprocess.Popen([sys.executable, "-m", "zoo.shard", str(path)], env={**env, "RANK": str(r), "LOCAL_RANK": str(r)})
             for r in range(devices)]
    codes = [p.wait() for p in procs]
    records = [json.loads(p.read_text()) for p in sorted(work.glob("rank_*.json"))]
    errors = [r["error"] for r in records if r.get("error")]
    if errors:
        raise ZooError(errors[0])
    if any(codes) or len(records) != devices:
        raise RuntimeError(f"a process of --devices {devices} failed (exit codes {codes}); see its traceback above")
    shutil.rmtree(work, ignore_errors=True)
    return records


def launch_sample(devices: int, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Run :func:`zoo.runner.sample_folder` (``kwargs``) over ``devices`` processes; returns
    ``{"count": images written, "info": the plugin's sample info, "notes": [...]}``."""
    from zoo.fsutil import check_output_dir, removed_on_failure

    if devices < 1:
        raise ZooError("--devices must be at least 1")
    out = check_output_dir(kwargs["out_dir"], {"--images": kwargs["images"], "--masks": kwargs["masks"]}, kwargs.get("overwrite", False))
    with removed_on_failure(out):
        records = _start(devices, out / WORK, {"kind": "sample", "kwargs": {**kwargs, "out_dir": str(out), "overwrite": True, "progress": False}})
    info: dict[str, Any] = {}
    for r in records:
        info.update(r.get("info", {}))
    return {"count": sum(r["count"] for r in records), "info": info, "notes": records[0].get("notes", [])}


def launch_compare(devices: int, entries: list[Any], metrics: list[Any], out_dir: str | Path, data: str | None, masks: str, **kwargs: Any):
    """:func:`zoo.compare.run_compare` with the sampling split over ``devices`` processes:
    this process builds the eval set, the processes sample their batches of every entry,
    then this process merges their progress, scores and writes the report (the same files a
    one-process run writes)."""
    import dataclasses

    from zoo.compare import prepare_eval_set, run_compare
    from zoo.fsutil import check_output_dir, removed_on_failure
    from zoo.metrics.scoring import preflight

    if devices < 1:
        raise ZooError("--devices must be at least 1")
    preflight(metrics, kwargs.get("fid_weights"))
    out = check_output_dir(out_dir, {"--data": data if data and Path(str(data)).is_dir() else None, "--masks": masks if Path(masks).is_dir() else None}, overwrite=True)
    with removed_on_failure(out):
        out.mkdir(parents=True, exist_ok=True)
        prepare_eval_set(out, data, masks, kwargs.get("count", 100), kwargs.get("size", 256), kwargs.get("seed", 0), kwargs.get("progress", True))
    call = {"entries": [dataclasses.asdict(e) for e in entries], "metrics": [m.name for m in metrics], "out_dir": str(out), "data": data, "masks": masks,
            **{k: v for k, v in kwargs.items() if k in ("count", "size", "seed", "batch_size", "device")}}
    _start(devices, out / WORK, {"kind": "compare", "kwargs": call})
    return run_compare(entries, metrics, out, data, masks, **kwargs)


def _sample_part(kwargs: dict[str, Any], rank: int, size: int) -> dict[str, Any]:
    from zoo import runner

    report = runner.sample_folder(**kwargs, rank=rank, world_size=size)
    return {"count": report.count, "info": {k: v for k, v in report.info.items() if isinstance(v, (int, float, str))}, "notes": report.notes}


def _compare_part(kwargs: dict[str, Any], rank: int, size: int) -> dict[str, Any]:
    from zoo.compare import Entry, prepare_eval_set, sample_entry
    from zoo.metrics import parse_metric_list
    from zoo.report import PRED_DIR, safe_label

    out = Path(kwargs["out_dir"])
    parse_metric_list(kwargs["metrics"])
    ev = prepare_eval_set(out, kwargs["data"], kwargs["masks"], kwargs["count"], kwargs["size"], kwargs["seed"], progress=False)
    for e in kwargs["entries"]:
        entry = Entry(label=e["label"], method=e["method"], checkpoint=Path(e["checkpoint"]) if e["checkpoint"] else None, overrides=e["overrides"])
        sample_entry(entry, ev, out / PRED_DIR / safe_label(entry.label), kwargs["seed"], kwargs["batch_size"], kwargs.get("device"),
                     progress=False, rank=rank, world_size=size)
    return {"count": len(kwargs["entries"])}


def main(argv: list[str] | None = None) -> int:
    """One sampling process: ``python -m zoo.shard OUT/.zoo-shard/spec.json``."""
    import torch.distributed as dist

    argv = sys.argv[1:] if argv is None else argv
    spec_path = Path(argv[0])
    spec = json.loads(spec_path.read_text())
    part = {"sample": _sample_part, "compare": _compare_part}[spec["kind"]]
    rank, size = world()
    dist.init_process_group("gloo", rank=rank, world_size=size)
    import torch

    record: dict[str, Any] = {"rank": rank}
    code, crash = 0, None
    try:
        record.update(part(spec["kwargs"], rank, size))
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
