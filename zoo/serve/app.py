"""The ``zoo serve`` app: a FastAPI application over :mod:`zoo.serve.jobs`.

``create_app(ServeSettings(...))`` checks the settings (every ``--checkpoint`` readable, every
``--methods`` name known; one-line :class:`~zoo.errors.ZooError` otherwise), makes the
server's temporary folder, and returns the app; its lifespan starts one worker per device and,
on exit, stops them and removes the folder (an ``atexit`` hook removes it too). The API:

=====================================  ============================================================
``GET  /``                             the page (``zoo/serve/static/``, no CDN assets)
``GET  /api/methods``                  methods on offer, each with its checkpoints
``GET  /api/checkpoints``              offered checkpoints, and which are loaded now
``POST /api/jobs``                     multipart: ``image``, ``mask``, ``methods``, ``seed``, ``samples``
``GET  /api/jobs/{id}``                status, per-method progress, results
``GET  /api/jobs/{id}/runs/{r}/{k}.png``  one result; ``image.png`` / ``mask.png`` the inputs
``GET  /api/jobs/{id}/zip``            image, mask, results and ``run.json``
``POST /api/jobs/{id}/cancel``         cancel (a running method stops at its next network call)
``GET  /api/openapi.json``             the OpenAPI description
=====================================  ============================================================

Errors are JSON ``{"error": "one line"}`` with 400 (bad input), 404, 413 (over a limit) or
429 (queue full).
"""

from __future__ import annotations

import atexit
import contextlib
import io
import shutil
import tempfile
import threading
import uuid
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.formparsers import MultiPartException, MultiPartParser

from zoo.serve.jobs import Job, JobQueue, ModelCache, QueueFull, Run, remove_job
from zoo.serve.offer import Offer, parse_methods
from zoo.serve.uploads import Limits, UploadError, safe_stem
from zoo.serve.store import store_inputs

STATIC = Path(__file__).with_name("static")
MAX_SAMPLES = 8


@dataclass
class ServeSettings:
    checkpoints: list[str] = field(default_factory=list)
    methods: list[str] | None = None  # None: every classical method and every method with an offered checkpoint
    devices: list[str] = field(default_factory=lambda: ["cpu"])
    limits: Limits = field(default_factory=Limits)
    max_queue: int = 8
    max_models: int = 4
    keep_jobs: int = 32  # finished jobs kept (oldest removed first)
    use_cache: bool = True  # offer the registry checkpoints found in $ZOO_CACHE_DIR/checkpoints


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


class _Parser(MultiPartParser):
    """Starlette's multipart parser with file parts kept in memory (the request's size is
    capped before parsing), so an upload never lands in the system's temporary folder."""

    spool_max_size = 1 << 62


