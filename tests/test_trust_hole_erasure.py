"""A method never sees the hole (issue 12): the core erases hole pixels before zoo_sample.

Run over every method `zoo list` shows: changing the hole content of an input changes
nothing in any output (same seed), for a box hole, a 100 % hole and a 0 % hole."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from zoo import MethodSpec, SampleOutput, hookimpl
from zoo.config import resolve_config
from zoo.inpaint import HOLE_VALUE, erase_holes, inpaint
from zoo.plugins import get_manager, reset_manager

#: Sampling settings that keep a method's tiny preset to a second on a CPU. A method whose
#: tiny preset is slow to sample adds its row here.
FAST: dict[str, dict[str, object]] = {
    "repaint": {"sampling": "custom", "t_T": 3, "jump_length": 1, "jump_n_sample": 1},
}


def _methods() -> list[str]:
    reset_manager()
    names = sorted(get_manager().methods())
    reset_manager()
    return names


def _model(method: str):
    manager = get_manager()
    spec = manager.method(method)
    preset = "tiny" if "tiny" in spec.presets else None
    assert preset or not spec.needs_training, f"{method} has no tiny preset"
    config, _ = resolve_config(spec, preset, FAST.get(method))
    torch.manual_seed(0)
    model = manager.call("zoo_build_model", method, config=config).eval()
    return model, config, int(getattr(config, "resolution", 32))


def _masks(size: int) -> dict[str, torch.Tensor]:
    box = torch.zeros(1, 1, size, size)
    box[..., size // 4 : size // 2 + 2, size // 5 : size - size // 4] = 1
    return {"box": box, "all-hole": torch.ones(1, 1, size, size), "no-hole": torch.zeros(1, 1, size, size)}


@pytest.mark.parametrize("method", _methods())
def test_hole_content_never_reaches_the_output(method):
    model, config, size = _model(method)
    g = torch.Generator().manual_seed(1)
    images = torch.rand(1, 3, size, size, generator=g) * 2 - 1
    for kind, mask in _masks(size).items():
        other = torch.where(mask.bool().expand_as(images), torch.rand(images.shape, generator=g) * 2 - 1, images)
        with torch.no_grad():
            a, _ = inpaint(method, model, config, images, mask, torch.Generator().manual_seed(7))
            b, _ = inpaint(method, model, config, other, mask, torch.Generator().manual_seed(7))
        assert torch.equal(a, b), f"{method}, {kind} mask: the hole content changed the output (max diff {float((a - b).abs().max()):.3g})"
        keep = ~mask.bool().expand_as(images)
        assert torch.equal(a[keep], images[keep]), f"{method}, {kind} mask: known pixels changed"
        if kind == "all-hole":  # the ground truth cannot come back from an erased image
            assert not torch.equal(a, images)


@dataclass
class _RecorderConfig:
    pass


class _Recorder:
    """A method of its own that keeps what its zoo_sample receives."""

    seen: list[torch.Tensor] = []

    @hookimpl
    def zoo_register_methods(self):
        return [MethodSpec("recorder", "returns its input", "classical", _RecorderConfig, {"default": {}}, needs_training=False)]

    @hookimpl
    def zoo_build_model(self, method, config):
        return torch.nn.Identity()

    @hookimpl
    def zoo_sample(self, method, model, config, images, masks, generator):
        self.seen.append(images.clone())
        return SampleOutput(images.clone(), {})


def test_the_hook_gets_erased_images():
    """What a plugin's zoo_sample receives: hole pixels are exactly HOLE_VALUE, known ones untouched."""
    manager = get_manager()
    rec = _Recorder()
    manager.register(rec, name="recorder")
    try:
        model, config, _ = _model("recorder")
        images = torch.rand(2, 3, 16, 16) * 2 - 1
        mask = _masks(16)["box"].expand(2, 1, 16, 16)
        out, _ = inpaint("recorder", model, config, images, mask, torch.Generator())
        seen = rec.seen[-1]
        hole = mask.bool().expand_as(images)
        assert torch.all(seen[hole] == HOLE_VALUE)
        assert torch.equal(seen[~hole], images[~hole])
        assert torch.equal(out[~hole], images[~hole])
        assert torch.equal(erase_holes(images, mask), seen)
    finally:
        reset_manager()
