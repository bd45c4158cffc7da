"""Both MaskGIT stages on the shared engine, one after the other, in one ``zoo train``.

Stage 1, tokenizer (VQGAN recipe), two phases per step:
    D:  hinge  relu(1 - D(x)) + relu(1 + D(x_rec))                     (0 before disc_start)
    VQ: l1 |x_rec - x| + l2 (x_rec - x)^2 + perceptual LPIPS + commit (codebook + 0.25 commitment)
        + adv * -D(x_rec)                                              (after disc_start)
Stage 2, transformer, one phase per step (MaskGIT Sec. 3.2):
    tokens = tokenizer(x) (frozen); r ~ U(0, 1); ceil(gamma(r) * N) random tokens -> [MASK]
    L = cross-entropy with label smoothing on the masked tokens only

Run folder::

    RUN/stages.json                 which stages ran, their steps and folders
    RUN/tokenizer/  stage.json  log.jsonl  events.jsonl  checkpoints/step_N/
    RUN/transformer/ stage.json ...                        (each checkpoint holds the whole model)
    RUN/model.safetensors           written by the core from what this returns
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import torch
import torch.nn.functional as F

from zoo.errors import ZooError
from zoo.spec import TrainContext, TrainResult
from zoo.train import Phase, TrainOptions, TrainTask, fit
from zoo.train.budget import checkpoint_budget
from zoo_plugins.maskgit.config import MaskGITConfig
from zoo_plugins.maskgit.model import MaskGIT
from zoo_plugins.maskgit.schedules import masked_count

from zoo.train.state import STAGE_MARKER as STAGE_FILE  # maps RUN/<stage>/ back to RUN on --resume


#: the stages share one model: stage 2 calls the tokenizer outside its forward (encode and
#: codebook lookup), which a tokenizer sharded in stage 1 cannot serve
FSDP_REFUSAL = "maskgit cannot train with --strategy fsdp (its two stages share one model and stage 2 reads the tokenizer outside its forward); use --strategy ddp"


# -- the stage-2 loss, as functions the tests call directly ------------------------------------
def random_token_mask(batch: int, n: int, schedule: str, generator: torch.Generator | None = None, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """r ~ U(0, 1) per image; ceil(gamma(r) * n) tokens chosen uniformly -> (masked (B, n) bool, r (B,))."""
    r = torch.rand(batch, generator=generator)
    counts = torch.tensor([max(1, masked_count(schedule, float(x), n)) for x in r])  # (B,) at least one
    ranks = torch.rand(batch, n, generator=generator).argsort(1).argsort(1)  # a random permutation per row
    return (ranks < counts[:, None]).to(device), r


def masked_token_loss(logits: torch.Tensor, targets: torch.Tensor, masked: torch.Tensor, label_smoothing: float) -> torch.Tensor:
    """Cross-entropy over the masked tokens only: logits (B, N, K), targets (B, N), masked (B, N)."""
    return F.cross_entropy(logits[masked].float(), targets[masked], label_smoothing=label_smoothing)


# -- stage 1 ----------------------------------------------------------------------------------
class TokenizerTask(TrainTask):
    def __init__(self, model: MaskGIT, config: MaskGITConfig) -> None:
        self.model, self.config = model, config
        self.ema_decay = config.ema_decay
        self.lpips = None
        if config.perceptual_weight > 0:
            from zoo.metrics.perceptual import lpips_model

            self.lpips = lpips_model("alex", "cpu")  # a one-line ZooError naming the file when its weights are missing

    def to(self, device: torch.device) -> None:
        self.model.to(device)
        if self.lpips is not None:
            self.lpips.to(device)

    def fsdp_roots(self):
        raise ZooError(FSDP_REFUSAL)

    def optimizers(self):
        c = self.config
        return {
            "discriminator": torch.optim.Adam(self.model.discriminator.parameters(), lr=c.tokenizer_lr, betas=tuple(c.tokenizer_betas)),
            "tokenizer": torch.optim.Adam(self.model.tokenizer.parameters(), lr=c.tokenizer_lr, betas=tuple(c.tokenizer_betas)),
        }

    def phases(self):
        return [Phase("discriminator", self.d_loss), Phase("tokenizer", self.vq_loss)]

    def d_loss(self, batch: dict, step: int):
        D = self.model.discriminator
        D.requires_grad_(True)
        x = batch["image"]
        if step < self.schedule_steps(self.config.disc_start) or self.config.adv_weight <= 0:
            return D(x).mean() * 0.0, {}  # warm-up: no update (zero gradients)
        with torch.no_grad():
            rec = self.model.tokenizer(x).sample
        real, fake = D(x), D(rec)
        loss = 0.5 * (F.relu(1 - real).mean() + F.relu(1 + fake).mean())
        return loss, {"d_hinge": loss.item()}

    def vq_loss(self, batch: dict, step: int):
        c, D = self.config, self.model.discriminator
        D.requires_grad_(False)
        x = batch["image"]
        out = self.model.tokenizer(x)  # one forward: encode, quantize, decode
        rec, commit = out.sample, out.commit_loss.mean()
        l1 = (rec - x).abs().mean()
        loss = c.l1_weight * l1 + c.commit_weight * commit
        logs = {"rec_l1": l1.item(), "vq_commit": commit.item()}
        if c.l2_weight > 0:
            l2 = (rec - x).pow(2).mean()
            loss = loss + c.l2_weight * l2
            logs["rec_l2"] = l2.item()
        if self.lpips is not None:
            p = self.lpips(rec.float(), x.float()).mean()
            loss = loss + c.perceptual_weight * p
            logs["lpips"] = p.item()
        if step >= self.schedule_steps(c.disc_start) and c.adv_weight > 0:
            g = -D(rec).mean()
            loss = loss + c.adv_weight * g
            logs["g_adv"] = g.item()
        return loss, logs

    @torch.no_grad()
    def validation_sample(self, images, masks, generator):
        """The tokenizer's reconstruction, composited: the ceiling stage 2 can reach."""
        return images * (1 - masks) + self.model.reconstruct(images).clamp(-1, 1) * masks