class Server:
    """The state behind the app: settings, offer, temp folder, jobs, queue."""

    def __init__(self, settings: ServeSettings) -> None:
        self.settings = settings
        self.offer = Offer.build(settings.checkpoints, settings.methods, settings.use_cache)
        self.folder = Path(tempfile.mkdtemp(prefix="zoo-serve-"))
        (self.folder / "jobs").mkdir()
        atexit.register(self.remove_folder)
        self.models = ModelCache(settings.max_models)
        self.queue = JobQueue(settings.devices, settings.max_queue, self.models, on_finished=self._forget_old)
        self.jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def remove_folder(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def _forget_old(self, _job: Job) -> None:
        with self._lock:
            done = [j for j in self.jobs.values() if j.finished]
            for old in sorted(done, key=lambda j: j.created)[: max(0, len(done) - self.settings.keep_jobs)]:
                self.jobs.pop(old.id, None)
                remove_job(old)

    def job(self, job_id: str) -> Job | None:
        with self._lock:
            return self.jobs.get(job_id)

    def job_json(self, job: Job) -> dict[str, Any]:
        base = f"/api/jobs/{job.id}"
        runs = []
        for r_index, run in enumerate(job.runs):
            runs.append({"label": run.label, "method": run.method, "checkpoint": run.checkpoint.name if run.checkpoint else None,
                         "status": run.status, "error": run.error,
                         "progress": {"phase": run.phase, "step": run.step, "total": run.total, "network_calls": run.calls},
                         "load_seconds": round(run.load_seconds, 4), "peak_memory_bytes": run.peak_memory_bytes,
                         "results": [{"sample": r.sample, "url": f"{base}/runs/{r_index}/{r.sample}.png", "file": r.path.name,
                                      "seconds": round(r.seconds, 4), "network_calls": r.nfe} for r in run.results]})
        return {"id": job.id, "status": job.status, "queue_position": self.queue.position(job), "device": job.device or None,
                "image": {"name": job.stem, "width": job.width, "height": job.height, "url": f"{base}/image.png"},
                "mask": {"url": f"{base}/mask.png"}, "seed": job.seed, "samples": job.samples, "runs": runs, "zip": f"{base}/zip"}


def _int_field(form: Any, name: str, default: int, low: int, high: int) -> int:
    raw = form.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(str(raw).strip())
    except ValueError:
        raise UploadError(f"{name} must be a whole number, not {str(raw)[:40]!r}") from None
    if not low <= value <= high:
        raise UploadError(f"{name} must be between {low} and {high}, not {value}")
    return value


async def _read_form(request: Request, limits: Limits) -> Any:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limits.request_bytes:
        raise UploadError(f"the request is {int(declared) / 2**20:.1f} MB, over the limit of two files of {limits.max_upload_bytes / 2**20:g} MB (--max-upload-mb)", 413)
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise UploadError("send the job as multipart/form-data (fields image, mask, methods, seed, samples)")

    async def capped() -> AsyncIterator[bytes]:
        seen = 0
        async for chunk in request.stream():
            seen += len(chunk)
            if seen > limits.request_bytes:
                raise UploadError(f"the request is over the limit of two files of {limits.max_upload_bytes / 2**20:g} MB (--max-upload-mb)", 413)
            yield chunk

    try:
        return await _Parser(request.headers, capped(), max_files=2, max_fields=8, max_part_size=64 * 1024).parse()
    except MultiPartException as exc:
        raise UploadError(f"malformed form: {exc}") from None


_JOB_FORM = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["image", "mask", "methods"],
    "properties": {"image": {"type": "string", "format": "binary", "description": "PNG, JPEG, WebP, BMP, TIFF or GIF"},
                   "mask": {"type": "string", "format": "binary", "description": "same size as the image, white = hole"},
                   "methods": {"type": "string", "description": "comma-separated: METHOD or METHOD@CHECKPOINT (names from /api/methods)"},
                   "seed": {"type": "integer", "default": 0}, "samples": {"type": "integer", "default": 1, "minimum": 1, "maximum": MAX_SAMPLES}}}}}}}


