"""`zoo import maskgit VQGAN.ckpt` and `--set tokenizer=VQGAN.ckpt`: a taming-transformers
Lightning checkpoint in the official key layout (names and shapes written by the official
modules: tests/fixtures/taming_vqgan_keys.json, from benchmarks/maskgit_taming/equivalence.py)
with random values converts strictly into the diffusers VQModel, drops loss.*, executes
nothing, and a --set that contradicts the file's codebook is one line, exit 2. Equality of
encode/decode with the official code itself is benchmarks/maskgit_taming/ (run outside tests)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from zoo.checkpoint import load_checkpoint, load_model
from zoo_plugins.maskgit.convert import read_taming, to_diffusers, vq_config

FIXTURE = Path(__file__).parent / "fixtures" / "taming_vqgan_keys.json"
EXECUTED: list[str] = []


def _record(what: str) -> str:
    EXECUTED.append(what)
    return what


class CallbackState:
    """Stands in for Lightning's pickled callback state: unpickling it normally runs _record."""

    def __reduce__(self):
        return (_record, ("unpickled CallbackState",))


def official_state(seed: int = 0) -> dict[str, torch.Tensor]:
    layout = json.loads(FIXTURE.read_text())
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(shape, generator=g) * 0.1 for k, shape in layout["keys"]}


@pytest.fixture
def vqgan(tmp_path) -> Path:
    path = tmp_path / "last.ckpt"
    torch.save({"state_dict": official_state(), "global_step": 7, "callbacks": {"ModelCheckpoint": CallbackState()}}, path)
    return path


def test_key_map_and_architecture_read_off_the_file(vqgan):
    from diffusers import VQModel

    taming, dropped = read_taming(vqgan)
    assert dropped == 16 and not any(k.startswith("loss.") for k in taming)  # the discriminator's tensors
    assert EXECUTED == []
    conf = vq_config(taming)
    layout = json.loads(FIXTURE.read_text())
    dd = layout["ddconfig"]
    assert conf["block_out_channels"] == [dd["ch"] * m for m in dd["ch_mult"]]
    assert conf["layers_per_block"] == dd["num_res_blocks"] and conf["latent_channels"] == dd["z_channels"]
    assert (conf["num_vq_embeddings"], conf["vq_embed_dim"]) == (layout["n_embed"], layout["embed_dim"])
    # attention at 8 px of 32: the last encoder level, the first decoder level (taming's up.2)
    assert conf["down_block_types"] == ["DownEncoderBlock2D", "DownEncoderBlock2D", "AttnDownEncoderBlock2D"]
    assert conf["up_block_types"] == ["AttnUpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"]
    mapped = to_diffusers(taming)
    own = VQModel.from_config(conf).state_dict()
    assert set(mapped) == set(own) and all(mapped[k].shape == own[k].shape for k in own)
    pairs = {
        "decoder.up.2.block.0.conv1.weight": "decoder.up_blocks.0.resnets.0.conv1.weight",
        "decoder.up.0.block.1.conv2.bias": "decoder.up_blocks.2.resnets.1.conv2.bias",
        "decoder.up.2.upsample.conv.weight": "decoder.up_blocks.0.upsamplers.0.conv.weight",
        "encoder.down.1.block.0.nin_shortcut.weight": "encoder.down_blocks.1.resnets.0.conv_shortcut.weight",
        "encoder.down.0.downsample.conv.bias": "encoder.down_blocks.0.downsamplers.0.conv.bias",
        "encoder.mid.block_2.norm1.weight": "encoder.mid_block.resnets.1.norm1.weight",
        "encoder.norm_out.bias": "encoder.conv_norm_out.bias",
        "quantize.embedding.weight": "quantize.embedding.weight",
    }
    for theirs, mine in pairs.items():
        assert torch.equal(mapped[mine], taming[theirs]), theirs
    for theirs, mine in {"encoder.down.2.attn.0.proj_out": "encoder.down_blocks.2.attentions.0.to_out.0", "decoder.mid.attn_1.q": "decoder.mid_block.attentions.0.to_q",
                         "decoder.up.2.attn.1.norm": "decoder.up_blocks.0.attentions.1.group_norm"}.items():
        w = taming[theirs + ".weight"]
        assert torch.equal(mapped[mine + ".weight"], w[:, :, 0, 0] if w.dim() == 4 else w)


def test_zoo_import_maskgit_vqgan(cli, vqgan, tmp_path):
    out = tmp_path / "maskgit-vq.safetensors"
    r = cli("import", "maskgit", vqgan, "--preset", "tiny", "--out", out)
    assert r.exit_code == 0, r.output
    assert "16 loss/discriminator tensors dropped" in r.output and "untrained" in r.output
    assert EXECUTED == []
    model, cfg, meta = load_model(out, "maskgit")
    assert cfg.codebook_size == 64 and model.transformer.bias.shape == (64,)  # logits over the file's codes
    assert meta.provenance["format"] == "taming-vqgan-ckpt"
    _, tensors = load_checkpoint(out, "maskgit")
    taming = official_state()
    assert torch.equal(tensors["tokenizer.quantize.embedding.weight"], taming["quantize.embedding.weight"])
    assert torch.equal(tensors["tokenizer.encoder.down_blocks.2.attentions.0.to_k.weight"], taming["encoder.down.2.attn.0.k.weight"][:, :, 0, 0])
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        tokens = model.encode_tokens(x)
        assert tokens.shape == (2, 8, 8) and int(tokens.max()) < 64
        assert model.decode_tokens(tokens).shape == (2, 3, 32, 32)
    # the same file twice: the same checkpoint (the untrained transformer is seeded)
    again = tmp_path / "again.safetensors"
    assert cli("import", "maskgit", vqgan, "--preset", "tiny", "--out", again).exit_code == 0
    assert torch.equal(load_checkpoint(again, "maskgit")[1]["transformer.pos_emb"], tensors["transformer.pos_emb"])


