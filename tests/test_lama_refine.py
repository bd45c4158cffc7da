"""LaMa's test-time feature refinement (`zoo sample lama --set refine=true`, issue 26 item 5):
it changes the hole, keeps known pixels exactly, is deterministic, its loss falls, it never
touches the weights; the pyramid follows the official scale rule and pixel budget; bad values
and `refine` on another method are one line, exit 2. (Equality with the official
refinement.py: benchmarks/lama_refine_official/.)"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image

from zoo.config import resolve_config
from zoo_plugins.lama.hooks import SPEC
from zoo_plugins.lama.model import LaMa
from zoo_plugins.lama.sample import (
    ellipse_kernel,
    erode_hole,
    image_mask_pyramid,
    inpaint,
    refine_inpaint,
    refine_one,
)

# two scales at 64 px (32, 64); a large lr so that a few steps on a random tiny model show
REFINE = {"refine": "true", "refine_min_side": "32", "refine_n_iters": "6", "refine_lr": "0.05"}


def tiny(**overrides):
    config, _ = resolve_config(SPEC, "tiny", {**REFINE, **overrides})
    torch.manual_seed(0)
    return LaMa(config).eval(), config


def example(size: int = 64, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(1, 3, size, size, generator=g) * 2 - 1
    masks = torch.zeros(1, 1, size, size)
    masks[..., 8:56, 10:58] = 1  # survives the 15x15 erosion at half size
    return images, masks


def test_refinement_changes_the_hole_and_keeps_known_pixels_exactly():
    model, config = tiny()
    images, masks = example()
    plain = inpaint(model, images, masks).images
    out = refine_inpaint(model, images, masks, config)
    assert out.info == {"nfe": 1 + 6, "refine_scales": 2}
    known = masks.expand_as(images) == 0
    assert torch.equal(out.images[known], images[known])
    hole = ~known
    assert (out.images[hole] - plain[hole]).abs().max() > 1e-3  # refinement moved the hole
    assert out.images.abs().max() <= 1


def test_refinement_is_deterministic_and_leaves_the_weights_alone():
    model, config = tiny()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    images, masks = example(seed=3)
    a = refine_inpaint(model, images, masks, config).images
    b = refine_inpaint(model, images, masks, config).images
    assert torch.equal(a, b)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())


def test_the_loss_falls_over_the_iterations():
    model, config = tiny(refine_n_iters="8")
    images, masks = example(seed=1)
    result = refine_one(model, (images + 1) / 2, masks, config)
    assert [len(s) for s in result.losses] == [0, 8]  # the coarsest scale is one plain pass
    top = result.losses[-1]
    assert top[-1] < top[0]
    assert sum(b < a for a, b in zip(top, top[1:])) >= 6  # falls at (nearly) every step


def test_batches_are_refined_image_by_image():
    model, config = tiny(refine_n_iters="3")
    a, ma = example(seed=1)
    b, mb = example(seed=2)
    mb = torch.flip(mb, dims=[-1])
    together = refine_inpaint(model, torch.cat([a, b]), torch.cat([ma, mb]), config).images
    alone = torch.cat([refine_inpaint(model, a, ma, config).images, refine_inpaint(model, b, mb, config).images])
    torch.testing.assert_close(together, alone, atol=1e-6, rtol=0)


@pytest.mark.parametrize(
    "size, min_side, max_scales, expected",
    [
        ((64, 64), 512, 3, [(64, 64)]),  # the official defaults: small images get no refinement scale
        ((64, 64), 32, 3, [(32, 32), (64, 64)]),
        ((64, 80), 16, 3, [(16, 20), (32, 40), (64, 80)]),  # log2(64 / 16) = 2
        ((64, 80), 16, 2, [(32, 40), (64, 80)]),  # capped by max_scales
        ((45, 64), 16, 3, [(22, 32), (45, 64)]),  # 1 + round(log2(45 / 16) = 1.49) = 2; odd sides floor
    ],
)
def test_pyramid_scales_follow_the_official_rule(size, min_side, max_scales, expected):
    _, config = tiny(refine_min_side=str(min_side), refine_max_scales=str(max_scales))
    image = torch.rand(1, 3, *size)
    mask = torch.zeros(1, 1, *size)
    mask[..., 5:9, 7:12] = 1
    images, masks = image_mask_pyramid(image, mask, config)
    assert [tuple(x.shape[-2:]) for x in images] == expected
    assert [tuple(m.shape[-2:]) for m in masks] == expected
    assert torch.equal(images[-1], image) and torch.equal(masks[-1], mask)
    for m in masks:
        assert set(m.unique().tolist()) <= {0.0, 1.0} and m.sum() > 0  # a hole never vanishes


def test_over_the_pixel_budget_it_refines_smaller_and_returns_the_input_size():
    model, config = tiny(refine_px_budget=str(48 * 48), refine_n_iters="2", refine_min_side="16", refine_max_scales="2")
    images, masks = example(64)
    result = refine_one(model, (images + 1) / 2, masks, config)
    assert result.size == (48, 48) and result.image.shape[-2:] == (48, 48)
    out = refine_inpaint(model, images, masks, config)
    assert out.images.shape == images.shape
    known = masks.expand_as(images) == 0
    assert torch.equal(out.images[known], images[known])


@pytest.mark.parametrize("size, scales", [((9, 20), 1), ((17, 17), 1), ((18, 40), 2), ((13, 70), 1)])
def test_small_images_refine_without_failing(size, scales):
    """Sizes where the official refiner would fail with min_side 1 (a coarse scale of 1-4 px,
    pads larger than the side): the pyramid stops while the bottleneck keeps 2 px."""
    model, config = tiny(refine_min_side="1", refine_n_iters="2")
    images = torch.rand(1, 3, *size) * 2 - 1
    masks = torch.zeros(1, 1, *size)
    masks[..., 1:-1, 1:-1] = 1
    result = refine_inpaint(model, images, masks, config)
    out = result.images
    assert result.info["refine_scales"] == scales
    assert out.shape == images.shape and torch.isfinite(out).all()
    assert torch.equal(out[masks.expand_as(images) == 0], images[masks.expand_as(images) == 0])


def test_ellipse_and_erosion():
    kernel = ellipse_kernel(15)
    # OpenCV's 15x15 MORPH_ELLIPSE: row widths (cells set per row)
    assert kernel.sum(dim=1).int().tolist() == [1, 9, 11, 13, 13, 15, 15, 15, 15, 15, 13, 13, 11, 9, 1]
    assert torch.equal(kernel, kernel.flip(0)) and torch.equal(kernel, kernel.flip(1))
    mask = torch.zeros(1, 1, 40, 40)
    mask[..., 5:35, 0:30] = 1  # touches the left edge
    eroded = erode_hole(mask, kernel)
    assert eroded[0, 0, 12:28, 0:23].eq(1).all()  # not eroded from the image edge (geodesic border)
    assert eroded[0, 0, :12].eq(0).all() and eroded[0, 0, 28:].eq(0).all() and eroded[0, 0, :, 23:].eq(0).all()
    cv2 = pytest.importorskip("cv2")
    for k in (3, 7, 15):
        ref = torch.from_numpy(cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)).astype(np.float32))
        assert torch.equal(ellipse_kernel(k), ref)


def test_the_sample_hook_refines_only_when_asked():
    from zoo_plugins.lama.hooks import zoo_sample

    model, config = tiny(refine_n_iters="2")
    images, masks = example()
    assert zoo_sample("lama", model, config, images, masks, None).info["refine_scales"] == 2
    plain = zoo_sample("lama", model, dataclasses.replace(config, refine=False), images, masks, None)
    assert "refine_scales" not in plain.info


# -- the CLI -----------------------------------------------------------------------------------
def lama_checkpoint(path):
    from zoo.checkpoint import save_checkpoint
    from zoo.runner import checkpoint_meta

    config, _ = resolve_config(SPEC, "tiny", None)
    torch.manual_seed(0)
    return save_checkpoint(path, LaMa(config).state_dict(), checkpoint_meta("lama", config, "tiny", 0, {"kind": "test"}))


def test_cli_sample_with_refine(cli, tmp_path, image_folder):
    images, masks = image_folder
    ckpt = lama_checkpoint(tmp_path / "lama.safetensors")
    args = ["sample", "lama", "--checkpoint", ckpt, "--images", images, "--masks", masks, "--device", "cpu"]
    r = cli(*args, "--out", tmp_path / "plain")
    assert r.exit_code == 0, r.output
    refine = ["--set", "refine=true", "--set", "refine_min_side=20", "--set", "refine_n_iters=4", "--set", "refine_lr=0.05"]
    r = cli(*args, "--out", tmp_path / "refined", *refine)
    assert r.exit_code == 0, r.output
    names = sorted(p.name for p in images.iterdir())
    assert sorted(p.name for p in (tmp_path / "refined").iterdir() if p.suffix == ".png") == names
    changed = 0
    for name in names:
        src = np.asarray(Image.open(images / name).convert("RGB")).astype(int)
        hole = np.asarray(Image.open(masks / name)) > 127
        a = np.asarray(Image.open(tmp_path / "plain" / name).convert("RGB")).astype(int)
        b = np.asarray(Image.open(tmp_path / "refined" / name).convert("RGB")).astype(int)
        assert np.array_equal(b[~hole], src[~hole])  # known pixels exactly
        changed += int(np.abs(a[hole] - b[hole]).max() > 0)
    assert changed >= 1


@pytest.mark.parametrize(
    "item, words",
    [
        ("refine_n_iters=0", "refine_n_iters=0: must be at least 1"),
        ("refine_lr=-0.1", "refine_lr=-0.1: must be > 0"),
        ("refine_max_scales=0", "refine_max_scales=0: must be at least 1"),
        ("refine_px_budget=abc", "--set refine_px_budget: expected an integer"),
        ("refine=maybe", "--set refine"),
        ("refine_iters=3", "unknown config key for lama 'refine_iters'"),
    ],
)
def test_bad_refine_values_are_one_line(cli, tmp_path, image_folder, item, words):
    images, masks = image_folder
    ckpt = lama_checkpoint(tmp_path / "lama.safetensors")
    r = cli("sample", "lama", "--checkpoint", ckpt, "--images", images, "--masks", masks, "--out", tmp_path / "o", "--set", item)
    assert r.exit_code == 2, r.output
    assert r.output.strip().count("\n") == 0 and r.output.startswith("Error:") and words in r.output, r.output
    assert not (tmp_path / "o").exists()


def tiny_checkpoint(method: str, path):
    """A tiny-preset checkpoint of any method (random weights)."""
    from zoo.checkpoint import save_checkpoint
    from zoo.plugins import get_manager
    from zoo.runner import checkpoint_meta

    manager = get_manager()
    config, _ = resolve_config(manager.method(method), "tiny", None)
    model = manager.call("zoo_build_model", method, config=config)
    return save_checkpoint(path, model.state_dict(), checkpoint_meta(method, config, "tiny", 0, {"kind": "test"}))


@pytest.mark.parametrize("method", ["telea", "mat"])
def test_refine_on_a_method_without_it_is_one_line(cli, tmp_path, image_folder, method):
    images, masks = image_folder
    ckpt = ["--checkpoint", tiny_checkpoint(method, tmp_path / "m.safetensors")] if method == "mat" else []
    r = cli("sample", method, *ckpt, "--images", images, "--masks", masks, "--out", tmp_path / "o", "--set", "refine=true")
    assert r.exit_code == 2, r.output
    line = r.output.strip()
    assert "\n" not in line and line.startswith("Error:") and f"unknown config key for {method} 'refine'" in line, line
    assert not (tmp_path / "o").exists()
