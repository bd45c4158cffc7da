"""``zoo study``: every method trained under the same wall-clock budget on the same data,
its sampling settings chosen on a validation split, scored on a disjoint test split.

Recipe (every part resumes: rerun the same command after an interruption):

1. check everything first (methods, budgets, mask kinds, the data's splits, the counts), so
   a study that cannot work is refused in one line before anything is written;
2. split DATA by source image into train / val / test (:func:`resolve_splits`); build one
   eval set per split and mask kind (``val`` with ``--val-count`` images, ``test`` with
   ``--eval-count``), each image paired with a mask drawn for the study's seed;
3. methods one after the other, ``telea`` (the reference) first: a learned method is trained
   per budget (``RUN = STUDY/runs/<method>/<budget>/``, ``--preset`` of the method, the study's
   resolution, seed and data; :class:`zoo.train.TrainOptions` ``time_budget_s``); a finished
   run is reused, an interrupted one resumes from its checkpoint;
4. per budget and mask kind, each candidate of the method's ``MethodSpec.tunable`` sampling
   settings is scored on the val eval set and the best by :data:`SELECT_METRIC` is kept (the
   test split is never looked at for this); the test eval set is then inpainted with it and
   scored (PSNR, SSIM, L1-hole, and ``swd`` / ``swd-hole`` where registered). Classical methods
   are evaluated once, with no training, and appear beside every budget;
5. each finished (method, budget, mask kind) is written to ``STUDY/results/<label>/<mask>.json``
   and never redone; then ``report.md``, ``results.json``, ``results.csv``, ``per_image.csv``,
   ``quality_vs_budget.png`` (several budgets) and one compare report per mask kind
   (``eval/test-<mask>/report.md``, ``grid.png``: zoo.report) are written from those files.

Statistics: per-image metrics get a Student-t 95 % interval of the mean
(:func:`zoo.metrics.scoring.mean_ci`). The difference against ``telea`` is *paired*: both
methods fill the identical test pairs, so the per-image differences ``method - telea`` are
computed and given the same t-interval (a paired t-interval; it is narrower than comparing
two independent intervals because the image-to-image spread cancels). Set-level metrics (no
per-image values) show the difference of the two values without an interval.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from zoo.errors import ZooError, choices_error
from zoo.fsutil import write_text
from zoo.data.splits import SPLIT_SHARES, SPLITS, resolve_splits, write_split_view
from zoo.study_args import check_sample_variant, run_label, sample_variant, split_variant
from zoo.study_report import budget_label, write_results

SELECT_METRIC = "psnr"  # chooses the tunable sampling settings on the validation split
BASE_METRICS = ("psnr", "ssim", "l1-hole")
SET_METRICS = ("swd", "swd-hole")  # reported when a plugin registers them
MIN_TEST = 20  # fewer test images cannot give a useful interval
MIN_VAL = 5
VIEW_DIR = "data"  # STUDY/data: the split lists of a plain folder (links to its images)
SETTINGS_FILE = "study.json"


# --------------------------------------------------------------------------------------
# 1. the request
# --------------------------------------------------------------------------------------
@dataclass
class StudySettings:
    """What ``zoo study`` is asked; :func:`check_settings` fills the derived fields."""

    data: str
    methods: list[str]
    budgets: list[float]  # seconds of training per learned method
    masks: list[str]
    resolution: int = 64
    eval_count: int = 200
    val_count: int = 50
    preset: str = "small"
    seed: int = 0
    batch_size: int | None = None  # training batch (None: the preset's)
    sample_batch: int = 8
    device: str = "cpu"
    select_metric: str = SELECT_METRIC
    min_test: int = MIN_TEST
    bootstrap: int = 0  # resamples for an interval of set-level metrics; 0: none (a percentile bootstrap of swd is biased upward)
    budget_clock: str = "wall"  # what a budget counts: wall-clock seconds, or cpu seconds of the training process (zoo.train.budget)
    report_only: bool = False  # write the report from the finished parts only: train and sample nothing
    tune: bool = True  # False: each method's first tunable candidate (its cheapest), no validation sampling
    splits: dict[str, str] = field(default_factory=dict)  # split -> what open_data reads
    split_kind: str = ""
    split_sizes: dict[str, int] = field(default_factory=dict)

    def key(self) -> dict[str, Any]:
        """The settings every result of a study folder depends on (methods, budgets and mask
        kinds may grow between runs; these may not change)."""
        return {"data": _resolved(self.data), "resolution": self.resolution, "eval_count": self.eval_count,
                "val_count": self.val_count, "preset": self.preset, "seed": self.seed, "batch_size": self.batch_size,
                "select_metric": self.select_metric, "tune": self.tune,
                **({"budget_clock": self.budget_clock} if self.budget_clock != "wall" else {})}


def _resolved(data: str) -> str:
    return str(Path(data).resolve()) if Path(data).is_dir() else data


def check_settings(s: StudySettings) -> StudySettings:
    """Refuse, in one line, a study that cannot work; fill the split fields. Writes nothing."""
    from zoo.plugins import get_manager

    if s.resolution < 16:
        raise ZooError(f"--resolution {s.resolution}: must be at least 16 pixels")
    if s.eval_count < s.min_test:
        raise ZooError(f"--eval-count {s.eval_count}: a study needs at least {s.min_test} test images for a useful interval")
    if s.val_count < MIN_VAL:
        raise ZooError(f"--val-count {s.val_count}: at least {MIN_VAL} validation images are needed to choose sampling settings")
    if s.batch_size is not None and s.batch_size < 1:
        raise ZooError("--batch-size must be at least 1")
    manager = get_manager()
    for label in s.methods:
        name, overrides = split_variant(label)
        overrides = {**overrides, **sample_variant(label)}
        spec = manager.method(name)
        if spec.needs_training and s.preset not in spec.presets:
            raise ZooError(f"method {name!r} has no preset {s.preset!r}; its presets: {', '.join(spec.presets)} (choose one with --preset, or leave {name} out)")
        if overrides:
            from zoo.config import resolve_config

            preset, base = (s.preset if spec.needs_training else None), {**_resolution(spec, s), **split_variant(label)[1]}
            try:  # an unknown key or a bad value: one line now, before anything is trained
                resolve_config(spec, preset, {**base, **overrides})
            except ZooError as exc:
                raise ZooError(f"--methods {label!r}: {str(exc).splitlines()[0]}") from None
            if spec.needs_training and sample_variant(label):
                check_sample_variant(label, spec, lambda values: resolve_config(spec, preset, {**base, **values})[0])
    from zoo.metrics import metrics

    if s.select_metric not in metrics():
        raise choices_error("metric", s.select_metric, metrics())
    kind, sizes, _ = resolve_splits(s.data, s.resolution, s.seed)
    total = sum(sizes.values())
    if sizes["train"] < 1 or sizes["val"] < MIN_VAL or sizes["test"] < s.min_test:
        if kind == "plain":
            need = math.ceil(s.min_test / SPLIT_SHARES["test"])
            raise ZooError(f"--data {s.data} has {total} images, too few for a study: split 70/15/15 by source image it gives "
                           f"{sizes['test']} test images, and at least {s.min_test} are needed ({need}+ images in the folder)")
        raise ZooError(f"--data {s.data}: its splits hold train {sizes['train']}, val {sizes['val']}, test {sizes['test']} images; "
                       f"a study needs at least 1 / {MIN_VAL} / {s.min_test}")
    if s.eval_count > sizes["test"]:
        raise ZooError(f"--eval-count {s.eval_count} is larger than the test split of {s.data} ({sizes['test']} images); give at most {sizes['test']}")
    s.val_count = min(s.val_count, sizes["val"])
    s.split_kind, s.split_sizes = kind, sizes
    return s


# --------------------------------------------------------------------------------------
# 3. training under a budget
# --------------------------------------------------------------------------------------
def run_dir(out: Path, method: str, seconds: float) -> Path:
    """STUDY/runs/<method or variant label as a folder name>/<budget>."""
    from zoo.report import safe_label

    return out / "runs" / safe_label(run_label(method)) / budget_label(seconds)


def _resolution(spec: Any, s: StudySettings) -> dict[str, str]:
    import dataclasses

    return {"resolution": str(s.resolution)} if "resolution" in {f.name for f in dataclasses.fields(spec.config)} else {}


def train_command(s: StudySettings, method: str, seconds: float, run: Path) -> list[str]:
    name, variant = split_variant(method)
    cmd = ["zoo", "train", name, "--data", s.splits["train"], "--preset", s.preset, "--set", f"resolution={s.resolution}",
           *(x for k, v in variant.items() for x in ("--set", f"{k}={v}")),
           "--time-budget", budget_label(seconds), "--seed", str(s.seed), "--device", s.device, "--out", str(run)]
    cmd += ["--budget-clock", s.budget_clock] if s.budget_clock != "wall" else []
    return cmd + (["--batch-size", str(s.batch_size)] if s.batch_size else [])


def train_one(s: StudySettings, method: str, seconds: float, run: Path, progress: bool, say: Callable[[str], None]) -> tuple[Path, dict[str, Any]]:
    """Train ``method`` for ``seconds`` into ``run`` (reused when finished, resumed when
    interrupted after a checkpoint); returns the checkpoint and what the training did."""
    from zoo.checkpoint import read_meta
    from zoo.plugins import get_manager
    from zoo.runner import MODEL_FILE, train
    from zoo.train import TrainOptions
    from zoo.train.state import run_checkpoints

    model = run / MODEL_FILE
    info_file = run / "study.train.json"
    if model.is_file():
        info = _read_json(info_file) or {}
        return model, {**info, "how": "cached"}
    resume = None
    if run.exists():
        if run_checkpoints(run):  # a multi-stage run keeps them in RUN/<stage>/checkpoints
            resume = str(run)
        else:
            shutil.rmtree(run)  # interrupted before its first checkpoint: start again
    options = TrainOptions(device=s.device, progress=progress, tensorboard=False, resume=resume, time_budget_s=seconds,
                           budget_clock=s.budget_clock)
    cmd = train_command(s, method, seconds, run)
    say(f"train {method} ({s.preset}, {budget_label(seconds)} budget, {s.resolution} px)" + (" — resuming" if resume else ""))
    t = time.perf_counter()
    name, variant = split_variant(method)
    if resume:
        path = train(name, None, out_dir=run, options=options, command=cmd + ["--resume", str(run)])
    else:
        overrides = {**_resolution(get_manager().method(name), s), **variant}
        path = train(name, s.splits["train"], preset=s.preset, overrides=overrides, batch_size=s.batch_size, seed=s.seed,
                     out_dir=run, options=options, command=cmd)
    meta = read_meta(path)
    run_info = _read_json(run / "run.json") or {}
    info = {"budget_s": seconds, "seconds": round(time.perf_counter() - t, 1), "step": meta.step, "preset": s.preset,
            "batch_size": run_info.get("batch_size"), "resumed": bool(resume),
            **{k: v for k, v in run_info.items() if "budget" in k or "stage" in k}}
    write_text(info_file, json.dumps(info, indent=1, default=str))
    return path, {**info, "how": "resumed" if resume else "trained"}


# --------------------------------------------------------------------------------------
# 4. validation choice, test scores
# --------------------------------------------------------------------------------------
def metric_names() -> list[str]:
    """The study's metrics: the pixel metrics, plus ``swd`` / ``swd-hole`` where registered."""
    from zoo.metrics import metrics

    have = metrics()
    return list(BASE_METRICS) + [m for m in SET_METRICS if m in have]


