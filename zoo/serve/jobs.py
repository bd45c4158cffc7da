"""Jobs of ``zoo serve``: one image, one mask, several methods, run one at a time per device.

A job runs its methods in order through the same path as ``zoo sample`` (the image and mask
are read back from the job's folder with :func:`zoo.imageio.load_image` /
:func:`~zoo.imageio.load_mask`, sample ``k`` draws from ``sample_seed(seed, k, 0)`` and goes
through :func:`zoo.inpaint.inpaint`, the result is written by :func:`zoo.imageio.save_image`),
so its PNGs are byte-equal to ``zoo sample``'s for the same seed. Models stay loaded in a
:class:`ModelCache` (least recently used first out). While a method runs, a forward pre-hook
on every module (of the worker's thread only) counts the model's network calls, copies the
progress of the method's own progress bar and stops the run at the next call once the job is
cancelled.
"""

from __future__ import annotations

import collections
import json
import shutil
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from zoo.bench import PeakMemory
from zoo.device import get_device
from zoo.errors import ZooError
from zoo.fsutil import write_text
from zoo.imageio import load_image, load_mask, save_image
from zoo.inpaint import inpaint, sample_seed
from zoo.provenance import versions
from zoo.runner import build_model


class Cancelled(Exception):
    """Raised inside a running method when its job was cancelled."""


class QueueFull(Exception):
    """The bounded queue holds ``--max-queue`` waiting jobs already."""


@dataclass(frozen=True)
class Offered:
    """A checkpoint the server offers, by ``name`` (requests name nothing else)."""

    name: str
    method: str
    path: Path
    source: str  # "--checkpoint" or "cache"


@dataclass
class Result:
    sample: int
    path: Path
    seconds: float
    nfe: int | None


@dataclass
class Run:
    """One method of a job."""

    method: str
    checkpoint: Offered | None
    label: str  # folder name under results/: METHOD or METHOD@CHECKPOINT
    status: str = "queued"  # queued, loading, running, done, cancelled, error
    phase: str = ""
    step: int = 0
    total: int = 0
    calls: int = 0
    load_seconds: float = 0.0
    peak_memory_bytes: int | None = None
    error: str | None = None
    results: list[Result] = field(default_factory=list)


@dataclass
class Job:
    id: str
    folder: Path
    stem: str
    width: int
    height: int
    seed: int
    samples: int
    runs: list[Run]
    device: str = ""
    status: str = "queued"  # queued, running, done, cancelled, error
    created: float = field(default_factory=time.time)
    cancel: threading.Event = field(default_factory=threading.Event)

    @property
    def image_path(self) -> Path:
        return self.folder / "images" / f"{self.stem}.png"

    @property
    def mask_path(self) -> Path:
        return self.folder / "masks" / f"{self.stem}.png"

    def result_path(self, run: Run, k: int) -> Path:
        """Where ``zoo sample`` would write sample ``k`` (``NAME_sK.png`` when there are several)."""
        return self.folder / "results" / run.label / f"{self.stem}{f'_s{k}' if self.samples > 1 else ''}.png"

    @property
    def finished(self) -> bool:
        return self.status in ("done", "cancelled", "error")


class ModelCache:
    """Loaded models keyed by (method, checkpoint, device); at most ``size``, the least
    recently used one is dropped first."""

    def __init__(self, size: int) -> None:
        self.size = max(1, int(size))
        self._models: collections.OrderedDict[tuple[str, str, str], tuple[Any, Any]] = collections.OrderedDict()
        self._lock = threading.Lock()

    def get(self, method: str, checkpoint: Path | None, device: torch.device) -> tuple[Any, Any, bool]:
        """(model, config, loaded now?)."""
        key = (method, str(checkpoint or ""), str(device))
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return (*self._models[key], False)
        model, config = build_model(method, checkpoint)
        model.to(device)
        with self._lock:
            self._models[key] = (model, config)
            self._models.move_to_end(key)
            while len(self._models) > self.size:
                self._models.popitem(last=False)
        return model, config, True

    def loaded(self) -> list[tuple[str, str, str]]:
        with self._lock:
            return list(self._models)


