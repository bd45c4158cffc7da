"""``zoo sample`` and ``zoo compare`` over several processes: ``--devices N`` on one machine, or
``accelerate launch`` / ``torchrun`` across machines; the files as one process makes them.

Every process runs :func:`run_world` (``RANK`` / ``WORLD_SIZE`` / ``MASTER_ADDR`` /
``MASTER_PORT`` come from the launcher; a gloo process group joins them):

1. process 0 checks ``--out`` and prepares it (``zoo sample``: the resume state of an
   interrupted run; ``zoo compare``: the eval set) while the others wait; a user error there
   is one line from process 0 and a quiet exit 2 of the others;
2. every process checks that it sees the folder process 0 prepared (several machines need a
   filesystem they all share: one line names the processes that do not see it);
3. each process samples the batches whose index is congruent to its rank modulo N
   (:func:`mine`), writing its PNGs and its progress after every batch;
4. process 0 finishes: ``zoo sample`` drops the progress of the complete run; ``zoo compare``
   merges the progress files, scores and writes the report as one process does.

Every image's seed comes from its position (:func:`zoo.inpaint.sample_seed`), never from the
process, so the files are byte-identical to a one-process run with the same
``--batch-size``, and an interrupted run (any N) resumes without redoing a finished batch.

``--devices N`` (:func:`launch_sample`, :func:`launch_compare`): the parent checks what it
cheaply can, writes the call to ``OUT/.zoo-shard/spec.json``, starts N processes ``python -m
zoo.shard SPEC`` with the launcher's environment set as torchrun sets it, and does step 4
itself with what they record in ``OUT/.zoo-shard/result.json``. When one process dies the
parent stops the others. Under ``accelerate launch`` (``accelerate launch --num_machines M
--machine_rank R --main_process_ip IP --num_processes N -m zoo_cli.main sample ...``, without
``--devices``) process 0 does step 4 and prints the summary.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable

from zoo.errors import EnvironmentFailure, QuietExit, ZooError, failure_line, plain_warnings
from zoo.fsutil import write_text

WORK = ".zoo-shard"  # in --out while the processes run
TIMEOUT = timedelta(days=7)  # a collective waits this long for the slowest process's share


def world() -> tuple[int, int]:
    """(rank, world size) of this process: from the launcher's environment, else (0, 1)."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def mine(batch_index: int, rank: int, world_size: int) -> bool:
    """Whether batch ``batch_index`` is this process's share."""
    return batch_index % world_size == rank


# -- the four steps, per command --------------------------------------------------------------------
def _prepare_sample(kw: dict[str, Any]) -> dict[str, Any]:
    from zoo import runner
    from zoo.imageio import pair_images_and_masks

    out = Path(kw["out_dir"])
    existed = out.exists()
    pairs = pair_images_and_masks(kw["images"], kw["masks"])
    fp = runner.sample_fingerprint(kw["method"], kw["checkpoint"], pairs, kw["images"], kw["masks"], kw["seed"], kw["num_samples"],
                                   kw["overrides"], kw["batch_size"], kw["mask_convention"])
    out, done = runner.prepare_sample_dir(out, kw["images"], kw["masks"], fp, kw.get("overwrite", False))
    return {"out": str(out), "done": done, "created": not existed}


def _sample_part(kw: dict[str, Any], prep: dict[str, Any], rank: int, size: int) -> dict[str, Any]:
    from zoo import runner

    call = {k: v for k, v in kw.items() if k not in ("out_dir", "overwrite", "progress")}
    report = runner.sample_folder(**call, out_dir=prep["out"], overwrite=True, progress=kw.get("progress", True) and rank == 0,
                                  rank=rank, world_size=size, done=prep["done"])
    return {"count": report.count, "resumed": report.resumed, "notes": report.notes,
            "info": {k: v for k, v in report.info.items() if isinstance(v, (int, float, str))}}


def _finish_sample(kw: dict[str, Any], prep: dict[str, Any], records: list[dict[str, Any]]) -> dict[str, Any]:
    from zoo.runner import PROGRESS_DIR

    shutil.rmtree(Path(prep["out"]) / PROGRESS_DIR, ignore_errors=True)  # complete: only the images stay
    info: dict[str, Any] = {}
    for r in records:
        info.update(r["info"])
    return {"count": sum(r["count"] for r in records), "resumed": sum(r["resumed"] for r in records), "info": info, "notes": records[0]["notes"]}