def eval_set(s: StudySettings, out: Path, split: str, mask: str, progress: bool):
    """The eval set of ``split`` with ``mask`` masks: built once into STUDY/evalsets/."""
    from zoo.data.evalset import MANIFEST, build_eval_set, load_eval_set

    root = out / "evalsets" / f"{split}-{mask}"
    if (root / MANIFEST).is_file():
        return load_eval_set(root)
    shutil.rmtree(root, ignore_errors=True)  # an interrupted build
    count = s.eval_count if split == "test" else s.val_count
    return build_eval_set(data=s.splits[split], masks=mask, count=count, seed=s.seed, out_dir=root, resolution=s.resolution,
                          progress=progress, split=split)


def candidates(method: str) -> list[dict[str, str]]:
    """The method's tunable sampling settings as ``--set`` strings ([{}]: nothing to tune)."""
    from zoo.plugins import get_manager

    fixed = sample_variant(method)  # a sampling variant's own values are not tuned
    found = []
    for c in get_manager().method(split_variant(method)[0]).tunable:
        cand = {k: _as_set_value(v) for k, v in c.items() if k not in fixed}
        if cand not in found:
            found.append(cand)
    found = [c for c in found if c]
    return found or [{}]


def _as_set_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def entry_label(method: str, seconds: float | None, overrides: dict[str, str]) -> str:
    base = method if seconds is None else f"{method}@{budget_label(seconds)}"
    return base + (f"[{','.join(f'{k}={v}' for k, v in sorted(overrides.items()))}]" if overrides else "")


