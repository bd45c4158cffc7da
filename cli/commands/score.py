"""``zoo score --pred DIR --gt DIR [--masks DIR] --metric LIST`` and
``zoo score METHOD [--checkpoint CKPT] --data DATA --masks KIND|DIR --metric LIST``."""

from __future__ import annotations

import click

from zoo_cli.commands.compare import warn_all
from zoo_cli.options import eval_options


def print_score(score, method_scores: dict[str, float] | None = None) -> None:
    from zoo.metrics.scoring import bin_order
    from zoo.report import _cell, _fmt
    from zoo_cli.output import print_table

    rows = []
    for name, m in score.metrics.items():
        arrow = "higher" if m["higher_is_better"] else "lower"
        ci = "n/a" if m.get("ci_low") is None else f"[{_fmt(m['ci_low'])}, {_fmt(m['ci_high'])}]"
        bad = f" ({m['non_finite']} NaN/inf left out)" if m.get("non_finite") else ""
        rows.append([name, _fmt(m["value"]) + bad, ci, m["n"], f"{arrow} is better"])
    for name, v in (method_scores or {}).items():
        rows.append([name, _fmt(v), "n/a", len(score.names), "method's own (zoo_score)"])
    print_table(rows, ["metric", "value", "95% CI", "n", ""])
    detail = {name: m["detail"] for name, m in score.metrics.items() if m.get("detail")}
    if detail:
        click.echo("\nper pyramid level (the value is their mean):")
        labels = list(dict.fromkeys(k for d in detail.values() for k in d))
        print_table([[name] + [_fmt(d.get(k)) for k in labels] for name, d in detail.items()], ["metric"] + labels)
    bins = bin_order(score.bins)
    if bins:
        click.echo("\nper hole-ratio bin (value [95% CI], n):")
        table = []
        for name, m in score.metrics.items():
            table.append([name] + [f"{_cell(m['bins'][b])} n={m['bins'][b]['n']}" if b in m["bins"] else "n/a" for b in bins])
        print_table(table, ["metric"] + bins)


@click.command("score")
@click.argument("method", required=False)
@click.option("--pred", default=None, help="Folder of predictions (names match --gt).")
@click.option("--gt", default=None, help="Folder of ground-truth images.")
@click.option("--masks", default=None, help="--pred/--gt: folder of masks (white = hole). METHOD: mask kind or folder.")
@click.option("--metric", "metric_list", default=None, help="Comma-separated metrics, e.g. psnr,ssim,lpips,fid.")
@click.option("--checkpoint", default=None, help="METHOD: its zoo checkpoint (classical methods need none).")
@click.option("--data", default=None, help="METHOD: dataset name or image folder for the eval set.")
@click.option("--out", "out_dir", default=None, help="METHOD: folder for the eval set and predictions (default runs/score-METHOD).")
@click.option("--set", "set_items", multiple=True, metavar="KEY=VALUE", help="METHOD: sampling-time config override (repeatable), e.g. sampling=fast.")
@eval_options
@click.option("--json", "as_json", is_flag=True, help="Print the scores as JSON.")
@click.option("--list-metrics", is_flag=True, help="List the registered metrics and exit.")
def score_cmd(method, pred, gt, masks, metric_list, checkpoint, data, out_dir, set_items, count, size, seed, batch_size, fid_weights, fid_layer, bootstrap, device, as_json, list_metrics) -> None:
    """Score predictions made anywhere (--pred/--gt), or sample METHOD on an eval set and score it."""
    from pathlib import Path

    from zoo.errors import ZooError
    from zoo.metrics import metrics, parse_metric_list
    from zoo_cli.output import print_json, print_table

    if list_metrics:
        found = metrics()
        if as_json:
            print_json([{"name": m.name, "description": m.description, "higher_is_better": m.higher_is_better, "per_image": m.per_image} for m in found.values()])
        else:
            print_table([[m.name, "higher" if m.higher_is_better else "lower", "per image" if m.per_image else "distribution", m.description] for m in found.values()],
                        ["metric", "better", "kind", "description"])
        return
    if metric_list is None:
        raise ZooError(f"--metric is required; valid choices: {', '.join(sorted(metrics()))}")
    specs = parse_metric_list(metric_list)
    method_scores: dict[str, float] = {}
    if method is None:
        if pred is None or gt is None:
            raise ZooError("give --pred DIR and --gt DIR (predictions made anywhere), or METHOD with --data and --masks")
        if set_items:
            raise ZooError("--set changes how METHOD samples; it has no meaning with --pred/--gt")
        for flag, value in (("--pred", pred), ("--gt", gt), ("--masks", masks)):
            if value is not None and not Path(value).is_dir():
                raise ZooError(f"{flag} {value}: folder does not exist")
        from zoo.metrics.scoring import score_folders

        score = score_folders(pred, gt, specs, masks, device=device, fid_weights=fid_weights, fid_layer=fid_layer,
                              bootstrap=bootstrap, batch_size=batch_size, seed=seed)
    else:
        if pred is not None or gt is not None:
            raise ZooError("--pred/--gt score existing predictions; with METHOD give --data and --masks instead")
        if masks is None:
            raise ZooError("zoo score METHOD needs --masks KIND|DIR (and --data DATA)")
        from zoo.compare import resolve_entries, run_compare
        from zoo.config import parse_set_options

        overrides = {method: parse_set_options(set_items)} if set_items else None
        if checkpoint is not None:
            entry = resolve_entries([], [checkpoint], overrides)[0]
            if entry.method != method:
                raise ZooError(f"{checkpoint} is a checkpoint of method {entry.method!r}, not {method!r}")
        else:
            from zoo.plugins import get_manager

            if get_manager().method(method).needs_training:
                raise ZooError(f"method {method!r} needs a checkpoint: pass --checkpoint CKPT")
            entry = resolve_entries([method], [], overrides)[0]
        res = run_compare([entry], specs, out_dir or f"runs/score-{method}", data, masks, count=count, size=size, seed=seed,
                          batch_size=batch_size, device=device, fid_weights=fid_weights, fid_layer=fid_layer,
                          bootstrap=bootstrap, write_report=False)
        score = res.entries[0].score
        method_scores = {f"{entry.method}/{k}": v for k, v in res.entries[0].method_scores.items()}
    warn_all(score.warnings)
    if as_json:
        out = score.to_dict()
        out["method_scores"] = method_scores
        print_json(out)
        return
    print_score(score, method_scores)


COMMANDS = [score_cmd]
