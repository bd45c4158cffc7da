"""Class-conditional RePaint against the official code, on random weights in the published
layouts (issue 26, item 1): the class-conditional UNet (openai/guided-diffusion ``UNetModel``
with ``label_emb``), the noisy-image classifier (``EncoderUNetModel``, attention and adaptive
pooling), one classifier-guided RePaint step (andreas128/RePaint ``p_sample`` with a
``cond_fn``, known region injected) against the zoo's step, and ten such steps against the
zoo's resampling loop.

The official checkouts are fetched outside this repository and never committed::

    git clone https://github.com/openai/guided-diffusion /tmp/guided-diffusion
    git clone https://github.com/andreas128/RePaint /tmp/RePaint
    python benchmarks/repaint_official/classcond_equivalence.py \
        --guided /tmp/guided-diffusion --repaint /tmp/RePaint [--published]

``--published`` adds the published 256x256 architectures (the 554M-parameter ImageNet UNet
and the 256x256 classifier; a few GB of memory and minutes on a CPU). ``--keys-out FILE``
writes the key names and shapes of two small official classifiers (the test fixture
``tests/fixtures/guided_classifier_keys.json``). Results: ``results.json`` beside this file.

The official ``cond_fn`` lives inside the scripts' ``main()`` (``classifier_sample.py``,
RePaint's ``test.py``) and cannot be imported; the reference here is its definition,
``scale * grad_x log_softmax(classifier(x, t))[y]``, handed to the official ``p_sample``.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # the zoo from this checkout


def load_openai(root: Path):
    """openai/guided-diffusion's package under the name ``gd_openai`` (RePaint's fork keeps
    the name ``guided_diffusion``, so both can be imported)."""
    pkg = root / "guided_diffusion"
    spec = importlib.util.spec_from_file_location("gd_openai", pkg / "__init__.py", submodule_search_locations=[str(pkg)])
    module = importlib.util.module_from_spec(spec)
    sys.modules["gd_openai"] = module
    spec.loader.exec_module(module)
    return importlib.import_module("gd_openai.script_util"), importlib.import_module("gd_openai.unet")


class Conf(dict):
    """The attributes RePaint's diffusion reads from its config object."""

    def __getattr__(self, key):
        return self[key]

    def pget(self, key, default=None):
        return self.get(key, default)


