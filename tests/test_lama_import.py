"""`zoo import lama`: a Lightning checkpoint in the published big-lama layout (random values)
converts completely and strictly, nothing in it is executed, and the converted model computes
the same function as an independent functional re-statement of the official generator
(advimman/lama saicinpainting/training/modules/ffc.py, bin/predict.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from zoo.checkpoint import load_model
from zoo.official import Opaque, load_official
from zoo_plugins.lama.model import FFCResnetBlock
from zoo_plugins.lama.sample import inpaint

EXECUTED: list[str] = []


def _record(what: str) -> str:
    EXECUTED.append(what)
    return what


class TrainingConfig:
    """Stands in for the pickled OmegaConf config: unpickling it normally would run _record."""

    def __reduce__(self):
        return (_record, ("unpickled TrainingConfig",))


# -- the published key layout, written out from the official modules ----------------------
def published_generator_shapes(n_blocks: int = 18) -> dict[str, tuple[int, ...]]:
    """Every tensor of LaMa's FFCResNetGenerator (ngf 64, 3 downsamplings, ratio 0.75, no LFU)
    under the Lightning module's ``generator.`` prefix."""
    shapes: dict[str, tuple[int, ...]] = {}

    def bn(name: str, c: int) -> None:
        for s in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{name}.{s}"] = (c,)
        shapes[f"{name}.num_batches_tracked"] = ()

    g = "generator.model."
    shapes[g + "1.ffc.convl2l.weight"] = (64, 4, 7, 7)  # after ReflectionPad2d(3) at index 0
    bn(g + "1.bn_l", 64)
    shapes[g + "2.ffc.convl2l.weight"] = (128, 64, 3, 3)
    bn(g + "2.bn_l", 128)
    shapes[g + "3.ffc.convl2l.weight"] = (256, 128, 3, 3)
    bn(g + "3.bn_l", 256)
    shapes[g + "4.ffc.convl2l.weight"] = (128, 256, 3, 3)  # emits 128 local + 384 global
    shapes[g + "4.ffc.convl2g.weight"] = (384, 256, 3, 3)
    bn(g + "4.bn_l", 128)
    bn(g + "4.bn_g", 384)
    for i in range(5, 5 + n_blocks):
        for conv in ("conv1", "conv2"):
            p = f"{g}{i}.{conv}."
            shapes[p + "ffc.convl2l.weight"] = (128, 128, 3, 3)
            shapes[p + "ffc.convl2g.weight"] = (384, 128, 3, 3)
            shapes[p + "ffc.convg2l.weight"] = (128, 384, 3, 3)
            shapes[p + "ffc.convg2g.conv1.0.weight"] = (192, 384, 1, 1)
            bn(p + "ffc.convg2g.conv1.1", 192)
            shapes[p + "ffc.convg2g.fu.conv_layer.weight"] = (384, 384, 1, 1)
            bn(p + "ffc.convg2g.fu.bn", 384)
            shapes[p + "ffc.convg2g.conv2.weight"] = (384, 192, 1, 1)
            bn(p + "bn_l", 128)
            bn(p + "bn_g", 384)
    j = 5 + n_blocks  # ConcatTupleLayer
    for k, (cin, cout) in enumerate([(512, 256), (256, 128), (128, 64)]):
        shapes[f"{g}{j + 1 + 3 * k}.weight"] = (cin, cout, 3, 3)  # ConvTranspose2d
        shapes[f"{g}{j + 1 + 3 * k}.bias"] = (cout,)
        bn(f"{g}{j + 2 + 3 * k}", cout)
    shapes[f"{g}{j + 11}.weight"] = (3, 64, 7, 7)  # after ReflectionPad2d(3)
    shapes[f"{g}{j + 11}.bias"] = (3,)
    return shapes


OTHER_SHAPES = {  # a few of the tensors the importer must ignore (loss networks)
    "loss_resnet_pl.impl.conv1.weight": (64, 3, 3, 3),
    "loss_resnet_pl.impl.layer4.2.bn3.running_mean": (2048,),
}