def _failed_sample(prep: dict[str, Any]) -> None:
    """A failed run that finished no batch leaves nothing; one that did keeps them for the rerun."""
    from zoo.runner import PROGRESS_DIR, read_sample_progress

    out = Path(prep["out"])
    if read_sample_progress(out)[1]:
        return
    if prep["created"]:
        shutil.rmtree(out, ignore_errors=True)
    else:
        shutil.rmtree(out / PROGRESS_DIR, ignore_errors=True)


def _prepare_compare(kw: dict[str, Any]) -> dict[str, Any]:
    from zoo.compare import merge_progress, prepare_eval_set
    from zoo.report import PRED_DIR, safe_label
    from zoo.fsutil import check_output_dir, removed_on_failure
    from zoo.metrics import parse_metric_list
    from zoo.metrics.scoring import preflight

    preflight(parse_metric_list(",".join(kw["metrics"])), kw.get("fid_weights"))
    data, masks = kw["data"], kw["masks"]
    out = check_output_dir(kw["out_dir"], {"--data": data if data and Path(str(data)).is_dir() else None, "--masks": masks if Path(masks).is_dir() else None}, overwrite=True)
    with removed_on_failure(out):
        out.mkdir(parents=True, exist_ok=True)
        ev = prepare_eval_set(out, data, masks, kw["count"], kw["size"], kw["seed"], kw.get("progress", True))
    for entry in _entries(kw):  # an interrupted run's batches, whatever N it had, before the processes split the rest
        merge_progress(entry, ev, out / PRED_DIR / safe_label(entry.label), kw["seed"], kw["batch_size"])
    return {"out": str(out)}


def _compare_part(kw: dict[str, Any], prep: dict[str, Any], rank: int, size: int) -> dict[str, Any]:
    from zoo.compare import prepare_eval_set, sample_entry
    from zoo.report import PRED_DIR, safe_label

    out = Path(prep["out"])
    ev = prepare_eval_set(out, kw["data"], kw["masks"], kw["count"], kw["size"], kw["seed"], progress=False)
    for entry in _entries(kw):
        sample_entry(entry, ev, out / PRED_DIR / safe_label(entry.label), kw["seed"], kw["batch_size"], kw.get("device"),
                     progress=kw.get("progress", True) and rank == 0, rank=rank, world_size=size)
    return {"entries": len(kw["entries"])}


def _finish_compare(kw: dict[str, Any], prep: dict[str, Any], records: list[dict[str, Any]]):
    from zoo.compare import run_compare
    from zoo.metrics import parse_metric_list

    extra = {k: kw[k] for k in ("count", "size", "seed", "batch_size", "device", "fid_weights", "fid_layer", "bootstrap", "progress", "command") if k in kw}
    return run_compare(_entries(kw), parse_metric_list(",".join(kw["metrics"])), prep["out"], kw["data"], kw["masks"], **extra)


def _entries(kw: dict[str, Any]):
    from zoo.compare import Entry

    return [Entry(label=e["label"], method=e["method"], checkpoint=Path(e["checkpoint"]) if e["checkpoint"] else None, overrides=e["overrides"])
            for e in kw["entries"]]


STEPS: dict[str, tuple[Callable, Callable, Callable, Callable | None]] = {
    "sample": (_prepare_sample, _sample_part, _finish_sample, _failed_sample),
    "compare": (_prepare_compare, _compare_part, _finish_compare, None),
}


# -- every process --------------------------------------------------------------------------------
def run_world(kind: str, kwargs: dict[str, Any], finish: bool = True) -> Any:
    """Steps 1-4 of the module docstring in this process; returns process 0's result (the
    summary of ``zoo sample``, the :class:`~zoo.compare.CompareResult` of ``zoo compare``), or
    with ``finish=False`` the records every process returned (step 4 is then the caller's);
    ``None`` on the other processes. Raises :class:`ZooError` on process 0 and
    :class:`QuietExit` on the others for a user error of any process."""
    import torch.distributed as dist

    rank, size = world()
    joined = not dist.is_initialized()
    if joined:
        dist.init_process_group("gloo", rank=rank, world_size=size, timeout=TIMEOUT)
    ok = False
    try:
        result = _steps(kind, kwargs, finish, rank, size)
        ok = True
        return result
    except Exception as exc:
        if not _lost_peer(exc):
            raise
        raise ZooError(f"lost the other process(es) of this {size}-process run (a machine stopped, or the network between them failed: "
                       f"{_first_line(exc)}); the batches finished so far are kept in --out {kwargs.get('out_dir')}: "
                       "start every machine again with the same command to resume") from None
    finally:
        if joined:
            if ok:
                dist.barrier()  # every process done before any tears its connections down
            dist.destroy_process_group()