# -- stage 2 ------------------------------------------------------------------------------------
class TransformerTask(TrainTask):
    def __init__(self, model: MaskGIT, config: MaskGITConfig) -> None:
        self.model, self.config = model, config
        self.ema_decay = config.ema_decay
        model.tokenizer.requires_grad_(False)
        model.discriminator.requires_grad_(False)

    def fsdp_roots(self):
        raise ZooError(FSDP_REFUSAL)

    def optimizers(self):
        c = self.config
        params = [p for p in self.model.transformer.parameters() if p.requires_grad]
        decay = [p for p in params if p.ndim >= 2]
        rest = [p for p in params if p.ndim < 2]
        groups = [{"params": decay, "weight_decay": c.weight_decay}, {"params": rest, "weight_decay": 0.0}]
        self._optimizer = torch.optim.AdamW(groups, lr=c.lr, betas=tuple(c.betas))
        return {"transformer": self._optimizer}

    def schedulers(self):
        w = self.config.warmup_steps
        if w <= 0:
            return {}
        # linear warm-up (over the same share of the steps a --time-budget allows)
        return {"transformer": torch.optim.lr_scheduler.LambdaLR(self._optimizer, lambda s: min(1.0, (s + 1) / self.schedule_steps(w)))}

    def phases(self):
        return [Phase("transformer", self.loss)]

    def loss(self, batch: dict, step: int):
        c, model = self.config, self.model
        with torch.no_grad():
            tokens = model.encode_tokens(batch["image"]).flatten(1)  # (B, N)
        B, N = tokens.shape
        masked, _ = random_token_mask(B, N, c.train_schedule, device=tokens.device)
        inp = torch.where(masked, torch.full_like(tokens, model.mask_id), tokens)
        logits = model.transformer(inp)  # (B, N, K)
        loss = masked_token_loss(logits, tokens, masked, c.label_smoothing)
        acc = (logits[masked].argmax(-1) == tokens[masked]).float().mean()
        return loss, {"ce_masked": loss.item(), "acc_masked": acc.item(), "mask_ratio": masked.float().mean().item()}

    @torch.no_grad()
    def validation_sample(self, images, masks, generator):
        from zoo_plugins.maskgit.sample import sample

        return sample(self.model, self.config, images, masks, generator).images


TASKS = {"tokenizer": TokenizerTask, "transformer": TransformerTask}


# -- an existing tokenizer (--set tokenizer=PATH) ---------------------------------------------------
_VQ_FIELDS = ("vq_channels", "vq_layers_per_block", "vq_latent_channels", "vq_embed_dim", "codebook_size", "vq_norm_groups", "vq_mid_attention", "tokenizer_config")


