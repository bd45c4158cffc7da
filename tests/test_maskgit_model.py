"""maskgit: mask schedules, the masked-token loss, decoding, sampling, checkpoints."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from zoo.config import apply_overrides
from zoo.errors import ZooError
from zoo_plugins.maskgit.config import PRESETS, SCHEDULES, MaskGITConfig
from zoo_plugins.maskgit.model import Attention, MaskGIT
from zoo_plugins.maskgit.sample import decode, sample, score, token_holes
from zoo_plugins.maskgit.schedules import gamma, masked_count
from zoo_plugins.maskgit.train import masked_token_loss, random_token_mask


def tiny(**kw) -> MaskGITConfig:
    return apply_overrides(MaskGITConfig(), {**PRESETS["tiny"], **kw})


def shapes_batch(n: int = 4, size: int = 32) -> torch.Tensor:
    from zoo.data import open_data

    data = open_data("shapes", resolution=size, split="train", seed=0)
    return torch.stack([data[i]["image"] for i in range(n)])


@pytest.mark.parametrize("name", SCHEDULES)
def test_schedule_end_points_and_monotone(name):
    n = 64
    start = 1 - 1 / n if name == "exp" else 1.0  # exp: 1 - 2**(-log2 N), as the official schedule
    assert gamma(name, 0.0, n) == pytest.approx(start)
    assert gamma(name, 1.0, n) == 0.0  # exactly, so the last step leaves nothing masked
    assert masked_count(name, 1.0, n) == 0
    values = [gamma(name, i / 200, n) for i in range(201)]
    assert all(a >= b for a, b in zip(values, values[1:])), name
    assert all(0.0 <= v <= 1.0 for v in values)
    assert values[100] < start  # strictly moves


def test_schedule_shapes_and_bad_name():
    assert gamma("cosine", 0.5) == pytest.approx(math.cos(math.pi / 4))
    assert gamma("linear", 0.25) == pytest.approx(0.75)
    assert gamma("square", 0.5) == pytest.approx(0.75)
    assert gamma("cubic", 0.5) == pytest.approx(0.875)
    assert gamma("sqrt", 0.25) == pytest.approx(0.5)
    assert gamma("log", 0.5, 16) == pytest.approx(0.25)
    with pytest.raises(ZooError, match="valid choices: cosine"):
        gamma("quartic", 0.5)


def test_training_masks_ceil_gamma_r_n_tokens():
    g = torch.Generator().manual_seed(0)
    masked, r = random_token_mask(64, 49, "cosine", generator=g)
    want = torch.tensor([max(1, math.ceil(math.cos(math.pi / 2 * float(x)) * 49 - 1e-9)) for x in r])
    assert torch.equal(masked.sum(1), want)
    assert len(set(masked.sum(1).tolist())) > 10  # r varies per image


def test_loss_scores_only_masked_tokens():
    torch.manual_seed(0)
    logits, targets = torch.randn(2, 16, 10), torch.randint(0, 10, (2, 16))
    masked = torch.zeros(2, 16, dtype=torch.bool)
    masked[0, :5], masked[1, 7:] = True, True
    loss = masked_token_loss(logits, targets, masked, 0.1)
    changed = torch.where(masked[..., None], logits, torch.randn_like(logits) * 50)  # kept tokens' logits anything
    assert torch.equal(masked_token_loss(changed, targets, masked, 0.1), loss)
    want = F.cross_entropy(logits[masked], targets[masked], label_smoothing=0.1)
    assert torch.allclose(loss, want)
    moved = logits.clone()
    moved[0, 0, targets[0, 0]] += 5.0  # a masked token's logits do count
    assert not torch.equal(masked_token_loss(moved, targets, masked, 0.1), loss)
    assert not torch.allclose(masked_token_loss(logits, targets, masked, 0.0), loss)  # smoothing is applied


def test_attention_is_sdpa_of_the_projections():
    torch.manual_seed(0)
    att = Attention(16, 4, 0.0).eval()
    x = torch.randn(2, 5, 16)
    q, k, v = att.qkv(x).view(2, 5, 3, 4, 4).permute(2, 0, 3, 1, 4)
    w = (q @ k.transpose(-1, -2) / 2.0).softmax(-1)  # no causal mask: every token sees every token
    want = att.proj((w @ v).transpose(1, 2).reshape(2, 5, 16))
    assert torch.allclose(att(x), want, atol=1e-6)


def random_model(cfg: MaskGITConfig) -> MaskGIT:
    torch.manual_seed(0)
    return MaskGIT(cfg).eval()


@pytest.mark.parametrize("schedule,sweet", [(s, 0) for s in SCHEDULES] + [("cosine", 3)])
def test_decode_keeps_known_tokens_and_fills_every_mask(schedule, sweet):
    cfg = tiny(schedule=schedule, total_iter=8, sweet_spot=sweet)
    model = random_model(cfg)
    tokens = torch.randint(0, cfg.codebook_size, (3, 64))
    unknown = torch.rand(3, 64, generator=torch.Generator().manual_seed(1)) < torch.tensor([[0.2], [0.6], [1.0]])
    res = decode(model.transformer, tokens, unknown, cfg, torch.Generator().manual_seed(0))
    assert torch.equal(res.tokens[~unknown], tokens[~unknown])
    assert not (res.tokens == model.mask_id).any() and int(res.tokens.max()) < cfg.codebook_size
    assert res.nfe == (sweet or 8) and len(res.masked_per_step) == res.nfe
    for prev, now in zip([unknown.sum(1).tolist()] + res.masked_per_step, res.masked_per_step):
        assert all(b < a or a == 0 for a, b in zip(prev, now))  # every step decides at least one token
    if schedule == "linear" and not sweet:  # ceil(N * (1 - (t+1)/T)) still masked after step t
        n = int(unknown[2].sum())
        assert [s[2] for s in res.masked_per_step[:-1]] == [math.ceil(n * (1 - (t + 1) / 8) - 1e-9) for t in range(7)]


def test_token_holes_margin():
    m = torch.zeros(1, 1, 16, 16)
    m[..., 5:7, 5:7] = 1
    assert token_holes(m, 4, 0)[0].nonzero().tolist() == [[1, 1]]
    assert token_holes(m, 4, 1)[0].nonzero().tolist() == [[1, 1]]  # pixels 4..7: still cell 1
    grown = token_holes(m, 4, 2)[0]  # pixels 3..8 reach cells 0 and 2 too
    assert grown[:3, :3].all() and grown.sum() == 9


def test_sample_keeps_known_pixels_never_reads_the_hole_and_is_seeded():
    cfg = tiny()
    model = random_model(cfg)
    x = shapes_batch(2, 40)[..., :36]  # 40 x 36: not the training grid (positions are resized)
    holes = torch.zeros(2, 1, 40, 36)
    holes[..., 10:25, 8:20] = 1
    a = sample(model, cfg, x, holes, torch.Generator().manual_seed(3))
    assert torch.equal(a.images * (1 - holes), x * (1 - holes))
    assert a.info["nfe"] == cfg.total_iter
    b = sample(model, cfg, x + holes * torch.randn_like(x), holes, torch.Generator().manual_seed(3))  # other hole content
    assert torch.equal(a.images * holes, b.images * holes)  # the hole's content is never read
    c = sample(model, cfg, x, holes, torch.Generator().manual_seed(4))
    assert not torch.equal(a.images, c.images)  # another seed, another completion


def test_transformer_loss_falls_on_a_tiny_token_set():
    cfg = tiny()
    torch.manual_seed(0)
    tr = MaskGIT(cfg).transformer.train()
    tokens = torch.randint(0, cfg.codebook_size, (4, 64))
    opt = torch.optim.AdamW(tr.parameters(), lr=3e-3, betas=cfg.betas)
    g = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(60):
        masked, _ = random_token_mask(4, 64, "cosine", generator=g)
        logits = tr(torch.where(masked, torch.full_like(tokens, tr.mask_id), tokens))
        loss = masked_token_loss(logits, tokens, masked, 0.1)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-5:]) / 5 < 0.5 * sum(losses[:5]) / 5, losses[::10]


def test_score_and_checkpoint_round_trip(tmp_path):
    from zoo.checkpoint import load_model, save_checkpoint
    from zoo.runner import checkpoint_meta

    cfg = tiny()
    model = random_model(cfg)
    path = save_checkpoint(tmp_path / "m.safetensors", model.state_dict(), checkpoint_meta("maskgit", cfg, "tiny", 5, {"kind": "test"}))
    loaded, cfg2, meta = load_model(path, "maskgit")
    assert cfg2 == cfg and meta.step == 5
    x = shapes_batch(2)
    holes = torch.zeros(2, 1, 32, 32)
    holes[..., 8:20, 8:24] = 1
    a = sample(model, cfg, x, holes, torch.Generator().manual_seed(0))
    b = sample(loaded, cfg2, x, holes, torch.Generator().manual_seed(0))
    assert torch.equal(a.images, b.images)
    s = score(loaded, cfg2, x, holes)
    assert set(s) == {"tokenizer_psnr", "tokenizer_ceiling_psnr", "hole_token_accuracy", "hole_token_nll"}
    assert 0 <= s["hole_token_accuracy"] <= 1 and s["hole_token_nll"] > 0 and s["tokenizer_psnr"] > 0
    # composited: the known pixels are exact, so the ceiling is above the whole-image PSNR
    assert s["tokenizer_ceiling_psnr"] > s["tokenizer_psnr"]


@pytest.mark.parametrize("override,message", [
    ({"schedule": "quartic"}, "valid choices: cosine, linear, square, cubic, sqrt, log, exp"),
    ({"resolution": 30}, "resolution=30 is invalid; it must be a multiple of the tokenizer's downsampling 4"),
    ({"dim": 66}, "dim=66 is invalid; it must be divisible by heads=4"),
    ({"sweet_spot": 9}, "sweet_spot=9 is invalid"),
    ({"stage": "transformer"}, "the transformer stage needs --set tokenizer=PATH"),
    ({"total_iter": 0}, "total_iter=0 is invalid"),
])
def test_bad_config_is_one_line(override, message):
    with pytest.raises(ZooError) as err:
        tiny(**override).validate()
    assert message in str(err.value) and "\n" not in str(err.value)


def test_tokenizer_stage_learns_and_gan_starts_after_warmup():
    from zoo_plugins.maskgit.train import TokenizerTask

    cfg = tiny(disc_start=3)
    torch.manual_seed(0)
    model = MaskGIT(cfg).train()
    task = TokenizerTask(model, cfg)
    opts = task.optimizers()
    batch = {"image": shapes_batch(2), "mask": torch.zeros(2, 1, 32, 32)}
    d0, logs0 = task.d_loss(batch, 0)
    assert float(d0.detach()) == 0.0 and "g_adv" not in task.vq_loss(batch, 0)[1]  # warm-up: no GAN terms
    assert "d_hinge" in task.d_loss(batch, 3)[1] and "g_adv" in task.vq_loss(batch, 3)[1]
    first = None
    for step in range(40):
        loss, logs = task.vq_loss(batch, 0)
        opts["tokenizer"].zero_grad()
        loss.backward()
        opts["tokenizer"].step()
        first = first if first is not None else logs["rec_l1"]
    assert logs["rec_l1"] < 0.85 * first, (first, logs)


def test_perceptual_loss_without_its_weights_is_one_line(monkeypatch):
    from zoo.metrics.weights import hub_checkpoint
    from zoo.metrics.perceptual import backbone_url
    from zoo_plugins.maskgit.train import TokenizerTask

    if hub_checkpoint(backbone_url("alex")).is_file():
        pytest.skip("the LPIPS backbone is present here")
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    cfg = tiny(perceptual_weight=0.1)
    with pytest.raises(ZooError, match="alexnet") as err:
        TokenizerTask(MaskGIT(cfg), cfg)
    assert "\n" not in str(err.value)
