"""The ``metric`` part of a scaffold: a per-image hole metric (gradient error inside the hole
against the ground truth) and its tests, which show it tells a good fill from a bad one."""

from __future__ import annotations


#: What hooks.py imports from zoo for this part.
ZOO_IMPORTS = ("MetricSpec", "hookimpl")


def hook_imports(n: dict[str, str]) -> list[str]:
    """hooks.py's imports from the package itself: none (the metric's code loads on first use)."""
    return []


def hooks(n: dict[str, str]) -> str:
    pkg = n["package"]
    return f'''def grad_error_hole(pred, gt, mask):
    """The metric's function, imported on first use (`zoo list` and `zoo plugins` import no torch)."""
    from {pkg}.metric import grad_error_hole

    return grad_error_hole(pred, gt, mask)


@hookimpl
def zoo_register_metrics():
    return [MetricSpec("{n['metric']}", "mean |gradient of the prediction - gradient of the truth| over the hole ([0, 1] images)", False,
                       grad_error_hole, needs_mask=True, value_range=(0.0, 1.0))]
'''


def readme(n: dict[str, str]) -> str:
    metric, pkg = n["metric"], n["package"]
    return f"""The metric `{metric}`: the mean absolute difference between the image gradients of the
prediction and of the ground truth over the hole (images on [0, 1], lower is better). It sees
blur and wrong texture that a pixel error averages away, and seams at the hole's edge (the
gradient of a hole pixel next to a known one spans the seam). It reads the hole only: the zoo
keeps the known pixels of every prediction equal to the ground truth, so nothing else can
differ. Replace it with yours.

```bash
zoo score --pred filled/ --gt images/ --masks masks/ --metric {metric},psnr-hole
zoo compare --metric psnr-hole,{metric} --data shapes --masks lama-medium --count 16 --size 32 --methods telea --out reports/{metric}
```

Files: `{pkg}/metric.py` (the metric), `tests/test_metric.py` (zero for the truth, a good
fill scores better than a bad one, and the zoo's metric kit).
"""


def files(n: dict[str, str]) -> dict[str, str]:
    pkg, metric, plugin = n["package"], n["metric"], n["plugin"]
    return {
        f"{pkg}/metric.py": f'''"""{metric}: mean |grad(pred) - grad(gt)| over the hole, images on [0, 1]."""

from __future__ import annotations

import torch


def gradients(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward differences along W and H of (B, C, H, W); 0 in the last column / row."""
    gx = torch.zeros_like(x)
    gy = torch.zeros_like(x)
    gx[..., :, :-1] = x[..., :, 1:] - x[..., :, :-1]
    gy[..., :-1, :] = x[..., 1:, :] - x[..., :-1, :]
    return gx, gy


def grad_error_hole(pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per image (B,): pred, gt (B, 3, H, W) in [-1, 1]; mask (B, 1, H, W), 1 = hole."""
    (px, py), (gx, gy) = gradients((pred + 1) / 2), gradients((gt + 1) / 2)
    err = ((px - gx).abs() + (py - gy).abs()) / 2 * mask  # (B, 3, H, W), 0 outside the hole
    return err.flatten(1).sum(1) / (3 * mask.flatten(1).sum(1)).clamp(min=1)
''',
        "tests/test_metric.py": f'''"""{metric}: zero for the truth, a good fill scores better than a bad one, and the zoo's
metric kit (registered by this plugin, one value per image, reads the hole only)."""

import torch

from zoo.testing import check_metric, example_batch

from {pkg}.metric import grad_error_hole


def test_the_metric_kit():
    check_metric("{metric}", plugin="{plugin}")


def test_zero_for_the_truth_and_a_good_fill_scores_better_than_a_bad_one():
    gt, mask = example_batch(n=4)  # (4, 3, 32, 32) in [-1, 1]; (4, 1, 32, 32), one box hole each, 1 = hole
    hole = mask.expand_as(gt).bool()
    noise = torch.randn(gt.shape, generator=torch.Generator().manual_seed(0))
    # what `zoo compare` gives a metric: composited predictions, the known pixels equal to gt
    good = torch.where(hole, (gt + 0.05 * noise).clamp(-1, 1), gt)  # the truth, slightly off
    flat = torch.where(hole, torch.zeros_like(gt), gt)  # a flat grey hole: a method that did nothing
    wrong = torch.where(hole, gt.roll(1, 0), gt)  # another image's content in the hole
    assert torch.equal(grad_error_hole(gt, gt, mask), torch.zeros(4))
    g, f, w = (grad_error_hole(x, gt, mask) for x in (good, flat, wrong))
    assert (g < f).all() and (g < w).all(), (g, f, w)
    assert (f > 2 * g).all(), "the metric hardly separates a good fill from a flat one"
''',
    }