def randomize(model: torch.nn.Module, seed: int) -> dict[str, torch.Tensor]:
    """Random values everywhere (also the zero-initialised output layers)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            fan_in = p[0].numel() if p.dim() > 1 else 1
            scale = 0.5 / fan_in**0.5 if p.dim() > 1 else 0.05
            p.copy_(torch.randn(p.shape, generator=g) * scale + (1.0 if name.endswith("norm.weight") or ".0.weight" in name and p.dim() == 1 else 0.0))
    return {k: v.clone() for k, v in model.state_dict().items()}


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).abs().max())


def official_grad(classifier, scale):
    def cond_fn(x, t, y=None, **kwargs):
        with torch.enable_grad():
            x_in = x.detach().requires_grad_(True)
            log_probs = F.log_softmax(classifier(x_in, t), dim=-1)
            return torch.autograd.grad(log_probs[range(len(x)), y.view(-1)].sum(), x_in)[0] * scale

    return cond_fn


def check_unet(su, tmp: Path, image_size: int, channels: int, head_channels: int, attention: str, seed: int) -> dict:
    from zoo_plugins.repaint.convert import import_checkpoint
    from zoo_plugins.repaint.model import RepaintPrior

    official = su.create_model(image_size=image_size, num_channels=channels, num_res_blocks=2, learn_sigma=True, class_cond=True,
                               attention_resolutions=attention, num_head_channels=head_channels, use_scale_shift_norm=True, resblock_updown=True).eval()
    sd = randomize(official, seed)
    path = tmp / f"unet_{image_size}.pt"
    torch.save(sd, path)
    imported = import_checkpoint(path, None, {"num_head_channels": head_channels, "resolution": image_size})
    zoo = RepaintPrior(imported.config).eval()
    zoo.load_state_dict(imported.state_dict, strict=True)
    g = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(2, 3, image_size, image_size, generator=g)
    t = torch.tensor([17, 803])
    y = torch.tensor([3, 999])
    with torch.no_grad():
        ref, out = official(x, t, y), zoo(x, t, y)
    return {"what": f"class-conditional UNet {image_size}px C={channels} (1000 classes), imported by zoo import",
            "params": sum(p.numel() for p in official.parameters()), "preset": imported.preset, "num_classes": imported.config.num_classes,
            "max_abs_diff": max_diff(ref, out), "output_abs_mean": float(ref.abs().mean())}, official, zoo, imported.config


def check_classifier(su, unet_mod, tmp: Path, image_size: int, width: int, pool: str, seed: int) -> dict:
    from zoo.diffusion.classifier import load_classifier

    if pool == "attention":
        official = su.create_classifier(image_size=image_size, classifier_use_fp16=False, classifier_width=width, classifier_depth=2,
                                        classifier_attention_resolutions="32,16,8", classifier_use_scale_shift_norm=True,
                                        classifier_resblock_updown=True, classifier_pool="attention")
    else:  # the EncoderUNetModel with adaptive pooling, conv resampling, no scale-shift
        official = unet_mod.EncoderUNetModel(image_size=image_size, in_channels=3, model_channels=width, out_channels=10, num_res_blocks=2,
                                             attention_resolutions=(4,), channel_mult=(1, 2, 2), num_head_channels=64, pool="adaptive")
    official.eval()
    sd = randomize(official, seed)
    path = tmp / f"classifier_{image_size}_{pool}.pt"
    torch.save(sd, path)
    zoo = load_classifier(path, 2)
    g = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(2, 3, image_size, image_size, generator=g)
    t = torch.tensor([5, 640])
    with torch.no_grad():
        ref, out = official(x, t), zoo(x, t)
    return {"what": f"classifier {image_size}px width {width}, {pool} pool ({out.shape[1]} classes)", "params": sum(p.numel() for p in official.parameters()),
            "read_resolution": zoo.cfg.image_size, "max_abs_diff": max_diff(ref, out), "output_abs_mean": float(ref.abs().mean())}, official, zoo


def _official_setup(image_size: int):
    from guided_diffusion import script_util as rp_su  # RePaint's fork

    conf = Conf(use_value_logger=False, respace_interpolate=False, inpa_inj_sched_prev=True, inpa_inj_sched_prev_cumnoise=False)
    diffusion = rp_su.create_gaussian_diffusion(steps=1000, learn_sigma=True, noise_schedule="linear", timestep_respacing="250", conf=conf)
    g = torch.Generator().manual_seed(11)
    x = torch.randn(2, 3, image_size, image_size, generator=g)
    gt = torch.rand(2, 3, image_size, image_size, generator=g) * 2 - 1
    keep = torch.ones(2, 1, image_size, image_size)
    keep[:, :, image_size // 4 : 3 * image_size // 4, image_size // 8 : image_size // 2] = 0
    return conf, diffusion, x, gt, keep, torch.tensor([7, 421])


def _official_steps(diffusion, conf, unet, clf, scale, x, gt, keep, y, levels, draws):
    """RePaint's p_sample over ``levels``, its randn_like calls answered from ``draws``."""
    queue = list(draws)
    randn_like = torch.randn_like
    torch.randn_like = lambda like, *a, **k: queue.pop(0).to(like)
    try:
        for level in levels:
            with torch.no_grad():
                x = diffusion.p_sample(lambda x_t, t, y=None, **kw: unet(x_t, t, y), x, torch.tensor([level] * len(x)), clip_denoised=True,
                                       cond_fn=official_grad(clf, scale) if clf is not None else None,
                                       model_kwargs={"y": y, "gt": gt, "gt_keep_mask": keep}, conf=conf, pred_xstart=gt)["sample"]
    finally:
        torch.randn_like = randn_like
    assert not queue
    return x


def check_guided_step(official_unet, zoo_unet, official_clf, zoo_clf, cfg, image_size: int, level: int, scale: float) -> dict:
    """One RePaint step with classifier guidance at ``level``: the official ``p_sample`` (known
    region injected with a fresh draw, ``cond_fn``, learned variance) against the zoo's step
    (the same injection, :func:`classifier_gradient`, :func:`reverse_step` with guidance)."""
    from zoo.diffusion import reverse_step
    from zoo.diffusion.classifier import classifier_gradient
    from zoo_plugins.repaint.model import make_chain

    conf, diffusion, x, gt, keep, y = _official_setup(image_size)
    chain = make_chain(cfg).respace(250)
    gen = torch.Generator().manual_seed(5)
    known_noise, step_noise = torch.randn(x.shape, generator=gen), torch.randn(x.shape, generator=gen)
    ref = _official_steps(diffusion, conf, official_unet, official_clf, scale, x, gt, keep, y, [level], [step_noise, known_noise])
    ref_plain = _official_steps(diffusion, conf, official_unet, None, scale, x, gt, keep, y, [level], [step_noise, known_noise])
    x_in = keep * chain.q_sample(gt, level, known_noise) + (1 - keep) * x
    t = chain.timesteps[level].long().expand(len(x))
    with torch.no_grad():
        out = zoo_unet(x_in, t, y)
    grad = classifier_gradient(zoo_clf, x_in, t, y, scale)
    mine, _ = reverse_step(chain, x_in, level, out, step_noise, "ddpm", 1.0, True, grad)
    return {"what": f"one guided RePaint step at level {level} of 250 (timestep {int(chain.timesteps[level])}), classifier_scale {scale}, learned variance",
            "max_abs_diff": max_diff(ref, mine), "guidance_shift_max_abs": max_diff(ref, ref_plain)}