def evaluate(s: StudySettings, entry: Any, ev: Any, root: Path, metric_list: list[Any], progress: bool) -> dict[str, Any]:
    """Inpaint and score one entry on one eval set (``root``: predictions/, scores/);
    resumable through zoo.compare. Returns scores, network calls and seconds per image."""
    from zoo.compare import sample_entry, score_entry
    from zoo.report import PRED_DIR, safe_label

    pred_dir = root / PRED_DIR / safe_label(entry.label)
    before = set((_read_json(pred_dir / "progress.json") or {}).get("batches", {}))  # batches already on disk
    t, cpu = time.perf_counter(), time.process_time()
    method_scores, how = sample_entry(entry, ev, pred_dir, s.seed, s.sample_batch, s.device, progress)
    elapsed, cpu = time.perf_counter() - t, time.process_time() - cpu
    state = _read_json(pred_dir / "progress.json") or {"batches": {}}
    batches = state.get("batches", {})
    new_images = sum(b["n"] for k, b in batches.items() if k not in before) if how != "cached" else 0
    nfe_n = [(b["info"]["nfe"], b["n"]) for b in batches.values() if isinstance(b.get("info", {}).get("nfe"), (int, float))]
    score, _ = score_entry(entry, ev, pred_dir, metric_list, root / "scores" / f"{safe_label(entry.label)}.json",
                           device=s.device, bootstrap=s.bootstrap, seed=s.seed, progress=progress)
    return {"score": score, "how": how, "method_scores": method_scores,
            "seconds_per_image": round(elapsed / new_images, 4) if new_images else None,
            "cpu_seconds_per_image": round(cpu / new_images, 4) if new_images else None,
            "nfe": sum(v * n for v, n in nfe_n) / sum(n for _, n in nfe_n) if nfe_n else None}


