"""Class-conditional RePaint with classifier guidance (issue 26, item 1): guided-diffusion's
``label_emb`` read by the importer, the noisy-image classifier read in its published key
layout (``tests/fixtures/guided_classifier_keys.json``: written from the official
``EncoderUNetModel`` by ``benchmarks/repaint_official/classcond_equivalence.py``), the
classifier's gradient applied inside the resampling loop, and one-line errors for a class
out of range and a classifier of another resolution. The comparison with the official code
itself is that benchmark (figures in plugins/repaint/README.md)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from zoo.checkpoint import load_model
from zoo.diffusion import Chain, make_betas, repaint, reverse_step
from zoo.diffusion.classifier import ClassifierConfig, NoisyClassifier, infer_classifier_config, load_classifier
from zoo.diffusion.guided_unet import GuidedUNet, GuidedUNetConfig

KEYS = Path(__file__).parent / "fixtures" / "guided_classifier_keys.json"
UNET = GuidedUNetConfig(image_size=32, model_channels=32, channel_mult=(1, 2), num_res_blocks=1, attention_resolutions=(16,), num_head_channels=16, out_channels=6, num_classes=5)
FAST = ["--set", "sampling=custom", "--set", "t_T=3", "--set", "jump_length=1", "--set", "jump_n_sample=1"]


def _official_config(settings: dict) -> ClassifierConfig:
    """The zoo classifier config for the official EncoderUNetModel settings."""
    C = settings["model_channels"]
    return ClassifierConfig(
        model_channels=C, widths=tuple(int(m * C) for m in settings["channel_mult"]), num_res_blocks=settings["num_res_blocks"],
        attention_levels=tuple(int(math.log2(ds)) for ds in settings["attention_resolutions"]), classes=settings["out_channels"],
        pool=settings["pool"], image_size=settings["image_size"] if settings["pool"] == "attention" else None,
        use_scale_shift_norm=settings.get("use_scale_shift_norm", False), resblock_updown=settings.get("resblock_updown", False),
        num_head_channels=settings["num_head_channels"],
    )


def _random_state(model: torch.nn.Module, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(v.shape, generator=g) * 0.05 + (1.0 if k.endswith(("0.weight", "norm.weight")) and v.dim() == 1 else 0.0) for k, v in model.state_dict().items()}


@pytest.mark.parametrize("name", ["attention-32px-w64", "adaptive-32px-w64"])
def test_classifier_has_the_official_key_layout_and_is_read_back_from_it(name, tmp_path):
    layout = json.loads(KEYS.read_text())["layouts"][name]
    cfg = _official_config(layout["settings"])
    model = NoisyClassifier(cfg)
    assert {k: list(v.shape) for k, v in model.state_dict().items()} == layout["keys"]
    sd = {k: torch.randn(shape) for k, shape in layout["keys"].items()}  # a file in the official layout
    assert infer_classifier_config(sd, depth=2) == cfg
    torch.save(_random_state(model, 0), tmp_path / "clf.pt")
    loaded = load_classifier(tmp_path / "clf.pt", 2)
    assert loaded.cfg == cfg
    x = torch.randn(2, 3, 32, 32)
    assert loaded(x, torch.tensor([3, 700])).shape == (2, layout["settings"]["out_channels"])


def test_classifier_depth_that_does_not_fit_is_one_line(tmp_path):
    layout = json.loads(KEYS.read_text())["layouts"]["attention-32px-w64"]
    sd = {k: torch.zeros(shape) for k, shape in layout["keys"].items()}
    from zoo.errors import ZooError

    with pytest.raises(ZooError, match="classifier_depth=3"):
        infer_classifier_config(sd, depth=3)


def test_guidance_shifts_the_ddpm_mean_by_the_variance_and_ddim_eps():
    chain = Chain.from_betas(make_betas("linear", 1000)).respace(50)
    g = torch.Generator().manual_seed(0)
    x, out, noise = torch.randn(1, 3, 8, 8, generator=g), torch.randn(1, 6, 8, 8, generator=g), torch.randn(1, 3, 8, 8, generator=g)
    grad = torch.randn(1, 3, 8, 8, generator=g)
    level = 20
    plain, _ = reverse_step(chain, x, level, out, noise)
    guided, _ = reverse_step(chain, x, level, out, noise, guidance=grad)
    frac = (out[:, 3:] + 1) / 2
    log_var = frac * torch.log(chain.betas[level]) + (1 - frac) * chain.posterior_log_variance_clipped[level]
    torch.testing.assert_close(guided - plain, log_var.exp().float() * grad, rtol=1e-4, atol=1e-6)
    # at level 0 the mean is shifted too (guided-diffusion conditions before the no-noise mask)
    p0, _ = reverse_step(chain, x, 0, out, noise)
    g0, _ = reverse_step(chain, x, 0, out, noise, guidance=grad)
    assert (g0 - p0).abs().max() > 0
    # ddim: eps - sqrt(1 - abar) grad
    d_plain, _ = reverse_step(chain, x, level, out[:, :3], noise, "ddim", 0.0, clip=False)
    shifted = out[:, :3] - (1 - float(chain.alphas_cumprod[level])) ** 0.5 * grad
    d_guided, _ = reverse_step(chain, x, level, out[:, :3], noise, "ddim", 0.0, clip=False, guidance=grad)
    torch.testing.assert_close(d_guided, reverse_step(chain, x, level, shifted, noise, "ddim", 0.0, clip=False)[0])
    assert (d_guided - d_plain).abs().max() > 1e-3


def test_the_loop_evaluates_the_classifier_on_the_networks_input():
    chain = Chain.from_betas(make_betas("linear", 1000)).respace(6)
    images = torch.rand(2, 3, 8, 8) * 2 - 1
    holes = torch.zeros(2, 1, 8, 8)
    holes[..., 2:6, 2:6] = 1
    seen_model, seen_cond = [], []

    def model_fn(x, t):
        seen_model.append(x.clone())
        return torch.zeros(x.shape[0], 6, 8, 8)

    def cond_fn(x, t):
        seen_cond.append(x.clone())
        return torch.full_like(x, 0.5)

    points = [5, 4, 5, 4, 3, 2, 1, 0, -1]
    for known_noise in ("shared", "fresh"):
        seen_model.clear(), seen_cond.clear()
        guided = repaint(model_fn, images, holes, chain, points, torch.Generator().manual_seed(1), known_noise=known_noise, cond_fn=cond_fn)
        plain = repaint(model_fn, images, holes, chain, points, torch.Generator().manual_seed(1), known_noise=known_noise)
        assert len(seen_cond) == guided.nfe == 7
        assert all(torch.equal(a, b) for a, b in zip(seen_cond, seen_model[: len(seen_cond)]))
        assert (guided.images - plain.images).abs().max() > 1e-3  # the gradient moved the fill
        assert torch.equal(guided.images * (1 - holes), images * (1 - holes))


@pytest.fixture(scope="module")
def classcond(tmp_path_factory):
    """A class-conditional prior (5 classes, published key layout) imported, and classifiers
    (built once for the module's tests)."""
    from click.testing import CliRunner

    from zoo_cli.main import app

    tmp_path = tmp_path_factory.mktemp("classcond")

    def cli(*args):
        return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)

    torch.manual_seed(0)
    unet = GuidedUNet(UNET)
    torch.save(_random_state(unet, 1), tmp_path / "cc.pt")
    r = cli("import", "repaint", tmp_path / "cc.pt", "--out", tmp_path / "cc.safetensors", "--set", "num_head_channels=16", "--set", "resolution=32")
    assert r.exit_code == 0, r.output
    for size, name in ((32, "clf.pt"), (64, "clf64.pt")):
        clf = NoisyClassifier(ClassifierConfig(64, (64, 128), 1, (), 5, "attention", size))
        torch.save(_random_state(clf, 2), tmp_path / name)
    images, masks = tmp_path / "img", tmp_path / "msk"
    images.mkdir(), masks.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray((rng.random((32, 32, 3)) * 255).astype(np.uint8)).save(images / f"{i}.png")
        m = np.zeros((32, 32), np.uint8)
        m[8:24, 6:20] = 255
        Image.fromarray(m).save(masks / f"{i}.png")
    return tmp_path, images, masks


