"""Check ``metric`` on a registered metric (see :mod:`zoo.testing`)."""

from __future__ import annotations

import torch

from zoo.plugins import get_manager
from zoo.testing.common import HOLE_MARGIN, KitFailure, _fmt, _one_line, example_batch
from zoo.testing.plugin import _refusals


def check_metric(name: str, plugin: str | None = None) -> None:
    """Check the metric ``name`` (see the module docstring, check ``metric``); ``plugin``: the
    plugin that must own it. Raises :class:`KitFailure`."""
    manager = get_manager()

    def fail(sub: str, message: str) -> KitFailure:
        return KitFailure(name, "metric", sub, message)

    found = manager.names("metrics")
    if name not in found:
        missing = manager.not_loaded()
        raise fail("registered", f"no metric of that name; metrics: {', '.join(sorted(found))}" + (f"; not loaded: {'; '.join(missing)}" if missing else ""))
    spec, owner = found[name]
    clashes = _refusals("metric", name)
    if clashes or (plugin is not None and owner != plugin):
        raise fail("unique", f"plugin {owner} registered it first" + (f"; {', '.join(clashes)}'s is refused" if clashes else f", not {plugin}") + "; rename the metric")
    if not spec.per_image:
        return
    if spec.prepare is not None:
        try:
            spec.prepare()
        except Exception as exc:
            raise fail("prepare", f"MetricSpec.prepare() raised {_one_line(exc)}") from exc
    gt, mask = example_batch(n=3)
    hole = mask.expand_as(gt).bool()
    noise = torch.rand(gt.shape, generator=torch.Generator().manual_seed(4)) * 2 - 1
    fills = {
        "the truth": gt,
        "a good fill (the truth + 1% noise in the hole)": torch.where(hole, (gt + 0.02 * noise).clamp(-1, 1), gt),
        "a bad fill (another image's content in the hole)": torch.where(hole, gt.roll(1, 0), gt),
    }
    values: dict[str, torch.Tensor] = {}
    for what, pred in fills.items():
        try:
            out = spec.fn(pred, gt, mask)
        except Exception as exc:
            raise fail("shape", f"fn(pred, gt, mask) raised {_one_line(exc)}") from exc
        out = torch.as_tensor(out).detach().double().cpu()
        if out.shape != (len(gt),):
            raise fail("shape", f"fn(pred, gt, mask) of {len(gt)} images returned shape {tuple(out.shape)}; expected ({len(gt)},), one value per image")
        if what != "the truth" and not torch.isfinite(out).all():
            raise fail("finite", f"{what} scores {_fmt(out)}; expected finite values")
        low, high = spec.value_range
        ok = out[torch.isfinite(out)]
        if (low is not None and (ok < low - 1e-9).any()) or (high is not None and (ok > high + 1e-9).any()):
            raise fail("range", f"{what} scores {_fmt(out)}, outside value_range {spec.value_range}")
        values[what] = out
    odd_gt, odd_mask = example_batch(1, 33, 31)
    odd = torch.as_tensor(spec.fn(odd_gt, odd_gt, odd_mask)).detach()
    if odd.shape != (1,):
        raise fail("shape", f"one 33x31 image gave shape {tuple(odd.shape)}; expected (1,)")
    truth, good, bad = values.values()
    sign = 1.0 if spec.higher_is_better else -1.0
    for what, v in values.items():
        if (sign * (truth - v) < -1e-9 * (1 + v.abs())).any():
            raise fail("identical-best", f"pred == gt scores {_fmt(truth)}, worse than {what}: {_fmt(v)} "
                                         f"(higher_is_better={spec.higher_is_better})")
    if not sign * (good.mean() - bad.mean()) > 0:
        raise fail("separates", f"{list(fills)[1]} scores {good.mean():.4g}, {list(fills)[2]} {bad.mean():.4g} (mean of 3 images, "
                                f"higher_is_better={spec.higher_is_better}); the metric does not tell them apart the right way "
                                "(predictions are composited: known pixels equal the ground truth, so only the hole can differ)")
    if spec.needs_mask:
        import torch.nn.functional as F

        far = F.max_pool2d(mask, 2 * HOLE_MARGIN + 1, stride=1, padding=HOLE_MARGIN).expand_as(gt) == 0
        changed = torch.where(far, noise, gt)
        v = torch.as_tensor(spec.fn(changed, gt, mask)).detach().double().cpu()
        if not torch.allclose(v, truth, rtol=1e-6, atol=1e-9, equal_nan=True):
            raise fail("hole-only", f"changing only pixels more than {HOLE_MARGIN} px from the hole changed the value from {_fmt(truth)} to {_fmt(v)}; "
                                    "a needs_mask metric scores the hole (set needs_mask=False for a whole-image metric)")