def random_tensors(shapes: dict[str, tuple[int, ...]], seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    out = {}
    for k, shape in shapes.items():
        if k.endswith("num_batches_tracked"):
            out[k] = torch.tensor(12345, dtype=torch.long)
        elif k.endswith("running_var"):
            out[k] = torch.rand(shape, generator=g) + 0.5
        elif k.endswith("running_mean") or k.endswith("bias"):
            out[k] = torch.randn(shape, generator=g) * 0.1
        elif len(shape) == 1:  # BN weight
            out[k] = 1 + torch.randn(shape, generator=g) * 0.1
        else:  # conv weights, scaled by fan-in so 18 blocks stay finite
            out[k] = torch.randn(shape, generator=g) / np.sqrt(np.prod(shape[1:]))
    return out


def lightning_checkpoint(path: Path, generator: dict[str, torch.Tensor]) -> Path:
    state = dict(generator)
    state.update(random_tensors(OTHER_SHAPES, seed=1))
    ckpt = {
        "epoch": 39,
        "global_step": 1_000_000,
        "pytorch-lightning_version": "1.2.9",
        "state_dict": state,
        "hyper_parameters": TrainingConfig(),
        "callbacks": {"ModelCheckpoint": {"best_model_score": torch.tensor(0.9), "monitor": "val_ssim_fid100_f1_total_mean"}},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, path)
    return path


# -- an independent functional re-statement of the official generator ----------------------
def _bn(x, sd, p):
    return F.batch_norm(x, sd[p + ".running_mean"], sd[p + ".running_var"], sd[p + ".weight"], sd[p + ".bias"], False, 0.0, 1e-5)


def _conv_reflect(x, w, stride=1):
    k = w.shape[-1] // 2
    return F.conv2d(F.pad(x, (k, k, k, k), mode="reflect"), w, stride=stride)


def _fourier_unit(x, sd, p):
    # rfft over (H, W), norm="ortho"; channels become [re_0, im_0, re_1, im_1, ...]
    b, c, h, w = x.shape
    ff = torch.fft.rfft2(x, norm="ortho")
    stacked = torch.empty(b, 2 * c, h, ff.shape[-1])
    stacked[:, 0::2], stacked[:, 1::2] = ff.real, ff.imag
    y = F.relu(_bn(F.conv2d(stacked, sd[p + ".conv_layer.weight"]), sd, p + ".bn"))
    return torch.fft.irfft2(torch.complex(y[:, 0::2], y[:, 1::2]), s=(h, w), norm="ortho")


def _ffc_bn_act(x_l, x_g, sd, p):
    """FFC_BN_ACT with ratio 0.75 in and out, 3x3 reflect-padded convs, no LFU."""
    local = _conv_reflect(x_l, sd[p + ".ffc.convl2l.weight"]) + _conv_reflect(x_g, sd[p + ".ffc.convg2l.weight"])
    s = F.relu(_bn(F.conv2d(x_g, sd[p + ".ffc.convg2g.conv1.0.weight"]), sd, p + ".ffc.convg2g.conv1.1"))
    spectral = F.conv2d(s + _fourier_unit(s, sd, p + ".ffc.convg2g.fu"), sd[p + ".ffc.convg2g.conv2.weight"])
    glob = _conv_reflect(x_l, sd[p + ".ffc.convl2g.weight"]) + spectral
    return F.relu(_bn(local, sd, p + ".bn_l")), F.relu(_bn(glob, sd, p + ".bn_g"))


def reference_generator(sd: dict[str, torch.Tensor], x: torch.Tensor, n_blocks: int) -> torch.Tensor:
    """(B, 4, H, W) masked image in [0, 1] + mask -> (B, 3, H, W) in [0, 1]; official keys."""
    g = "generator.model."
    h = F.relu(_bn(_conv_reflect(x, sd[g + "1.ffc.convl2l.weight"]), sd, g + "1.bn_l"))
    for i in (2, 3):
        h = F.relu(_bn(_conv_reflect(h, sd[f"{g}{i}.ffc.convl2l.weight"], 2), sd, f"{g}{i}.bn_l"))
    x_l = F.relu(_bn(_conv_reflect(h, sd[g + "4.ffc.convl2l.weight"], 2), sd, g + "4.bn_l"))
    x_g = F.relu(_bn(_conv_reflect(h, sd[g + "4.ffc.convl2g.weight"], 2), sd, g + "4.bn_g"))
    for i in range(5, 5 + n_blocks):
        a_l, a_g = _ffc_bn_act(x_l, x_g, sd, f"{g}{i}.conv1")
        b_l, b_g = _ffc_bn_act(a_l, a_g, sd, f"{g}{i}.conv2")
        x_l, x_g = x_l + b_l, x_g + b_g
    h = torch.cat([x_l, x_g], dim=1)
    j = 5 + n_blocks
    for k in range(3):
        t = j + 1 + 3 * k
        h = F.conv_transpose2d(h, sd[f"{g}{t}.weight"], sd[f"{g}{t}.bias"], stride=2, padding=1, output_padding=1)
        h = F.relu(_bn(h, sd, f"{g}{t + 1}"))
    return torch.sigmoid(F.conv2d(F.pad(h, (3, 3, 3, 3), mode="reflect"), sd[f"{g}{j + 11}.weight"], sd[f"{g}{j + 11}.bias"]))


def reference_predict(sd, image01: np.ndarray, mask: np.ndarray, n_blocks: int) -> np.ndarray:
    """bin/predict.py: pad to a multiple of 8 (numpy symmetric), masked image + mask,
    generator, crop, composite; (3, H, W) and (1, H, W) in [0, 1]."""
    h, w = image01.shape[-2:]
    ph, pw = (-h) % 8, (-w) % 8
    img = np.pad(image01, ((0, 0), (0, ph), (0, pw)), mode="symmetric")
    msk = np.pad(mask, ((0, 0), (0, ph), (0, pw)), mode="symmetric")
    img, msk = torch.from_numpy(img)[None], torch.from_numpy(msk)[None]
    with torch.no_grad():
        pred = reference_generator(sd, torch.cat([img * (1 - msk), msk], dim=1), n_blocks)
    out = msk * pred + (1 - msk) * img
    return out[0, :, :h, :w].numpy()


# -- tests ----------------------------------------------------------------------------------
def test_published_layout_matches_the_zoo_model_keys():
    from zoo.config import resolve_config
    from zoo_plugins.lama.hooks import SPEC
    from zoo_plugins.lama.model import LaMa

    for preset, n in (("big-lama", 18), ("lama-fourier", 9)):
        config, _ = resolve_config(SPEC, preset, {"discriminator": False})
        with torch.device("meta"):
            own = {k: tuple(v.shape) for k, v in LaMa(config).state_dict().items()}
        assert own == published_generator_shapes(n)


def test_import_big_lama_is_complete_strict_and_computes_the_same_function(cli, tmp_path, image_folder):
    EXECUTED.clear()
    gen = random_tensors(published_generator_shapes(18))
    folder = tmp_path / "big-lama"
    lightning_checkpoint(folder / "models" / "best.ckpt", gen)
    (folder / "config.yaml").write_text("generator:\n  kind: ffc_resnet\n")

    # the restricted loader keeps tensors and turns the pickled config into a placeholder
    raw = load_official(folder / "models" / "best.ckpt")
    assert isinstance(raw["hyper_parameters"], Opaque) and not EXECUTED

    out = tmp_path / "big-lama.safetensors"
    result = cli("import", "lama", folder, "--out", out)  # the unpacked folder is accepted
    assert result.exit_code == 0, result.output
    assert not EXECUTED  # nothing from the file ran

    model, config, meta = load_model(out, "lama")
    assert meta.preset == "big-lama" and config.n_blocks == 18 and config.discriminator is False
    assert meta.provenance["kind"] == "imported"
    assert meta.provenance["generator_tensors"] == len(gen)
    assert meta.provenance["ignored_tensors"] == len(OTHER_SHAPES)
    state = model.state_dict()
    assert set(state) == set(gen)  # every published key mapped, none unused, nothing added
    for k, v in gen.items():
        assert torch.equal(state[k], v), k

    # the same function as the official generator, re-stated independently, at a size that
    # needs padding
    g = torch.Generator().manual_seed(3)
    image = torch.rand(1, 3, 27, 30, generator=g)
    mask = torch.zeros(1, 1, 27, 30)
    mask[..., 6:20, 4:22] = 1
    ours = (inpaint(model, image * 2 - 1, mask).images + 1) / 2
    ref = reference_predict(gen, image[0].numpy(), mask[0].numpy(), 18)
    hole = mask[0].expand(3, -1, -1).bool().numpy()
    assert ref[hole].std() > 0.01  # a non-trivial prediction, not a saturated sigmoid
    np.testing.assert_allclose(ours[0].numpy(), ref, atol=2e-5, rtol=1e-4)

    # the converted checkpoint samples through the CLI like any other
    images, masks = image_folder
    result = cli("sample", "lama", "--checkpoint", out, "--images", images, "--masks", masks, "--out", tmp_path / "pred")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "pred").iterdir()) == ["img0.png", "img1.png", "img2.png"]