def check_guided_loop(official_unet, zoo_unet, official_clf, zoo_clf, cfg, image_size: int, start: int, scale: float) -> dict:
    """The zoo's resampling loop (``repaint``, known_noise=fresh, cond_fn) over the levels
    ``start ... 0`` against as many official guided ``p_sample`` calls; compared in the hole
    (the zoo pastes the known pixels back at the end)."""
    from zoo.diffusion import repaint
    from zoo.diffusion.classifier import classifier_gradient
    from zoo_plugins.repaint.model import make_chain

    conf, diffusion, x, gt, keep, y = _official_setup(image_size)
    chain = make_chain(cfg).respace(250)
    gen = torch.Generator().manual_seed(5)
    draws = []
    for _ in range(start + 1):  # the zoo draws the known region's noise, then the step's; RePaint the other way round
        known_noise, step_noise = torch.randn(x.shape, generator=gen), torch.randn(x.shape, generator=gen)
        draws += [step_noise, known_noise]
    ref = _official_steps(diffusion, conf, official_unet, official_clf, scale, x, gt, keep, y, range(start, -1, -1), draws)
    out = repaint(lambda x_t, t: zoo_unet(x_t, t, y), gt, 1 - keep, chain, list(range(start, -2, -1)), torch.Generator().manual_seed(5),
                  x_init=x, known_noise="fresh", cond_fn=lambda x_t, t: classifier_gradient(zoo_clf, x_t, t, y, scale)).images
    return {"what": f"the zoo's RePaint loop with classifier guidance, levels {start} ... 0 of 250 ({start + 1} guided steps), classifier_scale {scale}",
            "max_abs_diff_in_hole": max_diff(ref * (1 - keep), out * (1 - keep))}


def classifier_keys(unet_mod) -> dict:
    layouts = {}
    for name, kw in {
        "attention-32px-w64": dict(image_size=32, in_channels=3, model_channels=64, out_channels=5, num_res_blocks=2, attention_resolutions=(2,),
                                   channel_mult=(1, 2), num_head_channels=64, use_scale_shift_norm=True, resblock_updown=True, pool="attention"),
        "adaptive-32px-w64": dict(image_size=32, in_channels=3, model_channels=64, out_channels=5, num_res_blocks=2, attention_resolutions=(1,),
                                  channel_mult=(1, 2, 2), num_head_channels=64, pool="adaptive"),
    }.items():
        model = unet_mod.EncoderUNetModel(**kw)
        layouts[name] = {"settings": {k: v for k, v in kw.items()}, "keys": {k: list(v.shape) for k, v in model.state_dict().items()}}
    return layouts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--guided", type=Path, required=True, help="a checkout of openai/guided-diffusion")
    ap.add_argument("--repaint", type=Path, required=True, help="a checkout of andreas128/RePaint")
    ap.add_argument("--published", action="store_true", help="also the published 256x256 architectures (slow)")
    ap.add_argument("--keys-out", type=Path, help="write the official classifier key layouts (test fixture) here")
    ap.add_argument("--out", type=Path, default=HERE / "results.json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    su, unet_mod = load_openai(args.guided)
    sys.path.insert(0, str(args.repaint))
    if args.keys_out:
        doc = {"generated_by": "python benchmarks/repaint_official/classcond_equivalence.py --guided CHECKOUT --repaint CHECKOUT --keys-out THIS_FILE",
               "official": "openai/guided-diffusion guided_diffusion/unet.py EncoderUNetModel(**settings).state_dict()", "layouts": classifier_keys(unet_mod)}
        args.keys_out.write_text(json.dumps(doc, indent=1) + "\n")
    rows = []
    start = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        unet_row, off_unet, zoo_unet, cfg = check_unet(su, tmp, 64, 64, 32, "32,16,8", 0)
        rows.append(unet_row)
        clf_row, off_clf, zoo_clf = check_classifier(su, unet_mod, tmp, 64, 64, "attention", 1)
        rows.append(clf_row)
        rows.append(check_classifier(su, unet_mod, tmp, 32, 64, "adaptive", 2)[0])
        for level, scale in ((120, 1.0), (120, 1000.0), (3, 1000.0)):
            rows.append(check_guided_step(off_unet, zoo_unet, off_clf, zoo_clf, cfg, 64, level, scale))
        rows.append(check_guided_loop(off_unet, zoo_unet, off_clf, zoo_clf, cfg, 64, 9, 1000.0))
        if args.published:
            rows.append(check_unet(su, tmp, 256, 256, 64, "32,16,8", 3)[0])
            rows.append(check_classifier(su, unet_mod, tmp, 256, 128, "attention", 4)[0])
    commit = {}
    for name, root in (("guided-diffusion", args.guided), ("RePaint", args.repaint)):
        head = root / ".git" / "HEAD"
        commit[name] = __import__("subprocess").run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip() if head.exists() else "unknown"
    result = {"torch": torch.__version__, "official_commits": commit, "seconds": round(time.time() - start, 1), "rows": rows}
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    for row in rows:
        print(json.dumps(row))
    worst = max(r.get("max_abs_diff", r.get("max_abs_diff_in_hole")) for r in rows)
    print(f"worst max |diff| = {worst:.3g} ({'within' if worst <= 1e-4 else 'NOT within'} 1e-4)")


if __name__ == "__main__":
    main()