def _sample(cli, root, images, masks, out, *sets):
    return cli("sample", "repaint", "--checkpoint", root / "cc.safetensors", "--images", images, "--masks", masks, "--out", root / out, *FAST, *sets)


def _read(folder: Path) -> np.ndarray:
    return np.stack([np.asarray(Image.open(p)) for p in sorted(folder.iterdir())]).astype(np.int16)


def test_class_conditional_prior_imports_and_samples_per_class(cli, classcond):
    root, images, masks = classcond
    model, cfg, meta = load_model(root / "cc.safetensors", "repaint")
    assert cfg.num_classes == 5 and "num_classes=5" in meta.provenance["inferred"]
    ref = GuidedUNet(UNET).eval()
    ref.load_state_dict(torch.load(root / "cc.pt"), strict=True)
    x, t, y = torch.randn(2, 3, 32, 32), torch.tensor([4, 800]), torch.tensor([1, 4])
    with torch.no_grad():
        torch.testing.assert_close(model(x, t, y), ref(x, t, y), atol=0, rtol=0)
    for out, label in (("c3", "3"), ("c3b", "3"), ("c0", "0")):
        r = _sample(cli, root, images, masks, out, "--set", f"class={label}")
        assert r.exit_code == 0, r.output
    assert np.array_equal(_read(root / "c3"), _read(root / "c3b"))
    assert np.abs(_read(root / "c3") - _read(root / "c0")).max() > 0  # the class reaches the network
    # a class list file: image 0 gets class 3, image 1 class 0 (names as the outputs, suffix optional)
    (root / "classes.txt").write_text("# name class\n0 3\n1.png 0  # the second image\n")
    r = _sample(cli, root, images, masks, "listed", "--set", f"class={root / 'classes.txt'}")
    assert r.exit_code == 0, r.output
    listed = _read(root / "listed")
    assert np.array_equal(listed[0], _read(root / "c3")[0])
    assert np.array_equal(listed[1], _read(root / "c0")[1]) and not np.array_equal(listed[1], _read(root / "c3")[1])