def choose_settings(s: StudySettings, method: str, seconds: float | None, checkpoint: Path | None, out: Path, mask: str,
                    progress: bool) -> dict[str, Any]:
    """Score every candidate on the val eval set by ``select_metric``; keep the best (the first
    listed wins a tie). Candidates the trained config rejects are skipped and named."""
    from zoo.compare import _check_overrides
    from zoo.metrics import metric

    cands = candidates(method)
    if cands == [{}] or not s.tune:
        return {"chosen": cands[0], "tried": [], "metric": s.select_metric, "note": "" if cands == [{}] else "not tuned: the first candidate"}
    ev = eval_set(s, out, "val", mask, progress)
    spec = metric(s.select_metric)
    tried = []
    for c in cands:
        entry = _entry(method, seconds, checkpoint, c)
        try:
            _check_overrides(entry, c)
        except ZooError as exc:
            tried.append({"settings": c, "value": None, "skipped": str(exc)})
            continue
        r = evaluate(s, entry, ev, out / "eval" / f"val-{mask}", [spec], progress)
        m = r["score"].metrics[spec.name]
        tried.append({"settings": c, "value": m["value"], "ci_low": m["ci_low"], "ci_high": m["ci_high"], "nfe": r["nfe"]})
    scored = [t for t in tried if t["value"] is not None]
    if not scored:
        raise ZooError(f"{method}: none of its tunable sampling settings works with the trained config: {tried[0].get('skipped')}")
    best = (max if spec.higher_is_better else min)(scored, key=lambda t: t["value"])
    return {"chosen": best["settings"], "tried": tried, "metric": s.select_metric, "val_count": len(ev)}