def _lost_peer(exc: BaseException) -> bool:
    """Whether ``exc`` came out of a torch.distributed collective (gloo's "Connection closed by
    peer", a reset connection, a store that is gone): another process of the run died."""
    import traceback

    if isinstance(exc, (ZooError, QuietExit)) or not isinstance(exc, RuntimeError):
        return False
    frames = traceback.extract_tb(exc.__traceback__)
    return any("torch/distributed/" in f.filename.replace("\\", "/") for f in frames[-3:])


def _first_line(exc: BaseException) -> str:
    """The gist of a collective's error: gloo's ``[.../pair.cc:561] Connection closed by peer
    [127.0.0.1]:50066. This is typically ...`` -> ``Connection closed by peer [127.0.0.1]:50066``."""
    import re

    text = str(exc).strip().splitlines()
    line = re.sub(r"^\[[^\]]*\]\s*", "", text[0] if text else "") or type(exc).__name__
    return line.split(". ")[0][:200]


def _gather(obj: Any, size: int) -> list[Any]:
    import torch.distributed as dist

    out: list[Any] = [None] * size
    dist.all_gather_object(out, obj)
    return out


def _user_error(message: str, rank: int, code: int = 2) -> Exception:
    return ZooError(message) if rank == 0 else QuietExit(code)


def _steps(kind: str, kw: dict[str, Any], finish: bool, rank: int, size: int) -> Any:
    import torch.distributed as dist

    prepare, part, done, failed = STEPS[kind]
    # 1. process 0 checks and prepares the folder
    shared: list[Any] = [None]
    if rank == 0:
        try:
            prep = prepare(kw)
            token = f"world-{uuid.uuid4().hex}"
            write_text(Path(prep["out"]) / WORK / token, "")
            shared = [{"prep": prep, "token": token}]
        except ZooError as exc:
            shared = [{"error": str(exc)}]
    dist.broadcast_object_list(shared, src=0)
    if "error" in shared[0]:
        raise _user_error(shared[0]["error"], rank)
    prep, token = shared[0]["prep"], shared[0]["token"]
    out = Path(prep["out"])
    # 2. every process sees the prepared folder
    seen = _gather((out / WORK / token).is_file(), size)
    if not all(seen):
        if rank == 0:
            shutil.rmtree(out / WORK, ignore_errors=True)
            if failed is not None:
                failed(prep)
        blind = ", ".join(str(r) for r, ok in enumerate(seen) if not ok)
        raise _user_error(f"--out {out}: process(es) {blind} of {size} do not see the folder process 0 prepared; "
                          "over several machines --out (and the inputs) must be on a filesystem every machine shares", rank)
    # 3. each process samples its share
    crash: BaseException | None = None
    try:
        record: dict[str, Any] = {"ok": part(kw, prep, rank, size)}
    except ZooError as exc:
        record = {"error": str(exc)}
    except Exception as exc:  # noqa: BLE001 - meet the others first, then show the traceback
        record, crash = {"crash": f"{type(exc).__name__}: {exc}".strip()}, exc
    records = _gather(record, size)
    errors = [r["error"] for r in records if "error" in r]
    crashes = [(r, rec["crash"]) for r, rec in enumerate(records) if "crash" in rec]
    if errors or crashes:
        if rank == 0:
            shutil.rmtree(out / WORK, ignore_errors=True)
            if failed is not None:
                failed(prep)
        if crash is not None:
            raise crash
        if errors:
            raise _user_error(errors[0], rank)
        if rank == 0:
            raise RuntimeError(f"process {crashes[0][0]} of {size} failed: {crashes[0][1]} (its traceback is above)")
        raise QuietExit(1)
    results = [r["ok"] for r in records]
    if rank == 0:
        shutil.rmtree(out / WORK, ignore_errors=True)
    if not finish:
        return results if rank == 0 else None
    # 4. process 0 finishes (the others wait, so that nobody exits before the report exists)
    result, problem = None, None
    if rank == 0:
        try:
            result = done(kw, prep, results)
        except Exception as exc:  # noqa: BLE001 - release the others, then raise
            problem = exc
    dist.barrier()
    if problem is not None:
        raise problem
    return result