def _progress_bars() -> list[Any]:
    """The open tqdm bars with a known length (a method's sampling loop)."""
    from tqdm import tqdm

    return [b for b in list(getattr(tqdm, "_instances", [])) if getattr(b, "total", None) and not getattr(b, "disable", True)]


class _Watch:
    """While a method runs in this thread: count the model's forward calls, mirror its
    progress bar, and raise :class:`Cancelled` at the next forward once ``job.cancel`` is set."""

    def __init__(self, job: Job, run: Run, model: Any) -> None:
        self.job, self.run, self.model, self.thread = job, run, model, threading.get_ident()
        self.handle: Any = None
        self.next_look = 0.0  # progress bars are looked at every 50 ms, not at every module call

    def __enter__(self) -> "_Watch":
        self.handle = torch.nn.modules.module.register_module_forward_pre_hook(self._hook)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.handle.remove()

    def _hook(self, module: Any, args: Any) -> None:
        if threading.get_ident() != self.thread:
            return
        if self.job.cancel.is_set():
            raise Cancelled()
        if module is self.model:
            self.run.calls += 1
        now = time.monotonic()
        if now < self.next_look:
            return
        self.next_look = now + 0.05
        bars = _progress_bars()
        if bars:
            bar = bars[-1]
            self.run.phase, self.run.step, self.run.total = str(bar.desc or ""), int(bar.n), int(bar.total)


def run_job(job: Job, device: torch.device, models: ModelCache) -> None:
    """Run every method of ``job`` in order on ``device``; a failing or cancelled method
    does not stop the finished ones from being kept."""
    job.status, job.device = "running", str(device)
    for run in job.runs:
        if job.cancel.is_set():
            run.status = "cancelled"
            continue
        try:
            _run_method(job, run, device, models)
            run.status = "done"
        except Cancelled:
            run.status = "cancelled"
        except ZooError as exc:  # a user error (or a plugin's broken contract): one line on the card
            run.status, run.error = "error", str(exc)
        except Exception as exc:  # noqa: BLE001 - a bug: one line on the card, the traceback on the server's console
            run.status, run.error = "error", f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            traceback.print_exc()
    write_run_json(job)
    job.status = "cancelled" if job.cancel.is_set() else ("done" if any(r.status == "done" for r in job.runs) else "error")


def _run_method(job: Job, run: Run, device: torch.device, models: ModelCache) -> None:
    run.status = "loading"
    start = time.perf_counter()
    model, config, _ = models.get(run.method, run.checkpoint.path if run.checkpoint else None, device)
    run.load_seconds = time.perf_counter() - start
    run.status = "running"
    with _Watch(job, run, model), PeakMemory(device) as peak:
        for k in range(job.samples):
            if job.cancel.is_set():
                raise Cancelled()
            image, mask = load_image(job.image_path), load_mask(job.mask_path)
            x, m = image[None].to(device), mask[None].to(device)
            generator = torch.Generator(device="cpu").manual_seed(sample_seed(job.seed, k, 0))
            calls = run.calls
            t0 = time.perf_counter()
            with torch.no_grad():
                result, info = inpaint(run.method, model, config, x, m, generator)
            seconds = time.perf_counter() - t0
            nfe = info.get("nfe") if isinstance(info.get("nfe"), int) else (run.calls - calls if any(True for _ in model.parameters()) else 0)
            path = job.result_path(run, k)
            save_image(path, result[0])
            run.results.append(Result(k, path, seconds, nfe))
    run.peak_memory_bytes = peak.peak_bytes
    run.step = run.total  # the bar is redrawn every 0.1 s; the method has finished


def sample_command(job: Job, run: Run) -> list[str]:
    """The ``zoo sample`` command that repeats ``run`` in the unpacked zip (into ``repeat/``)."""
    cmd = ["zoo", "sample", run.method]
    if run.checkpoint is not None:
        cmd += ["--checkpoint", str(run.checkpoint.path)]
    return cmd + ["--images", "images", "--masks", "masks", "--out", f"repeat/{run.label}", "--seed", str(job.seed), "--num-samples", str(job.samples)]