def load_tokenizer(cfg: MaskGITConfig, preset: str | None = None) -> dict[str, torch.Tensor]:
    """Read ``cfg.tokenizer`` and return the tokenizer's weights (keys without ``tokenizer.``).

    The tokenizer's architecture fields of ``cfg`` are set from the source **in place**, so
    the config the core writes into the final checkpoint rebuilds this tokenizer without the
    source. A diffusers VQModel folder or a taming-transformers VQGAN ``.ckpt`` fills
    ``tokenizer_config``; a maskgit checkpoint (or a run folder holding one) gives its
    ``vq_*`` fields. A VQGAN whose codebook (or code / latent width) differs from what
    ``cfg`` sets away from ``preset``'s value (a ``--set``) is refused."""
    path = Path(cfg.tokenizer).expanduser()
    if path.is_dir() and (path / "config.json").is_file():
        return _load_diffusers_vq(cfg, path)
    if path.is_file() and path.suffix != ".safetensors":
        return _load_taming_vq(cfg, path, preset)
    ckpt = path
    if path.is_dir():
        ckpt = path / "model.safetensors"
        if not ckpt.is_file():
            from zoo.train.state import list_checkpoints

            found = list_checkpoints(path / "tokenizer") or list_checkpoints(path)
            ckpt = found[-1] / "model.safetensors" if found else ckpt
    if not ckpt.is_file():
        raise ZooError(f"maskgit: tokenizer={cfg.tokenizer!r} is neither a diffusers VQModel folder (config.json) nor a maskgit checkpoint or run folder")
    from zoo.checkpoint import load_checkpoint

    meta, tensors = load_checkpoint(ckpt, "maskgit")
    theirs = meta.config
    for name in _VQ_FIELDS:
        if name in theirs:
            value = theirs[name]
            setattr(cfg, name, tuple(value) if name == "vq_channels" else value)
    sd = {k[len("tokenizer."):]: v for k, v in tensors.items() if k.startswith("tokenizer.")}
    if not sd:
        raise ZooError(f"maskgit: {ckpt} holds no tokenizer.* weights")
    return sd


def _load_taming_vq(cfg: MaskGITConfig, path: Path, preset: str | None) -> dict[str, torch.Tensor]:
    from zoo_plugins.maskgit.config import PRESETS
    from zoo_plugins.maskgit.convert import check_asked, load_vqgan

    conf, weights, _ = load_vqgan(path, cfg.resolution)
    base = dataclasses.replace(MaskGITConfig(), **PRESETS.get(preset or "", {}))
    asked = {k: getattr(cfg, k) for k in ("codebook_size", "vq_embed_dim", "vq_latent_channels") if getattr(cfg, k) != getattr(base, k)}
    check_asked(path, conf, asked)
    cfg.tokenizer_config = conf
    cfg.codebook_size, cfg.vq_embed_dim, cfg.vq_latent_channels = conf["num_vq_embeddings"], conf["vq_embed_dim"], conf["latent_channels"]
    return weights


def _load_diffusers_vq(cfg: MaskGITConfig, folder: Path) -> dict[str, torch.Tensor]:
    import warnings

    from diffusers import VQModel

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            vq = VQModel.from_pretrained(str(folder), local_files_only=True)
    except Exception as exc:  # noqa: BLE001 - a wrong folder: one line
        first = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise ZooError(f"maskgit: tokenizer={str(folder)!r} is not a loadable diffusers VQModel folder ({first})") from None
    conf = {k: (list(v) if isinstance(v, tuple) else v) for k, v in dict(vq.config).items() if not k.startswith("_")}
    if conf.get("in_channels", 3) != 3 or conf.get("out_channels", 3) != 3:
        raise ZooError(f"maskgit: tokenizer={str(folder)!r} has in/out channels {conf.get('in_channels')}/{conf.get('out_channels')}; an RGB VQModel (3/3) is needed")
    cfg.tokenizer_config = conf
    cfg.codebook_size = int(conf.get("num_vq_embeddings", cfg.codebook_size))
    return {k: v.detach().float().clone() for k, v in vq.state_dict().items()}


# -- both stages ----------------------------------------------------------------------------------
def stage_steps(cfg: MaskGITConfig, total: int) -> dict[str, int]:
    """``zoo train --steps`` over the stages that run: one stage takes them all; both split
    them in the ratio tokenizer_steps : transformer_steps."""
    stages = cfg.stages
    if len(stages) == 1:
        return {stages[0]: total}
    if total < 2:
        raise ZooError(f"maskgit: --steps {total} cannot train both stages; give at least 2 (or --set stage=tokenizer|transformer)")
    share = cfg.tokenizer_steps / max(1, cfg.tokenizer_steps + cfg.transformer_steps)
    first = min(total - 1, max(1, round(total * share)))
    return {"tokenizer": first, "transformer": total - first}