def test_classifier_guidance_changes_the_fill(cli, classcond):
    root, images, masks = classcond
    base = _sample(cli, root, images, masks, "plain", "--set", "class=2")
    guided = _sample(cli, root, images, masks, "guided", "--set", "class=2", "--set", f"classifier={root / 'clf.pt'}", "--set", "classifier_depth=1", "--set", "classifier_scale=1000")
    assert base.exit_code == 0 and guided.exit_code == 0, guided.output
    assert np.abs(_read(root / "plain") - _read(root / "guided")).max() > 0


def test_bad_class_and_classifier_inputs_are_one_line(cli, classcond):
    root, images, masks = classcond
    (root / "short.txt").write_text("0 1\n")
    (root / "wrong.txt").write_text("0 1\n1 9\n")
    cases = [
        (("--set", "class=5"), "class 5 is out of range: valid classes are 0 ... 4 (5 classes)"),
        (("--set", "class=-1"), "class -1 is out of range"),
        (("--set", "class=cat"), "is neither a class index (an integer 0 ... 4) nor a class list file"),
        (("--set", f"class={root / 'short.txt'}"), "has no line for image '1'"),
        (("--set", f"class={root / 'wrong.txt'}"), "class 9 (wrong.txt line 2) is out of range"),
        (("--set", f"classifier={root / 'clf64.pt'}"), "trained at 64x64 (read from its attention pool) but the prior at 32x32"),
        (("--set", f"classifier={root / 'missing.pt'}"), "does not exist"),
    ]
    for sets, message in cases:
        r = _sample(cli, root, images, masks, "bad", "--set", "classifier_depth=1", *sets)
        assert r.exit_code == 2, r.output
        lines = [ln for ln in r.output.splitlines() if ln.startswith("Error:")]
        assert len(lines) == 1 and message in lines[0], r.output
        assert "Traceback" not in r.output and not (root / "bad").exists()


def test_unconditional_prior_takes_a_class_only_with_a_classifier(cli, tmp_path, classcond):
    root, images, masks = classcond
    unet = GuidedUNet(GuidedUNetConfig(**{**UNET.__dict__, "num_classes": None}))
    torch.save(_random_state(unet, 3), tmp_path / "u.pt")
    r = cli("import", "repaint", tmp_path / "u.pt", "--out", tmp_path / "u.safetensors", "--set", "num_head_channels=16", "--set", "resolution=32")
    assert r.exit_code == 0, r.output
    common = ("sample", "repaint", "--checkpoint", tmp_path / "u.safetensors", "--images", images, "--masks", masks, *FAST)
    r = cli(*common, "--out", tmp_path / "o", "--set", "class=1")
    assert r.exit_code == 2 and "needs a class-conditional prior (num_classes) or a classifier" in r.output
    # with a classifier the classes are the classifier's (guided-diffusion's unconditional + classifier setting)
    guided = ("--set", f"classifier={root / 'clf.pt'}", "--set", "classifier_depth=1")
    r = cli(*common, "--out", tmp_path / "o", *guided, "--set", "class=7")
    assert r.exit_code == 2 and "valid classes are 0 ... 4" in r.output
    r = cli(*common, "--out", tmp_path / "o", *guided, "--set", "class=4")
    assert r.exit_code == 0, r.output


def test_class_conditional_training_is_refused_in_one_line(cli, tmp_path):
    r = cli("train", "repaint", "--data", "shapes", "--preset", "tiny", "--set", "num_classes=3", "--steps", "1", "--out", tmp_path / "run", "--device", "cpu")
    assert r.exit_code == 2 and "trains unconditional priors only" in r.output


def test_dip_ddpm_refuses_a_class_conditional_file(cli, classcond):
    root, _, _ = classcond
    r = cli("import", "dip-ddpm", root / "cc.pt", "--out", root / "d.safetensors", "--set", "num_head_channels=16")
    assert r.exit_code == 2 and "class-conditional" in r.output and "needs an unconditional prior" in r.output


def test_dip_ddpm_refuses_a_class_conditional_repaint_checkpoint_as_its_prior(classcond):
    from zoo.errors import ZooError
    from zoo_plugins.dip_ddpm.convert import load_prior

    root, _, _ = classcond
    with pytest.raises(ZooError, match="class-conditional \\(5 classes\\); dip-ddpm needs an unconditional prior"):
        load_prior(root / "cc.safetensors")