def _entry(method: str, seconds: float | None, checkpoint: Path | None, settings: dict[str, str]):
    """The compare entry of a (variant of a) method with sampling ``settings``: a learned
    variant's overrides are in its checkpoint; a classical variant samples with them."""
    from zoo.compare import Entry

    name, variant = split_variant(method)
    fixed = sample_variant(method)
    overrides = {**fixed, **settings} if checkpoint is not None else {**variant, **fixed, **settings}
    return Entry(entry_label(method, seconds, settings), name, checkpoint, overrides)


def result_file(out: Path, method: str, seconds: float | None, mask: str) -> Path:
    from zoo.report import safe_label

    return out / "results" / safe_label(entry_label(method, seconds, {})) / f"{mask}.json"


def run_cell(s: StudySettings, method: str, seconds: float | None, checkpoint: Path | None, train_info: dict[str, Any], out: Path,
             mask: str, progress: bool) -> tuple[dict[str, Any], str]:
    """One (method, budget, mask kind): choose on val, score on test; written once."""
    from zoo.fsutil import file_sha256
    from zoo.metrics import parse_metric_list

    path = result_file(out, method, seconds, mask)
    key = {**s.key(), "method": method, "budget_s": seconds, "mask": mask, "metrics": metric_names(),
           "checkpoint_sha256": file_sha256(checkpoint) if checkpoint else None}
    done = _read_json(path)
    if done is not None and done.get("key") == key:
        return done, "cached"
    tuning = choose_settings(s, method, seconds, checkpoint, out, mask, progress)
    entry = _entry(method, seconds, checkpoint, tuning["chosen"])
    ev = eval_set(s, out, "test", mask, progress)
    r = evaluate(s, entry, ev, out / "eval" / f"test-{mask}", parse_metric_list(metric_names()), progress)
    record = {"key": key, "method": method, "budget_s": seconds, "budget": budget_label(seconds) if seconds else None, "mask": mask,
              "label": entry.label, "settings": tuning["chosen"], "tuning": tuning, "train": {k: v for k, v in train_info.items() if k != "how"},
              "nfe": r["nfe"], "seconds_per_image": r["seconds_per_image"],
              "cpu_seconds_per_image": r["cpu_seconds_per_image"], "method_scores": r["method_scores"],
              "score": r["score"].to_dict(), "sources": [it.get("source") for it in ev.items]}
    write_text(path, json.dumps(record, indent=1, default=float))
    return record, "computed"


def finished_cell(s: StudySettings, out: Path, method: str, seconds: float | None, mask: str) -> dict[str, Any] | None:
    """A cell's result file if it was written for these settings (and, for a learned method,
    for the checkpoint now in its run folder); else None. Reads only."""
    from zoo.fsutil import file_sha256
    from zoo.runner import MODEL_FILE

    done = _read_json(result_file(out, method, seconds, mask))
    if done is None:
        return None
    key = dict(done.get("key") or {})
    sha = key.pop("checkpoint_sha256", None)
    if key != {**s.key(), "method": method, "budget_s": seconds, "mask": mask, "metrics": metric_names()}:
        return None
    if seconds is not None:
        model = run_dir(out, method, seconds) / MODEL_FILE
        if not model.is_file() or file_sha256(model) != sha:
            return None
    return done


# --------------------------------------------------------------------------------------
# the whole study
# --------------------------------------------------------------------------------------
def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError):
        return None