def stage_budgets(cfg: MaskGITConfig, budget_s: float | None) -> dict[str, float | None]:
    """``--time-budget`` over the stages that run: one stage takes it all; both give the
    tokenizer ``budget_split`` of it (the transformer's figure here is the whole budget: it
    gets what the tokenizer left, see :func:`train`)."""
    if budget_s is None:
        return {s: None for s in cfg.stages}
    if len(cfg.stages) == 1:
        return {cfg.stages[0]: budget_s}
    return {"tokenizer": budget_s * cfg.budget_split, "transformer": budget_s}


def _main() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def _write_json(path: Path, obj) -> None:
    from zoo.fsutil import write_text

    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, json.dumps(obj, indent=2))


def train(ctx: TrainContext) -> TrainResult:
    cfg: MaskGITConfig = ctx.config
    cfg.validate()
    tokenizer_weights = load_tokenizer(cfg, ctx.preset) if cfg.tokenizer else None
    cfg.validate()  # the tokenizer may have changed the token size
    model = MaskGIT(cfg)
    if tokenizer_weights is not None:
        from zoo.checkpoint import load_state_strict

        load_state_strict(model.tokenizer, tokenizer_weights, what=f"tokenizer {cfg.tokenizer}")
    run = Path(ctx.out_dir)
    steps = stage_steps(cfg, ctx.steps)
    options = ctx.options or TrainOptions()
    # on --resume: continue the last stage that saved a checkpoint; the earlier ones are done
    # (that checkpoint holds the whole model, tokenizer included) and keep the steps they ran
    from zoo.train.state import list_checkpoints

    latest = {s: list_checkpoints(run / s) for s in cfg.stages}
    resume_at = max((i for i, s in enumerate(cfg.stages) if latest[s]), default=-1) if options.resume else -1
    budget = getattr(options, "time_budget_s", None)
    budgets = stage_budgets(cfg, budget)
    if resume_at > 0:
        for s in cfg.stages[:resume_at]:
            steps[s] = int(latest[s][-1].name.split("_")[-1]) if latest[s] else steps[s]
        ran = sum(steps[s] for s in cfg.stages[:resume_at])
        if budget is None:  # budgeted: the stage keeps its planned steps (its schedule); its time is what is left
            if ctx.steps - ran < 1:
                raise ZooError(f"maskgit: --steps {ctx.steps} leaves no step for the {cfg.stages[resume_at]} stage (earlier stages ran {ran})")
            steps[cfg.stages[resume_at]] = ctx.steps - ran
    if _main():
        _write_json(run / "stages.json", {"method": "maskgit", "tokenizer_from": cfg.tokenizer or None,
                                          "stages": [{"name": s, "steps": steps[s], "folder": s} for s in cfg.stages]})
    result, done, records = None, 0, []
    for i, stage in enumerate(cfg.stages):
        if i < resume_at:
            done += steps[stage]
            records.append({"name": stage, "steps": steps[stage], "seconds": checkpoint_budget(latest[stage][-1]).get("elapsed_s", 0.0), "time_budget_s": budgets[stage]})
            continue
        folder = run / stage
        if _main():
            _write_json(folder / STAGE_FILE, {"stage": stage, "index": i, "steps": steps[stage], "run": ".."})
        resume = str(latest[stage][-1]) if i == resume_at else None
        stage_budget = budgets[stage]
        if stage_budget is not None and i > 0:  # the second stage: what the first left of the whole budget
            stage_budget = max(1e-3, budget - sum(float(r["seconds"] or 0.0) for r in records))
        sctx = dataclasses.replace(ctx, out_dir=folder, steps=steps[stage], options=dataclasses.replace(options, resume=resume, time_budget_s=stage_budget))
        if hasattr(ctx, "val_data"):
            sctx.val_data = ctx.val_data  # type: ignore[attr-defined]
        sctx.stage = stage  # type: ignore[attr-defined]
        result = fit(TASKS[stage](model, cfg), sctx)
        records += result.stages
        model.load_state_dict(result.state_dict)  # the next stage starts from the exported (EMA) weights
        model.requires_grad_(True)
        done += result.step
    assert result is not None
    return TrainResult(state_dict={k: v.detach().cpu() for k, v in model.state_dict().items()}, step=done, metrics=result.metrics, stages=records)