def test_ffc_block_matches_independent_restatement():
    torch.manual_seed(0)
    block = FFCResnetBlock(32, 0.75).eval()  # 8 local + 24 global channels
    shapes = {f"x.{k}": tuple(v.shape) for k, v in block.state_dict().items()}
    sd = {k[2:]: v for k, v in random_tensors(shapes, seed=5).items()}
    block.load_state_dict(sd)
    x_l, x_g = torch.randn(2, 8, 12, 10), torch.randn(2, 24, 12, 10)
    with torch.no_grad():
        ours_l, ours_g = block((x_l, x_g))
        a_l, a_g = _ffc_bn_act(x_l, x_g, sd, "conv1")
        b_l, b_g = _ffc_bn_act(a_l, a_g, sd, "conv2")
    torch.testing.assert_close(ours_l, x_l + b_l, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(ours_g, x_g + b_g, atol=1e-5, rtol=1e-4)


def test_nine_block_file_imports_as_lama_fourier_and_is_refused_as_big_lama(cli, tmp_path):
    path = lightning_checkpoint(tmp_path / "best.ckpt", random_tensors(published_generator_shapes(9)))
    result = cli("import", "lama", path, "--out", tmp_path / "f.safetensors")
    assert result.exit_code == 0, result.output
    assert load_model(tmp_path / "f.safetensors", "lama")[2].preset == "lama-fourier"
    result = cli("import", "lama", path, "--out", tmp_path / "b.safetensors", "--preset", "big-lama")
    assert result.exit_code == 2
    assert "does not match the lama big-lama generator" in result.output
    assert "missing (e.g. generator.model." in result.output and "unused" in result.output
    assert not (tmp_path / "b.safetensors").exists()


@pytest.mark.parametrize(
    "content, message",
    [
        ({"model": {"w": torch.zeros(2)}}, "is not a LaMa Lightning checkpoint (no 'state_dict' entry)"),
        ({"state_dict": {"discriminator.model0.0.weight": torch.zeros(2)}}, "has no generator.model.* weights"),
        ([1, 2, 3], "is not a LaMa Lightning checkpoint"),
    ],
)
def test_other_layouts_are_refused_in_one_line(cli, tmp_path, content, message):
    path = tmp_path / "other.ckpt"
    torch.save(content, path)
    result = cli("import", "lama", path, "--out", tmp_path / "x.safetensors")
    assert result.exit_code == 2
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_unknown_block_count_asks_for_a_preset_and_folders_need_best_ckpt(cli, tmp_path):
    shapes = {k: v for k, v in published_generator_shapes(9).items() if not k.startswith(("generator.model.13.", "generator.model.12."))}
    path = lightning_checkpoint(tmp_path / "odd.ckpt", random_tensors(shapes))
    result = cli("import", "lama", path, "--out", tmp_path / "x.safetensors")
    assert result.exit_code == 2 and "n_blocks=7" in result.output and "pass --preset" in result.output
    (tmp_path / "empty").mkdir()
    result = cli("import", "lama", tmp_path / "empty", "--out", tmp_path / "x.safetensors")
    assert result.exit_code == 2 and "holds no models/best.ckpt" in result.output