def create_app(settings: ServeSettings | None = None) -> FastAPI:
    """The app for ``settings`` (ZooError when a checkpoint or method is not usable)."""
    server = Server(settings or ServeSettings())

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        server.queue.start()
        try:
            yield
        finally:
            server.queue.stop()
            server.remove_folder()

    app = FastAPI(title="zoo serve", description="Inpaint one image with several zoo methods side by side.", lifespan=lifespan,
                  docs_url=None, redoc_url=None, openapi_url="/api/openapi.json")
    app.state.server = server
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/api/methods", summary="Methods on offer and their checkpoints")
    def methods() -> dict[str, Any]:
        return {"methods": server.offer.methods_json(), "limits": {"max_upload_mb": server.settings.limits.max_upload_bytes / 2**20,
                "max_pixels": [server.settings.limits.max_width, server.settings.limits.max_height], "max_samples": MAX_SAMPLES}}

    @app.get("/api/checkpoints", summary="Offered checkpoints and which are loaded")
    def checkpoints() -> dict[str, Any]:
        loaded = {path for _, path, _ in server.models.loaded()}
        return {"checkpoints": [{"name": c.name, "method": c.method, "source": c.source, "loaded": str(c.path) in loaded} for c in server.offer.checkpoints],
                "loaded_models": [{"method": m, "checkpoint": server.offer.name_of(p), "device": d} for m, p, d in server.models.loaded()]}

    @app.post("/api/jobs", status_code=202, summary="Submit a job", openapi_extra=_JOB_FORM)
    async def submit(request: Request) -> Response:
        job_folder: Path | None = None
        form = None
        try:
            form = await _read_form(request, server.settings.limits)
            image, mask = form.get("image"), form.get("mask")
            if image is None or isinstance(image, str) or mask is None or isinstance(mask, str):
                raise UploadError("give both files: image (the picture) and mask (same size, white = hole)")
            picks = parse_methods(str(form.get("methods") or ""), server.offer)
            seed = _int_field(form, "seed", 0, 0, 2**63 - 1)
            samples = _int_field(form, "samples", 1, 1, MAX_SAMPLES)
            image_bytes, mask_bytes = await image.read(), await mask.read()
            job_id = uuid.uuid4().hex[:12]
            job_folder = server.folder / "jobs" / job_id
            stem = safe_stem(image.filename)
            width, height = await run_in_threadpool(store_inputs, image_bytes, mask_bytes, job_folder, stem, server.settings.limits)
            runs = [Run(method, ck, label) for method, ck, label in picks]
            job = Job(job_id, job_folder, stem, width, height, seed, samples, runs)
            server.queue.submit(job)
            with server._lock:
                server.jobs[job_id] = job
        except UploadError as exc:
            if job_folder is not None:
                shutil.rmtree(job_folder, ignore_errors=True)
            return _error(exc.status, str(exc))
        except QueueFull as exc:
            shutil.rmtree(job_folder, ignore_errors=True)  # type: ignore[arg-type]
            return _error(429, str(exc))
        finally:
            if form is not None:
                await form.close()
        return JSONResponse(server.job_json(job), status_code=202)

    def _job_or_404(job_id: str) -> Job:
        job = server.job(job_id)
        if job is None:
            raise _NotFound(f"no job {job_id!r} (finished jobs are kept until {server.settings.keep_jobs} newer ones have finished)")
        return job

    @app.exception_handler(_NotFound)
    async def not_found(request: Request, exc: _NotFound) -> Response:
        return _error(404, str(exc))

    @app.get("/api/jobs/{job_id}", summary="A job's status, progress and results")
    def job_status(job_id: str) -> dict[str, Any]:
        return server.job_json(_job_or_404(job_id))

    @app.post("/api/jobs/{job_id}/cancel", summary="Cancel a job")
    def cancel(job_id: str) -> dict[str, Any]:
        job = _job_or_404(job_id)
        if not job.finished:
            server.queue.cancel(job)
        return server.job_json(job)

    @app.get("/api/jobs/{job_id}/image.png", summary="The job's image (as the methods saw it, RGB)")
    def job_image(job_id: str) -> FileResponse:
        return FileResponse(_job_or_404(job_id).image_path, media_type="image/png")

    @app.get("/api/jobs/{job_id}/mask.png", summary="The job's mask (white = hole)")
    def job_mask(job_id: str) -> FileResponse:
        return FileResponse(_job_or_404(job_id).mask_path, media_type="image/png")

    @app.get("/api/jobs/{job_id}/runs/{run_index}/{sample}.png", summary="One result")
    def result(job_id: str, run_index: int, sample: int) -> FileResponse:
        job = _job_or_404(job_id)
        run = job.runs[run_index] if 0 <= run_index < len(job.runs) else None
        found = next((r for r in run.results if r.sample == sample), None) if run else None
        if found is None:
            raise _NotFound(f"job {job_id} has no result {run_index}/{sample} (yet)")
        return FileResponse(found.path, media_type="image/png", filename=f"{job.stem}-{run.label.replace('/', '_')}-s{sample}.png")  # type: ignore[union-attr]

    @app.get("/api/jobs/{job_id}/zip", summary="Image, mask, results and run.json as a zip")
    def job_zip(job_id: str) -> Response:
        job = _job_or_404(job_id)
        data = _zip(job)
        return Response(data, media_type="application/zip", headers={"Content-Disposition": f'attachment; filename="zoo-serve-{job.stem}-{job.id}.zip"'})

    return app


class _NotFound(Exception):
    pass


def _zip(job: Job) -> bytes:
    """The job's files as a zip (run.json written now, so it lists what has finished)."""
    import json

    from zoo.serve.jobs import run_info

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(job.image_path, f"images/{job.stem}.png")
        zf.write(job.mask_path, f"masks/{job.stem}.png")
        for run in job.runs:
            for r in run.results:
                zf.write(r.path, f"results/{run.label}/{r.path.name}")
        zf.writestr("run.json", json.dumps(run_info(job), indent=2))
    return buf.getvalue()
