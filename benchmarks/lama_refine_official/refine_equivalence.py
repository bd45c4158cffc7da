"""LaMa's test-time feature refinement against the official code (issue 26, item 5).

The official ``refine_predict`` (advimman/lama ``saicinpainting/evaluation/refinement.py``,
what ``bin/predict.py`` runs with ``refine=True``) and the zoo's ``refine=true``
(``zoo_plugins.lama.sample.refine_one``) are run on the same random-weight FFC-ResNet
generator, built by the official ``FFCResNetGenerator`` and loaded into the zoo's ``LaMa``,
on the same image and mask. Compared: the image/mask pyramid, the loss of every forward pass
at every scale, and the refined image.

The official checkout is fetched outside this repository and never committed::

    git clone https://github.com/advimman/lama /tmp/lama-official
    pip install kornia opencv-python easydict tqdm      # what refinement.py imports
    python benchmarks/lama_refine_official/refine_equivalence.py --lama /tmp/lama-official

The official code asks for CUDA devices (``gpu_ids``); here its ``torch.device`` is answered
with the CPU, and nothing else in it is changed. Its package ``__init__`` files (which pull
in the evaluators, Lightning and TensorFlow) are skipped: only ``refinement.py``, ``data.py``,
``utils.py`` and the generator's modules are loaded; ``pytorch_lightning.seed_everything``
(imported by ``saicinpainting/utils.py``, unused here) is a stub. Results: ``results.json``
beside this file.
"""

from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys
import time
import types
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
#: The tolerance the script holds the zoo to. With kornia's separable blur (kornia >= 0.6) the
#: two are bit-equal on the CPU; kornia 0.5 (the version LaMa pins) blurs with a 2D kernel,
#: whose rounding Adam's normalised steps grow over the iterations (seen: 3.4e-4 at lr 0.05).
LOSS_REL_TOL = 1e-6  # every loss of every iteration, relative
OUTPUT_ABS_TOL = 1e-3  # refined image in [0, 1], max abs
sys.path.insert(0, str(HERE.parents[1]))  # the zoo from this checkout


def load_official(root: Path):
    """(refinement module, FFCResNetGenerator) from the checkout, package inits skipped."""
    for name in ("saicinpainting", "saicinpainting.evaluation", "saicinpainting.training", "saicinpainting.training.modules"):
        module = types.ModuleType(name)
        module.__path__ = [str(root / name.replace(".", "/"))]
        sys.modules[name] = module
    if "pytorch_lightning" not in sys.modules:
        stub = types.ModuleType("pytorch_lightning")
        stub.seed_everything = lambda *a, **k: None
        sys.modules["pytorch_lightning"] = stub
    refinement = importlib.import_module("saicinpainting.evaluation.refinement")
    ffc = importlib.import_module("saicinpainting.training.modules.ffc")

    class CpuTorch(types.ModuleType):
        """``torch`` for refinement.py, whose ``torch.device('cuda:0')`` becomes the CPU."""

        def __getattr__(self, key):
            if key == "device":
                return lambda *_: torch.device("cpu")
            return getattr(torch, key)

    refinement.torch = CpuTorch("torch")
    return refinement, ffc.FFCResNetGenerator


class Inpainter(torch.nn.Module):
    """The attributes ``refine_predict`` reads from the Lightning module."""

    def __init__(self, generator: torch.nn.Module) -> None:
        super().__init__()
        self.generator = generator
        self.add_noise_kwargs = {}
        self.concat_mask = True