# -- --devices N: the parent ----------------------------------------------------------------------
def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(devices: int, kind: str, kwargs: dict[str, Any]) -> list[dict[str, Any]]:
    """Run steps 1-3 in ``devices`` new processes; their records (a user error: ZooError)."""
    import tempfile

    spec_dir = Path(tempfile.mkdtemp(prefix="zoo-shard-"))  # outside --out: process 0 checks --out as the user left it
    try:
        path = spec_dir / "spec.json"
        write_text(path, json.dumps({"kind": kind, "kwargs": kwargs}, default=str))
        env = dict(os.environ, WORLD_SIZE=str(devices), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()))
        env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // devices)))
        procs = [subprocess.Popen([sys.executable, "-m", "zoo.shard", str(path)], env={**env, "RANK": str(r), "LOCAL_RANK": str(r)})
                 for r in range(devices)]
        try:
            codes = _wait(procs)
        except BaseException:  # Ctrl-C: the processes got it too; let them stop, make sure none outlives us
            for p in procs:
                try:
                    p.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    p.terminate()
            raise
        result = json.loads((spec_dir / "result.json").read_text()) if (spec_dir / "result.json").is_file() else None
    finally:
        shutil.rmtree(spec_dir, ignore_errors=True)
    if result is not None and result.get("error"):
        raise (EnvironmentFailure if result.get("exit_code") == 1 else ZooError)(result["error"])
    if any(codes) or result is None:
        raise RuntimeError(f"a process of --devices {devices} failed (exit codes {codes}); see its traceback above")
    return result["records"]


def _wait(procs: list[subprocess.Popen], grace: float = 10.0) -> list[int]:
    """Wait for every process; when one dies with an error while others still run (they would
    wait for it in a collective), stop the others after ``grace`` seconds."""
    failed_at = None
    while True:
        codes = [p.poll() for p in procs]
        if all(c is not None for c in codes):
            return codes  # type: ignore[return-value]
        if failed_at is None and any(c not in (None, 0) for c in codes):
            failed_at = time.monotonic()
        if failed_at is not None and time.monotonic() - failed_at > grace:
            for p in procs:
                if p.poll() is None:
                    p.terminate()
        time.sleep(0.2)


def launch_sample(devices: int, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Run :func:`zoo.runner.sample_folder` (``kwargs``) over ``devices`` new processes; returns
    ``{"count", "resumed", "info", "notes"}`` as :func:`run_world` does on process 0."""
    from zoo.device import check_devices

    check_devices(devices, kwargs.get("device"))  # above the GPUs, cores or memory: one line before any process starts
    out = Path(kwargs["out_dir"])
    prep = {"out": str(out), "created": not out.exists()}
    try:
        records = _start(devices, "sample", {**kwargs, "out_dir": str(out)})
    except Exception:
        if out.exists():
            _failed_sample(prep)
        raise
    return _finish_sample(kwargs, prep, records)


def launch_compare(devices: int, entries: list[Any], metrics: list[Any], out_dir: str | Path, data: str | None, masks: str, **kwargs: Any):
    """:func:`zoo.compare.run_compare` with the sampling split over ``devices`` new processes
    (steps 1-3 there); this process then merges their progress, scores and writes the report
    (the same files a one-process run writes)."""
    import dataclasses

    from zoo.compare import run_compare
    from zoo.metrics.scoring import preflight

    from zoo.device import check_devices

    check_devices(devices, kwargs.get("device"))
    preflight(metrics, kwargs.get("fid_weights"))  # missing weights: one line before any process starts
    call = {"entries": [dataclasses.asdict(e) for e in entries], "metrics": [m.name for m in metrics], "out_dir": str(out_dir), "data": data,
            "masks": masks, **{k: v for k, v in kwargs.items() if k in ("count", "size", "seed", "batch_size", "device", "fid_weights", "progress")}}
    _start(devices, "compare", call)
    return run_compare(entries, metrics, out_dir, data, masks, **kwargs)


def main(argv: list[str] | None = None) -> int:
    """One process of ``--devices N``: ``python -m zoo.shard SPEC`` (steps 1-3; process 0
    records the outcome next to SPEC for the parent)."""
    argv = sys.argv[1:] if argv is None else argv
    plain_warnings()  # this process runs outside the CLI's warning handler
    spec_path = Path(argv[0])
    spec = json.loads(spec_path.read_text())
    rank, _ = world()
    try:
        records = run_world(spec["kind"], spec["kwargs"], finish=False)
    except ZooError as exc:
        write_text(spec_path.parent / "result.json", json.dumps({"error": str(exc)}))
        return 2
    except QuietExit as exc:
        return exc.code
    except Exception as exc:  # a full disk, out of memory: one line from the parent, like one process
        known = failure_line(exc)
        if known is None or rank != 0:
            raise
        write_text(spec_path.parent / "result.json", json.dumps({"error": known[0], "exit_code": known[1]}))
        return known[1]
    except KeyboardInterrupt:  # Ctrl-C reached the whole group: the parent says so once
        return 130
    if rank == 0:
        write_text(spec_path.parent / "result.json", json.dumps({"records": records}, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