def run_info(job: Job) -> dict[str, Any]:
    """``run.json``: the inputs, the settings and each method's ``zoo sample`` command."""
    runs = []
    for run in job.runs:
        runs.append({"method": run.method, "checkpoint": run.checkpoint.name if run.checkpoint else None,
                     "checkpoint_path": str(run.checkpoint.path) if run.checkpoint else None, "status": run.status, "error": run.error,
                     "results": [f"results/{run.label}/{r.path.name}" for r in run.results],
                     "network_calls": [r.nfe for r in run.results], "seconds": [round(r.seconds, 4) for r in run.results],
                     "peak_memory_bytes": run.peak_memory_bytes, "device": job.device, "command": sample_command(job, run)})
    return {"tool": "zoo serve", "image": f"images/{job.stem}.png", "mask": f"masks/{job.stem}.png", "seed": job.seed, "num_samples": job.samples,
            "size": [job.width, job.height], "runs": runs, "repeat": "unzip, cd into the folder, run each command; its PNGs equal results/ byte for byte",
            "versions": versions()}


def write_run_json(job: Job) -> None:
    write_text(job.folder / "run.json", json.dumps(run_info(job), indent=2))


class JobQueue:
    """Jobs wait in one bounded queue; one worker thread per device takes the next."""

    def __init__(self, devices: list[str], max_queue: int, models: ModelCache, on_finished: Callable[[Job], None] | None = None) -> None:
        self.devices = [get_device(d) for d in devices]
        self.max_queue = max(0, int(max_queue))
        self.models = models
        self.on_finished = on_finished
        self._waiting: collections.deque[Job] = collections.deque()
        self._cond = threading.Condition()
        self._stop = False
        self._threads: list[threading.Thread] = []
        self.running: dict[str, Job] = {}

    def start(self) -> None:
        for i, device in enumerate(self.devices):
            t = threading.Thread(target=self._work, args=(device,), name=f"zoo-serve-{device}-{i}", daemon=True)
            t.start()
            self._threads.append(t)

    def submit(self, job: Job) -> None:
        with self._cond:
            if len(self._waiting) >= self.max_queue:
                raise QueueFull(f"the queue is full ({len(self._waiting)} job(s) waiting, --max-queue {self.max_queue}); try again when a job has finished")
            self._waiting.append(job)
            self._cond.notify()

    def position(self, job: Job) -> int | None:
        """1 for the next job to run; None when ``job`` is not waiting."""
        with self._cond:
            return next((i + 1 for i, j in enumerate(self._waiting) if j is job), None)

    def cancel(self, job: Job) -> None:
        job.cancel.set()
        with self._cond:
            if job in self._waiting:
                self._waiting.remove(job)
                for run in job.runs:
                    run.status = "cancelled"
                job.status = "cancelled"

    def stop(self, timeout: float = 10.0) -> None:
        """Cancel every job and wait for the workers (a running method stops at its next network call)."""
        with self._cond:
            self._stop = True
            for job in list(self._waiting) + list(self.running.values()):
                job.cancel.set()
            self._waiting.clear()
            self._cond.notify_all()
        for t in self._threads:
            t.join(timeout)

    def _work(self, device: torch.device) -> None:
        while True:
            with self._cond:
                while not self._waiting and not self._stop:
                    self._cond.wait()
                if self._stop:
                    return
                job = self._waiting.popleft()
                self.running[job.id] = job
            try:
                run_job(job, device, self.models)
            except Exception:  # noqa: BLE001 - e.g. the disk is full: this job fails, the worker goes on
                traceback.print_exc()
                job.status = "error"
            finally:
                with self._cond:
                    self.running.pop(job.id, None)
                if self.on_finished is not None:
                    self.on_finished(job)


def remove_job(job: Job) -> None:
    shutil.rmtree(job.folder, ignore_errors=True)
