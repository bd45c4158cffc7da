"""``zoo study``: every method under the same training budget, tuned on val, scored on test."""

from __future__ import annotations

import click


@click.command("study")
@click.option("--data", required=True, help="A folder of images (split by source image), a prepared folder, or a dataset name such as shapes.")
@click.option("--methods", default="all", show_default=True, help="'all' (every method in `zoo list`) or m1,m2; a variant METHOD:key=value[:key=value] trains the method with those config "
              "values (e.g. dit-mca:attention=self, to compare variants of one method), and /key=value samples a trained model with other "
              "values (dit-mca/guidance=2: the dit-mca model, no second training); telea, the reference, is always added.")
@click.option("--budget", "budgets", required=True, help="Training wall-clock budget per learned method, e.g. 15m, or several: 5m,15m,45m.")
@click.option("--budget-clock", type=click.Choice(["wall", "cpu"]), default="wall", show_default=True,
              help="What a budget counts: wall-clock seconds, or the CPU seconds of each training process (with OMP_NUM_THREADS=1: CPU-minutes, "
              "so methods get equal compute even when other work shares the machine).")
@click.option("--masks", default="lama-medium", show_default=True, help="Mask kinds, comma-separated (see `zoo masks list`), e.g. lama-medium,lama-thick.")
@click.option("--resolution", type=int, default=64, show_default=True, help="Training and evaluation image side in pixels.")
@click.option("--eval-count", type=int, default=200, show_default=True, help="Test pairs per mask kind (at least 20, at most the test split).")
@click.option("--val-count", type=int, default=50, show_default=True, help="Validation pairs per mask kind that choose the sampling settings (capped at the val split).")
@click.option("--preset", default="small", show_default=True, help="Preset every learned method trains at.")
@click.option("--batch-size", type=int, default=None, help="Training batch size (default: the preset's).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of training, masks and sampling.")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda[:N], mps or auto.")
@click.option("--select-metric", default="psnr", show_default=True, help="Metric that chooses the tunable sampling settings on the validation split.")
@click.option("--out", "out_dir", required=True, help="Study folder (rerun the same command to resume; finished parts are skipped).")
@click.option("--report-only", is_flag=True, help="Write the report from the parts already finished in --out; train and sample nothing "
              "(e.g. while the study still runs in another process).")
@click.option("--no-tune", is_flag=True, help="Skip the validation choice: each method samples with the first (cheapest) of its tunable settings.")
@click.option("--no-progress", is_flag=True, help="No progress bars.")
def study_cmd(data, methods, budgets, budget_clock, masks, resolution, eval_count, val_count, preset, batch_size, seed, device, select_metric, out_dir, report_only, no_tune, no_progress) -> None:
    """Train every listed method under the same wall-clock budget on the same data and seed,
    choose its sampling settings on a validation split, and report a disjoint test split:
    mean and 95 % CI per metric, the paired difference against telea, network calls and
    seconds per image (STUDY/report.md, results.json, results.csv, per_image.csv)."""
    import sys

    from tqdm.auto import tqdm

    from zoo.study import StudySettings, run_study
    from zoo.study_args import parse_budgets, parse_masks, parse_methods

    command = ["zoo", "study", "--data", data, "--methods", methods, "--budget", budgets] + (["--budget-clock", budget_clock] if budget_clock != "wall" else []) + ["--masks", masks, "--resolution", str(resolution),
               "--eval-count", str(eval_count), "--val-count", str(val_count), "--preset", preset, "--seed", str(seed), "--device", device,
               "--select-metric", select_metric, "--out", out_dir] + (["--batch-size", str(batch_size)] if batch_size else []) + (["--no-tune"] if no_tune else [])
    settings = StudySettings(data=data, methods=parse_methods(methods), budgets=parse_budgets(budgets), masks=parse_masks(masks),
                             resolution=resolution, eval_count=eval_count, val_count=val_count, preset=preset, seed=seed,
                             batch_size=batch_size, device=device, select_metric=select_metric, tune=not no_tune, budget_clock=budget_clock, report_only=report_only)
    run_study(settings, out_dir, progress=not no_progress, say=lambda line: tqdm.write(line, file=sys.stderr), command=command)


COMMANDS = [study_cmd]
