"""benchmarks/study/paired.py: an ablation's arms against its default, from per_image.csv."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _module():
    spec = importlib.util.spec_from_file_location("study_paired", ROOT / "benchmarks" / "study" / "paired.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _rows():
    rows = []
    for i in range(6):
        source = f"images/test/photo{i % 3}__c{i:02d}"
        for method, budget, psnr in (("a", "5m", 20.0 + i), ("b", "5m", 21.0 + i + (i % 3 == 0)), ("telea", "", 30.0)):
            rows.append({"method": method, "budget": budget, "mask": "lama-medium", "image": f"{i:06d}", "source": source,
                         "hole_bin": "0-10%", "psnr": str(psnr), "ssim": "0.5"})
    return rows


def test_the_difference_is_the_mean_of_per_image_differences_with_a_by_photograph_interval():
    text = _module().tables(_rows(), "a", ["psnr"])
    cells = {line.split(" | ")[0][2:]: [c.strip(" |") for c in line.split(" | ")[1:]] for line in text.splitlines() if line.startswith("| ")}
    assert cells["a@5m"][0] == "22.50"
    b = cells["b@5m"]  # differences 2, 1, 1, 2, 1, 1: mean 4/3
    assert b[0] == "23.83" and b[1].startswith("+1.33 [") and b[2].startswith("+1.33 [")
    assert cells["telea"][1].startswith("+7.50")  # a row without a budget is compared at every budget
    # photo0 holds both differences of 2: the by-photograph interval is wider than the per-image one
    width = [float(x.split(", ")[1][:-1]) - float(x.split("[")[1].split(",")[0]) for x in b[1:]]
    assert width[1] > width[0] > 0


def test_an_unknown_reference_is_one_line(tmp_path, monkeypatch, capsys):
    import csv
    import sys

    path = tmp_path / "per_image.csv"
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(_rows()[0]))
        w.writeheader()
        w.writerows(_rows())
    monkeypatch.setattr(sys, "argv", ["paired.py", str(path), "--reference", "nosuch"])
    with pytest.raises(SystemExit) as exc:
        _module().main()
    assert str(exc.value) == f"--reference 'nosuch': no such method in {path}; valid choices: a, b, telea"


def test_an_unknown_metric_is_one_line(tmp_path, monkeypatch):
    import csv
    import sys

    path = tmp_path / "per_image.csv"
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(_rows()[0]))
        w.writeheader()
        w.writerows(_rows())
    monkeypatch.setattr(sys, "argv", ["paired.py", str(path), "--reference", "a", "--metric", "psnr,nosuch"])
    with pytest.raises(SystemExit) as exc:
        _module().main()
    assert str(exc.value) == f"--metric 'psnr,nosuch': nosuch is not a column of {path}; valid choices: psnr, ssim"


def test_paired_cell_gives_both_intervals_and_none_by_photograph_for_one_photograph():
    cell = _module().paired_cell
    values, reference = [21.0, 22.0, 22.0, 23.0], [20.0, 20.0, 21.0, 21.0]  # differences 1, 2, 1, 2
    two = cell(values, reference, ["images/val/p0__c00", "images/val/p0__c01", "images/val/p1__c00", "images/val/p1__c01"])
    assert two.startswith("+1.50 [") and "per image; +1.50 [" in two and two.endswith("by photograph (2)")
    one = cell(values, reference, ["images/val/p0__c0%d" % i for i in range(4)])
    assert "no interval (one photograph)" in one and one.endswith("(1)")


def test_write_rows_writes_the_csv_whole_and_leaves_no_temporary(tmp_path):
    out = tmp_path / "sub" / "rows.csv"
    _module().write_rows(out, [{"image": "000000", "psnr-hole": 20.5}, {"image": "000001", "psnr-hole": 21.0}])
    assert out.read_text().splitlines() == ["image,psnr-hole", "000000,20.5", "000001,21.0"]
    assert [p.name for p in out.parent.iterdir()] == ["rows.csv"]


@pytest.mark.parametrize("script, args, message", [
    ("dip_stage2.py", ["STUDY", "--checkpoint", "x", "--dip-label", "y", "--t0", "a,b", "--out", "o.csv"],
     "--t0 'a,b': give comma-separated integers, e.g. 25,50,100"),
    ("dip_stage2.py", ["STUDY", "--checkpoint", "x", "--dip-label", "y", "--out", "o.csv"],
     "no eval set STUDY/evalsets/test-lama-medium; valid: none (not a study folder)"),
    ("tokenizer_ceiling.py", ["STUDY", "--out", "o.csv", "nosuch.safetensors"], "checkpoint not found: nosuch.safetensors"),
    ("tokenizer_ceiling.py", ["STUDY", "--out", "o.csv", "ckpt.safetensors"],
     "no eval set STUDY/evalsets/val-lama-medium; valid: none (not a study folder)"),
    ("valspread-2026-12-07/per_image.py", ["STUDY"],
     "no eval set STUDY/work/val-lama-medium; run benchmarks/study/valspread-2026-12-07/run.sh first"),
])
def test_the_diagnostic_scripts_refuse_bad_input_in_one_line(tmp_path, script, args, message):
    import subprocess
    import sys

    (tmp_path / "ckpt.safetensors").write_bytes(b"")
    res = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "study" / script), *[a.replace("STUDY", str(tmp_path / "s")) for a in args]],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert res.returncode == 1 and res.stderr.strip() == message.replace("STUDY", str(tmp_path / "s"))
    assert not (tmp_path / "o.csv").exists()


def test_valspread_per_image_refuses_a_run_without_per_image_hole_psnr(tmp_path):
    """A compare run scored before run.sh asked for psnr-hole: one line saying to rerun."""
    import json
    import subprocess
    import sys

    ev = tmp_path / "work" / "val-lama-medium"
    ev.mkdir(parents=True)
    (ev / "manifest.json").write_text(json.dumps({"items": [{"name": "000000", "source": "images/val/p__c00"}]}))
    scores = tmp_path / "work" / "dip-alone-100" / "scores"
    scores.mkdir(parents=True)
    (scores / "x.json").write_text(json.dumps({"score": {"per_image": {"names": ["000000"], "psnr": [30.0]}}}))
    res = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "study" / "valspread-2026-12-07" / "per_image.py"), str(tmp_path)],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 1
    assert res.stderr.strip() == f"{scores / 'x.json'}: no per-image psnr-hole; rerun run.sh (it scores psnr,psnr-hole from the cached predictions)"
    assert not (tmp_path / "per_image.csv").exists()