def test_codebook_size_that_contradicts_the_file_is_one_line(cli, vqgan, tmp_path):
    out = tmp_path / "x.safetensors"
    r = cli("import", "maskgit", vqgan, "--preset", "tiny", "--set", "codebook_size=16384", "--out", out)
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1, r.output
    assert "codebook_size=64" in r.output and "16384" in r.output and not out.exists()
    r = cli("train", "maskgit", "--data", "shapes", "--preset", "tiny", "--set", f"tokenizer={vqgan}", "--set", "codebook_size=1024",
            "--steps", "2", "--batch-size", "2", "--out", tmp_path / "run")
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1, r.output
    assert "codebook_size=64" in r.output and "1024" in r.output


def test_not_a_vqgan_is_one_line(cli, tmp_path):
    path = tmp_path / "other.ckpt"
    torch.save({"state_dict": {"generator.model.1.weight": torch.zeros(2, 2)}}, path)
    r = cli("import", "maskgit", path, "--preset", "tiny", "--out", tmp_path / "x.safetensors")
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1 and "not a taming-transformers VQGAN" in r.output, r.output
    state = official_state()
    state["quantize.embedding.weight"] = torch.zeros(64, 9)  # codes of another width than quant_conv gives
    torch.save({"state_dict": state}, path)
    r = cli("import", "maskgit", path, "--preset", "tiny", "--out", tmp_path / "x.safetensors")
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1 and "of another shape" in r.output, r.output


def test_vqgan_ckpt_as_tokenizer_trains_the_transformer_only(cli, vqgan, tmp_path):
    run = tmp_path / "run"
    r = cli("train", "maskgit", "--data", "shapes", "--preset", "tiny", "--set", f"tokenizer={vqgan}", "--steps", "2", "--batch-size", "2", "--out", run)
    assert r.exit_code == 0, r.output
    assert [s["name"] for s in json.loads((run / "stages.json").read_text())["stages"]] == ["transformer"]
    meta, tensors = load_checkpoint(run / "model.safetensors", "maskgit")
    assert meta.config["codebook_size"] == 64 and meta.config["tokenizer_config"]["down_block_types"][-1] == "AttnDownEncoderBlock2D"
    mapped = to_diffusers(read_taming(vqgan)[0])
    assert all(torch.equal(tensors[f"tokenizer.{k}"], v) for k, v in mapped.items())  # frozen in stage 2
    assert EXECUTED == []


def test_zoo_fetch_imports_a_vqgan_entry(cli, vqgan, tmp_path, monkeypatch):
    import yaml

    reg = yaml.safe_load((Path(__file__).parents[1] / "zoo" / "registry.yaml").read_text())
    reg["methods"]["maskgit"]["checkpoints"] = {"tiny-vqgan": {
        "url": vqgan.as_uri() + "?dl=1", "file": "vqgan_tiny.ckpt", "sha256": "unknown", "sha256_reason": "none published",
        "format": "taming-vqgan-ckpt", "license": "MIT", "resolution": 32, "preset": "tiny"}}
    (tmp_path / "registry.yaml").write_text(yaml.safe_dump(reg))
    monkeypatch.setenv("ZOO_REGISTRY", str(tmp_path / "registry.yaml"))
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("ZOO_OFFLINE", raising=False)
    r = cli("fetch", "maskgit/tiny-vqgan")
    assert r.exit_code == 0 and "unverified" in r.output, r.output
    assert (tmp_path / "cache" / "downloads" / "maskgit" / "tiny-vqgan" / "vqgan_tiny.ckpt").is_file()  # named by `file:`
    meta, tensors = load_checkpoint(tmp_path / "cache" / "checkpoints" / "maskgit-tiny-vqgan.safetensors", "maskgit")
    assert meta.provenance["format"] == "taming-vqgan-ckpt" and meta.provenance["unverified"] == "none published"
    assert torch.equal(tensors["tokenizer.quantize.embedding.weight"], official_state()["quantize.embedding.weight"])


def test_a_vqgan_missing_part_of_its_layout_is_one_line(cli, tmp_path):
    state = {k: v for k, v in official_state().items() if not k.startswith("post_quant_conv.")}
    path = tmp_path / "partial.ckpt"
    torch.save({"state_dict": state}, path)
    r = cli("import", "maskgit", path, "--preset", "tiny", "--out", tmp_path / "x.safetensors")
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1 and "post_quant_conv.weight" in r.output, r.output