def build(FFCResNetGenerator, ngf: int, n_blocks: int, seed: int):
    """Official generator (big-lama's kwargs, smaller) with random weights and BN statistics,
    and the zoo's LaMa holding the same tensors; both in eval mode."""
    from zoo.config import resolve_config
    from zoo_plugins.lama.hooks import SPEC
    from zoo_plugins.lama.model import LaMa

    torch.manual_seed(seed)
    local = {"ratio_gin": 0, "ratio_gout": 0, "enable_lfu": False}
    official = FFCResNetGenerator(4, 3, ngf=ngf, n_downsampling=3, n_blocks=n_blocks, add_out_act="sigmoid",
                                  init_conv_kwargs=local, downsample_conv_kwargs=local,
                                  resnet_conv_kwargs={"ratio_gin": 0.75, "ratio_gout": 0.75, "enable_lfu": False})
    with torch.no_grad():
        for m in official.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 2.0)
    official.eval()
    config, _ = resolve_config(SPEC, "big-lama", {"ngf": ngf, "n_blocks": n_blocks, "discriminator": False})
    zoo = LaMa(config).eval()
    zoo.load_state_dict({"generator." + k: v for k, v in official.state_dict().items()}, strict=True)
    return Inpainter(official).eval(), zoo, config


def run_case(refinement, inpainter, zoo, config, h: int, w: int, hole: tuple[int, int, int, int], options: dict, seed: int) -> dict:
    """One image: official refine_predict vs the zoo's refine_one with the same options."""
    import dataclasses

    from zoo_plugins.lama.sample import image_mask_pyramid, refine_one

    g = torch.Generator().manual_seed(seed)
    # a smooth random image (bilinear up from 8x10 noise) plus a little pixel noise, in [0, 1]
    image = torch.nn.functional.interpolate(torch.rand(1, 3, 8, 10, generator=g), size=(h, w), mode="bilinear", align_corners=False)
    image = (image * 0.9 + torch.rand(1, 3, h, w, generator=g) * 0.1).clamp(0, 1)
    mask = torch.zeros(1, 1, h, w)
    t, b, l, r = hole
    mask[..., t:b, l:r] = 1

    official_losses: list[float] = []
    real_l1 = refinement._l1_loss

    def recording_l1(*args, **kwargs):
        loss = real_l1(*args, **kwargs)
        official_losses.append(float(loss.detach()))
        return loss

    refinement._l1_loss = recording_l1
    batch = {"image": image.clone(), "mask": mask.clone(), "unpad_to_size": [torch.tensor([h]), torch.tensor([w])]}
    start = time.perf_counter()
    ours_pyr = image_mask_pyramid(image, mask, dataclasses.replace(config, **{f"refine_{k}": v for k, v in options.items()}))
    their_pyr = refinement._get_image_mask_pyramid(batch, options["min_side"], options["max_scales"], options["px_budget"])
    official = refinement.refine_predict(batch, inpainter, gpu_ids="0,", modulo=zoo.multiple, **options)
    t_official = time.perf_counter() - start
    refinement._l1_loss = real_l1

    cfg = dataclasses.replace(config, refine=True, **{f"refine_{k}": v for k, v in options.items()})
    start = time.perf_counter()
    ours = refine_one(zoo, image, mask, cfg)
    t_zoo = time.perf_counter() - start
    zoo_losses = [x for scale in ours.losses for x in scale]

    n = min(len(zoo_losses), len(official_losses))
    loss_diff = [abs(a - b) for a, b in zip(zoo_losses, official_losses)]
    first = min(5, n)
    return {
        "size": [h, w], "hole": list(hole), "options": options, "refined_at": list(ours.size),
        "scales": [list(im.shape[-2:]) for im in ours_pyr[0]],
        "pyramid_images_max_abs_diff": max(float((a - b).abs().max()) for a, b in zip(ours_pyr[0], their_pyr[0])),
        "pyramid_masks_equal": all(torch.equal(a, b) for a, b in zip(ours_pyr[1], their_pyr[1])),
        "n_losses": [len(zoo_losses), len(official_losses)],
        "official_losses": official_losses, "zoo_losses": zoo_losses,
        "first_losses_max_abs_diff": max(loss_diff[:first]) if first else None,
        "all_losses_max_abs_diff": max(loss_diff) if n else None,
        "losses_max_rel_diff": max((d / max(abs(b), 1e-12) for d, b in zip(loss_diff, official_losses)), default=None),
        "output_shape_equal": list(official.shape) == list(ours.image.shape),
        "output_max_abs_diff": float((official - ours.image).abs().max()),
        "output_mean_abs_diff": float((official - ours.image).abs().mean()),
        "refined_vs_plain_mean_abs": plain_diff(zoo, ours, image, mask),
        "seconds": {"official": round(t_official, 2), "zoo": round(t_zoo, 2)},
    }


