"""The run folder of ``zoo train --out``: what may be written into, and ``--overwrite``."""

from __future__ import annotations

import shutil
from pathlib import Path

from zoo.errors import ZooError
from zoo.fsutil import check_apart
from zoo.train.launch import RESULTS, SPEC_FILE

RUN_FILE = "run.json"


def check_run_dir(out_dir: str | Path, data: str | None, init: str | None = None, overwrite: bool = False, existing: bool = True) -> Path:
    """``zoo train --out``: never a file, never the training data or an ``--init`` checkpoint
    (nor inside or around them: sample grids would become training data); an existing
    folder that is not empty must hold a zoo run (``run.json``) and needs ``overwrite``
    (then :func:`zoo.runner.train` removes that run whole, checkpoints too) -- continuing it is
    ``--resume``. ``existing=False`` skips the last rule (processes other than 0 of a
    launcher, which may find process 0's files)."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ZooError(f"--out {out}: an existing file, not a folder; give a folder path for the run")
    data_dir = data if data and Path(str(data)).is_dir() else None
    check_apart(out, {"--data": data_dir, "--init": init}, "--out")
    if not existing or not out.is_dir() or not [c for c in out.iterdir() if c.name not in (SPEC_FILE, RESULTS)]:
        return out  # new, empty, or only the launch files of a --devices run that never started
    if not (out / RUN_FILE).is_file():
        raise ZooError(f"--out {out} exists and holds files that are not a zoo run's (no {RUN_FILE}); choose a new folder")
    if not overwrite:
        raise ZooError(f"--out {out} holds a run already; continue it with --resume {out}, or pass --overwrite to replace it (its checkpoints too)")
    return out


def clear_run_dir(out_dir: Path) -> None:
    """Remove everything of an old run in ``out_dir`` (``--overwrite``), except what the
    launcher of this run wrote there (``launch.json``, ``.launch/``)."""
    for child in out_dir.iterdir():
        if child.name in (SPEC_FILE, RESULTS):
            continue
        shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