def prepare_folder(s: StudySettings, out: Path) -> None:
    """Check ``out`` against an earlier study in it, write ``study.json`` and the split view."""
    from zoo.fsutil import check_output_dir

    check_output_dir(out, {"--data": s.data if Path(s.data).is_dir() else None}, overwrite=True)
    previous = _read_json(out / SETTINGS_FILE)
    if previous is not None and previous.get("key") != s.key():
        have, want = previous.get("key", {}), s.key()
        diff = next(k for k in [*want, *have] if have.get(k) != want.get(k))  # a key one side lacks counts too
        raise ZooError(f"--out {out} holds a study with {diff}={have.get(diff)!r} (asked: {want.get(diff)!r}); use another --out or the same settings")
    if out.exists() and previous is None and any(not p.name.startswith(".") for p in out.iterdir()):  # hidden: e.g. zoo demo's mark
        raise ZooError(f"--out {out} exists, is not empty and holds no study; choose a new folder")
    out.mkdir(parents=True, exist_ok=True)
    kind, _, split = resolve_splits(s.data, s.resolution, s.seed)
    if kind == "plain":
        view = write_split_view(Path(s.data), out / VIEW_DIR, split)  # type: ignore[arg-type]
        s.splits = {sp: view for sp in SPLITS}
    else:
        s.splits = dict(split)  # type: ignore[arg-type]
    write_text(out / SETTINGS_FILE, json.dumps({"key": s.key(), "split_kind": s.split_kind, "split_sizes": s.split_sizes,
                                                "splits": s.splits}, indent=1))


def run_study(s: StudySettings, out_dir: str | Path, progress: bool = True, say: Callable[[str], None] = print,
              command: list[str] | None = None) -> dict[str, Any]:
    """The recipe of the module docstring; returns the results document (also results.json)."""
    from zoo.fsutil import removed_on_failure

    check_settings(s)
    out = Path(out_dir)
    if (out / SETTINGS_FILE).is_file():  # an earlier study: the folder is what a rerun resumes from, whatever fails
        return _run(s, out, progress, say, command)
    # a new study: a failure (not Ctrl-C) before any run or result exists leaves nothing behind
    with removed_on_failure(out, keep=lambda: any(p.is_file() for d in ("runs", "results") for p in (out / d).rglob("*"))):
        return _run(s, out, progress, say, command)


def _run(s: StudySettings, out: Path, progress: bool, say: Callable[[str], None], command: list[str] | None) -> dict[str, Any]:
    from tqdm.auto import tqdm

    from zoo.plugins import get_manager

    prepare_folder(s, out)
    manager = get_manager()
    learned = [m for m in s.methods if manager.method(split_variant(m)[0]).needs_training]
    classical = [m for m in s.methods if not manager.method(split_variant(m)[0]).needs_training]
    tasks = [(m, None) for m in classical] + [(m, b) for m in learned for b in s.budgets]
    say(f"study: {len(classical)} classical and {len(learned)} learned method(s) x {len(s.budgets)} budget(s) "
        f"({', '.join(budget_label(b) for b in s.budgets)}), masks {', '.join(s.masks)}, {s.resolution} px, "
        f"{s.eval_count} test / {s.val_count} val images ({s.split_kind} split of {s.data})")
    records: list[dict[str, Any]] = []
    status: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    bar = tqdm(tasks, desc="study", disable=not progress or s.report_only, dynamic_ncols=True)
    for method, seconds in bar:
        bar.set_postfix_str(entry_label(method, seconds, {}))
        if s.report_only:
            found = [r for r in (finished_cell(s, out, method, seconds, mk) for mk in s.masks) if r is not None]
            records += found
            state = "finished" if len(found) == len(s.masks) else f"{len(found)} of {len(s.masks)} mask kinds" if found else "not finished"
            status.append({"label": entry_label(method, seconds, {}), "train": None, "eval": state})
            continue
        ckpt, info = None, {}
        if seconds is not None:
            ckpt, info = train_one(s, method, seconds, run_dir(out, method, seconds), progress, say)
        hows = []
        for mk in s.masks:
            rec, how = run_cell(s, method, seconds, ckpt, info, out, mk, progress)
            records.append(rec)
            hows.append(how)
        status.append({"label": entry_label(method, seconds, {}), "train": info.get("how"), "eval": "cached" if set(hows) == {"cached"} else "computed"})
    bar.close()
    if s.report_only and not records:
        raise ZooError(f"--report-only: {out} holds no finished part of this study yet (nothing to report)")
    doc = write_results(s, out, records, status, metric_names(), command, round(time.perf_counter() - t0, 1))
    say(f"wrote {out}/report.md, results.json, results.csv, per_image.csv" + (", quality_vs_budget.png" if len(s.budgets) > 1 else ""))
    return doc