def plain_diff(zoo, refined, image, mask) -> float | None:
    """Mean |refined - one plain pass| (how much refinement changed the image); None when it
    was refined at a smaller size."""
    from zoo_plugins.lama.sample import inpaint

    if tuple(image.shape[-2:]) != tuple(refined.size):
        return None
    return float((refined.image - (inpaint(zoo, image * 2 - 1, mask).images + 1) / 2).abs().mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lama", type=Path, required=True, help="checkout of advimman/lama")
    parser.add_argument("--out", type=Path, default=HERE / "results.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    refinement, FFCResNetGenerator = load_official(args.lama.resolve())
    inpainter, zoo, config = build(FFCResNetGenerator, ngf=16, n_blocks=3, seed=0)
    base = {"n_iters": 15, "lr": 0.002, "min_side": 32, "max_scales": 3, "px_budget": 1_800_000}
    cases = [
        # three scales (32x40, 64x80, 128x160), the official default n_iters and lr
        run_case(refinement, inpainter, zoo, config, 128, 160, (20, 108, 24, 132), base, seed=1),
        # a size that is no multiple of 8 (reflect padding at every scale), a larger lr
        run_case(refinement, inpainter, zoo, config, 124, 150, (14, 100, 30, 140), {**base, "lr": 0.05, "n_iters": 10}, seed=2),
        # over the pixel budget: refined at a smaller size (two scales there)
        run_case(refinement, inpainter, zoo, config, 160, 192, (10, 140, 20, 170), {**base, "px_budget": 100 * 120, "max_scales": 2}, seed=3),
    ]
    import kornia

    try:
        commit = subprocess.run(["git", "-C", str(args.lama), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    except OSError:
        commit = ""
    result = {
        "official": {"repo": "advimman/lama", "commit": commit, "file": "saicinpainting/evaluation/refinement.py"},
        "generator": {"ngf": 16, "n_downsampling": 3, "n_blocks": 3, "ratio_g": 0.75, "weights": "random (seed 0), random BN statistics, eval mode"},
        "tolerance": {"loss_rel": LOSS_REL_TOL, "output_abs": OUTPUT_ABS_TOL},
        "torch": torch.__version__, "kornia": kornia.__version__, "device": "cpu", "dtype": "float32",
        "cases": cases,
    }
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    for c in cases:
        print(f"{c['size']} -> refined at {c['refined_at']}, scales {c['scales']}: {c['n_losses']} losses; "
              f"first 5 max |diff| {c['first_losses_max_abs_diff']:.2e}, all {c['all_losses_max_abs_diff']:.2e} (rel {c['losses_max_rel_diff']:.2e}); "
              f"output max |diff| {c['output_max_abs_diff']:.2e} mean {c['output_mean_abs_diff']:.2e}; pyramid images {c['pyramid_images_max_abs_diff']:.2e}, "
              f"masks equal {c['pyramid_masks_equal']}; refined vs plain mean |diff| {c['refined_vs_plain_mean_abs']}")
    print(f"wrote {args.out}")
    bad = [c["size"] for c in cases if c["n_losses"][0] != c["n_losses"][1] or not c["pyramid_masks_equal"]
           or c["losses_max_rel_diff"] > LOSS_REL_TOL or c["output_max_abs_diff"] > OUTPUT_ABS_TOL]
    if bad:
        sys.exit(f"outside the tolerance (losses rel {LOSS_REL_TOL}, output abs {OUTPUT_ABS_TOL}): {bad}")
    print(f"all within tolerance (losses rel {LOSS_REL_TOL}, output abs {OUTPUT_ABS_TOL})")


if __name__ == "__main__":
    main()
