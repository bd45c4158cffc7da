"""``zoo bench``: what each method costs on this machine (time, memory, FLOPs).

Per method and preset (the ``tiny`` preset by default, the method's default where it has
none), on a fixed batch of ``shapes`` images with a box hole:

* **sampling**: one warm-up call of :func:`zoo.inpaint.inpaint` (the same call ``zoo sample``
  makes), then ``repeats`` timed calls; latency per image = call time / batch, with the
  median, min and max over the repeats; images/s = batch / median call time; ``nfe`` (network
  calls per image) as the method reports it in its sample info; s per network call = median
  latency per image / nfe;
* **FLOPs**: one more sampler call under :class:`torch.utils.flop_counter.FlopCounterMode`
  (everything the sampler runs, e.g. also the per-image Deep Image Prior fit of dip-ddpm);
  ``gflops_per_image`` = counted / batch, ``gflops_per_call`` = that / nfe;
* **parameters**: ``sum(p.numel())`` over the model's parameters (every sub-network the
  model holds, e.g. discriminators and tokenizers too);
* **peak memory**: from building the model through the warm-up and timed calls: on CUDA
  ``torch.cuda.max_memory_allocated``; on a CPU the peak resident set size above the RSS just
  before the model is built, after ``gc`` and ``malloc_trim`` (in the bench process, so memory
  an earlier method freed to the allocator can hide some of it) (Linux: the kernel's
  high-water mark ``VmHWM`` reset through ``/proc/self/clear_refs``; elsewhere a thread
  sampling RSS every 2 ms);
* with ``train=True``: the engine's own training steps (``zoo train``'s code path, so
  ``--precision`` applies) at the preset's batch, ``1 + repeats`` steps, the first one a
  warm-up; step time = the step's wall time as the engine reports it to a
  :func:`zoo.train.events.step_listener` (CUDA synchronised), per stage for methods that train
  in stages (``stages``; ``step_s`` is the last stage's), and the peak memory of the whole run
  (setup included) measured as above.

Random weights are used (the preset's architecture, freshly built): cost does not depend on
training. A method that fails is reported with its one-line error and the others still run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import platform
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from zoo.config import resolve_config
from zoo.device import cpu_name, get_device, get_dtype
from zoo.errors import ZooError
from zoo.inpaint import inpaint
from zoo.plugins import get_manager
from zoo.provenance import versions
from zoo.train.events import StepEvent, step_listener
from zoo.train.watch import read_events

MEMORY_METHOD_CPU = "peak RSS above the RSS before the model is built (in-process, after gc + malloc_trim; model + warm-up + timed calls) (Linux VmHWM reset via /proc/self/clear_refs; else RSS sampled every 2 ms)"
MEMORY_METHOD_CUDA = "torch.cuda.max_memory_allocated (after reset_peak_memory_stats)"
FLOPS_METHOD = "torch.utils.flop_counter.FlopCounterMode over one whole sampler call, divided by batch (per image) and by nfe (per call)"


@dataclass
class BenchSettings:
    preset: str | None = None  # None: tiny where the method has it, else its default
    resolution: int | None = None  # None: the preset's resolution (64 where it has none)
    batch_size: int = 1
    device: str = "cpu"
    precision: str = "fp32"
    warmup: int = 1
    repeats: int = 3
    train: bool = False
    flops: bool = True
    seed: int = 0
    grad_checkpointing: bool = False  # --train: the engine's --grad-checkpointing
    micro_batch: str | None = None  # --train: the engine's --micro-batch (N or auto; None: the whole batch)

    def check(self) -> None:
        if self.resolution is not None and self.resolution < 8:
            raise ZooError(f"--resolution {self.resolution}: must be at least 8")
        if self.batch_size < 1:
            raise ZooError(f"--batch-size {self.batch_size}: must be at least 1")
        if self.repeats < 1 or self.warmup < 0:
            raise ZooError("--repeats must be at least 1 and --warmup at least 0")
        get_dtype(self.precision)
        get_device(self.device)
        if self.micro_batch is not None:
            from zoo.train import TrainOptions

            TrainOptions(micro_batch=self.micro_batch)  # N or auto, else one line


@dataclass
class BenchResult:
    method: str
    preset: str | None = None
    ok: bool = True
    error: str = ""
    values: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"method": self.method, "preset": self.preset, "ok": self.ok, "error": self.error, **self.values}


# -- memory -------------------------------------------------------------------------------
def _status_kib(key: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _rss_bytes() -> int:
    kib = _status_kib("VmRSS")
    if kib is not None:
        return kib * 1024
    import psutil

    return int(psutil.Process().memory_info().rss)


class PeakMemory:
    """``with PeakMemory(device) as m: ...``; then ``m.peak_bytes`` (above the start on a CPU)."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.peak_bytes, self._stop = device, 0, threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> "PeakMemory":
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            return self
        self.start = _rss_bytes()
        self._hwm = False
        try:
            Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
            self._hwm = _status_kib("VmHWM") is not None
        except OSError:
            pass
        if not self._hwm:
            self._max = self.start

            def poll() -> None:
                while not self._stop.wait(0.002):
                    self._max = max(self._max, _rss_bytes())

            self._thread = threading.Thread(target=poll, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak_bytes = int(torch.cuda.max_memory_allocated(self.device))
            return
        if self._hwm:
            peak = (_status_kib("VmHWM") or 0) * 1024
        else:
            self._stop.set()
            assert self._thread is not None
            self._thread.join()
            peak = self._max
        self.peak_bytes = max(0, peak - self.start)


# -- helpers ------------------------------------------------------------------------------
def release_memory() -> None:
    """Give freed memory back to the OS (``gc`` + glibc ``malloc_trim``), so that the RSS
    measured next starts near what is really in use."""
    import ctypes
    import gc

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def machine_info(device: torch.device | None = None) -> dict[str, Any]:
    info: dict[str, Any] = {"cpu": cpu_name(), "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "platform": platform.platform()}
    try:
        info["load_average_1m"] = round(os.getloadavg()[0], 2)
    except OSError:
        pass
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["cuda"] = torch.version.cuda
    return info


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _batch(resolution: int, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    from zoo.data import ShapesDataset

    data = ShapesDataset(resolution=resolution, seed=seed, split="val")
    images = torch.stack([data[i % len(data)]["image"] for i in range(n)])
    masks = torch.zeros(n, 1, resolution, resolution)
    r = resolution
    masks[..., r // 4 : (3 * r) // 4, r // 4 : (3 * r) // 4] = 1
    return images, masks


def _preset_of(spec: Any, preset: str | None) -> str:
    if preset is not None:
        return preset
    return "tiny" if "tiny" in spec.presets else spec.default


def _config(method: str, settings: BenchSettings, overrides: dict[str, Any] | None) -> tuple[Any, str, int]:
    spec = get_manager().method(method)
    preset = _preset_of(spec, settings.preset)
    if preset not in spec.presets:
        raise ZooError(f"method {method!r} has no preset {preset!r}; valid: {', '.join(spec.presets)}")
    values = dict(overrides or {})
    fields = {f.name for f in dataclasses.fields(spec.config)}
    if settings.resolution is not None and "resolution" in fields:
        values.setdefault("resolution", str(settings.resolution))
    config, preset = resolve_config(spec, preset, values or None)
    if hasattr(config, "validate"):
        config.validate()
    res = settings.resolution or int(getattr(config, "resolution", 0) or 64)
    return config, preset, res


def _autocast(device: torch.device, precision: str):
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=get_dtype(precision))


def _stats(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


# -- one method ---------------------------------------------------------------------------
def bench_sampling(method: str, settings: BenchSettings, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The sampling figures of one method (see the module docstring); raises on failure."""
    from torch.utils.flop_counter import FlopCounterMode

    device = get_device(settings.device)
    config, preset, res = _config(method, settings, overrides)
    torch.manual_seed(settings.seed)
    images, masks = (t.to(device) for t in _batch(res, settings.batch_size, settings.seed))
    b = settings.batch_size
    release_memory()
    times: list[float] = []
    info: dict[str, Any] = {}
    with PeakMemory(device) as mem:  # model weights + warm-up + timed calls
        model = get_manager().call("zoo_build_model", method, config=config)
        model = model.eval().to(device)
        params = sum(p.numel() for p in model.parameters())

        def call(seed: int) -> dict[str, Any]:
            with torch.no_grad(), _autocast(device, settings.precision):
                _, info = inpaint(method, model, config, images, masks, torch.Generator().manual_seed(seed))
            return dict(info or {})

        for i in range(settings.warmup):
            call(settings.seed + i)
        for i in range(settings.repeats):
            _sync(device)
            t = time.perf_counter()
            info = call(settings.seed + i)
            _sync(device)
            times.append(time.perf_counter() - t)
    nfe = info.get("nfe")
    nfe = int(nfe) if isinstance(nfe, (int, float)) and nfe > 0 else None
    per_image = [t / b for t in times]
    out: dict[str, Any] = {
        "preset": preset, "resolution": res, "batch_size": b, "params": int(params), "nfe": nfe,
        "latency_s_per_image": _stats(per_image), "images_per_s": b / statistics.median(times),
        "s_per_call": (statistics.median(per_image) / nfe) if nfe else None,
        "peak_memory_bytes": mem.peak_bytes,
        # what the method's sampler reports of the last timed call (e.g. dip-ddpm's time_dip_s)
        "sample_info": {k: v for k, v in info.items() if isinstance(v, (int, float, str)) and not isinstance(v, bool)},
    }
    if settings.flops:
        counter = FlopCounterMode(display=False)
        with counter:
            call(settings.seed)
        total = counter.get_total_flops()
        out["gflops_per_image"] = total / b / 1e9
        out["gflops_per_call"] = (total / b / nfe / 1e9) if nfe else None
    return out


def bench_training(method: str, settings: BenchSettings, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Time of one engine training step (median over ``repeats`` after a warm-up step) and
    the run's peak memory; raises on failure."""
    from zoo.runner import train
    from zoo.train import TrainOptions

    spec = get_manager().method(method)
    if not spec.needs_training:
        return {"train": None}
    config, preset, _ = _config(method, settings, overrides)
    values = dict(overrides or {})
    if settings.resolution is not None and "resolution" in {f.name for f in dataclasses.fields(spec.config)}:
        values.setdefault("resolution", str(settings.resolution))
    batch = int(getattr(config, "batch_size", 0) or 0) or settings.batch_size
    device = get_device(settings.device)
    options = TrainOptions(device=str(device), precision=settings.precision, progress=False, tensorboard=False, handle_signals=False,
                           grad_checkpointing=settings.grad_checkpointing, micro_batch=settings.micro_batch)
    release_memory()
    events: list[StepEvent] = []
    with tempfile.TemporaryDirectory(prefix="zoo-bench-") as tmp, step_listener(events.append), PeakMemory(device) as mem:
        run = Path(tmp) / "run"
        train(method, "shapes", preset=preset, overrides=values or None, steps=1 + settings.repeats, batch_size=batch,
              seed=settings.seed, out_dir=run, options=options, command=["zoo", "bench", "--train"])
        micro = {}  # the micro-batch and accumulation each stage's engine used (its start event)
        for log in sorted(run.rglob("events.jsonl")):
            start = next((e for e in read_events(log.parent) if e.get("event") == "start"), None)
            if start is not None:
                name = log.parent.relative_to(run).as_posix() if log.parent != run else "train"
                micro[name] = {"micro_batch": start.get("micro_batch"), "accum": start.get("accum")}
    if not events:
        raise RuntimeError("the engine reported no training steps")
    stages: dict[str, list[float]] = {}
    for e in events:  # one fit call per stage (maskgit, dit-mca): RUN/<stage>, or RUN itself
        name = e.out_dir.relative_to(run).as_posix() if e.out_dir != run and run in e.out_dir.parents else "train"
        stages.setdefault(name, []).append(e.seconds)
    per_stage = [{"stage": name, "step_s": _stats(times[1:] or times), "steps_timed": len(times[1:] or times), "warm_up_included": len(times) == 1,
                  **micro.get(name, {})} for name, times in stages.items()]  # the first step of a stage is its warm-up, unless it is the only one
    last = per_stage[-1]
    return {"train": {"batch_size": batch, "step_s": last["step_s"], "steps_timed": last["steps_timed"], "stages": per_stage,
                      "peak_memory_bytes": mem.peak_bytes}}


def bench_method(method: str, settings: BenchSettings, overrides: dict[str, Any] | None = None) -> BenchResult:
    """Every figure of one method; a failure is caught and kept as a one-line error."""
    result = BenchResult(method)
    try:
        result.values = bench_sampling(method, settings, overrides)
        result.preset = result.values.pop("preset")
    except ZooError as exc:
        result.ok, result.error = False, str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    except Exception as exc:  # noqa: BLE001 - a method's bug must not stop the others
        text = str(exc).strip().splitlines()
        result.ok, result.error = False, f"{type(exc).__name__}: {text[0] if text else ''}".strip()
    if settings.train and result.ok:  # a training failure keeps the sampling figures
        try:
            result.values.update(bench_training(method, settings, overrides))
        except Exception as exc:  # noqa: BLE001
            text = str(exc).strip().splitlines()
            line = text[0] if text else type(exc).__name__
            result.values["train"] = {"error": line if isinstance(exc, ZooError) else f"{type(exc).__name__}: {line}"}
    return result


def bench(methods: list[str] | None, settings: BenchSettings, progress: bool = True, overrides: dict[str, dict[str, str]] | None = None) -> dict[str, Any]:
    """Bench ``methods`` (default: every method ``zoo list`` shows); returns the JSON document.
    ``overrides``: config values per method (``--set METHOD.KEY=VALUE``), e.g. a cheaper
    sampling schedule for timing the network call of a large preset."""
    from tqdm.auto import tqdm

    settings.check()
    manager = get_manager()
    names = list(methods) if methods else sorted(manager.methods())
    overrides = dict(overrides or {})
    for name in overrides:
        if name not in names:
            raise ZooError(f"--set {name}.…: {name!r} is not among the benched methods ({', '.join(names)})")
    for name in names:
        manager.method(name)  # unknown name: one line before anything runs
        if methods:  # methods named by the user: a bad preset, --set or --resolution is one line now
            _config(name, settings, overrides.get(name))
    device = get_device(settings.device)
    results = []
    for name in tqdm(names, desc="bench", disable=not progress, dynamic_ncols=True):
        results.append({**bench_method(name, settings, overrides.get(name)).as_dict(), "set": overrides.get(name, {})})
    return {
        "settings": {**dataclasses.asdict(settings), "device": str(device)},
        "machine": machine_info(device),
        "versions": versions(),
        "memory_method": MEMORY_METHOD_CUDA if device.type == "cuda" else MEMORY_METHOD_CPU,
        "flops_method": FLOPS_METHOD,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "results": results,
    }


def _fmt(v: Any, spec: str = ".3g") -> str:
    return "-" if v is None else format(v, spec)


def _step_cell(t: dict[str, Any]) -> str:
    stages = t.get("stages") or []
    if len(stages) < 2:
        return f"{t['step_s']['median']:.4g}"
    return "; ".join(f"{st['stage']} {st['step_s']['median']:.4g}" for st in stages)


def table(doc: dict[str, Any]) -> str:
    """A markdown table of a :func:`bench` document."""
    train = doc["settings"].get("train")
    head = ["method", "preset", "res", "batch", "params", "nfe", "latency s/img (median [min, max])", "img/s", "s/call", "GFLOPs/call", "GFLOPs/img", "peak MiB"]
    if train:
        head += ["train step s (median)", "train batch", "train peak MiB"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in doc["results"]:
        if not r["ok"]:
            rows.append(f"| {r['method']} | {r['preset'] or '-'} | failed: {r['error']} |" + " |" * (len(head) - 3))
            continue
        lat = r["latency_s_per_image"]
        cells = [r["method"], r["preset"], str(r["resolution"]), str(r["batch_size"]), f"{r['params'] / 1e6:.3f} M", _fmt(r["nfe"], "d"),
                 f"{lat['median']:.4g} [{lat['min']:.4g}, {lat['max']:.4g}]", _fmt(r["images_per_s"]), _fmt(r["s_per_call"]),
                 _fmt(r.get("gflops_per_call")), _fmt(r.get("gflops_per_image")), f"{r['peak_memory_bytes'] / 2**20:.1f}"]
        if train:
            t = r.get("train")
            if t and "error" in t:
                cells += [f"failed: {t['error']}", "-", "-"]
            else:
                cells += [_step_cell(t), str(t["batch_size"]), f"{t['peak_memory_bytes'] / 2**20:.1f}"] if t else ["-", "-", "-"]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)
