"""Training, both stages through the shared engine (:func:`zoo.train.fit`).

1. VAE (unless ``vae=PATH``): one phase, L1 reconstruction + ``vae_kl_weight`` x KL (LDM's
   kl-f autoencoder loss without its LPIPS and GAN terms), in ``RUN/vae/``; then the latent
   scale is measured as 1 / std of training latents (LDM's ``scale_factor``).
2. Denoiser, in ``RUN/``: the VAE frozen; one phase, DiT's loss (eps MSE + the VLB term of
   the learned variance, unclipped for latents) on z_0 = scale * a posterior sample, with the
   context (masked image latent + hole) dropped with probability ``context_dropout``.

``stage=vae`` runs step 1 alone (its checkpoint then holds a fresh denoiser);
``stage=denoiser`` needs ``vae=PATH``. ``--resume RUN`` continues the denoiser stage (its
checkpoint holds the VAE too).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from zoo.diffusion.losses import diffusion_loss
from zoo.errors import ZooError
from zoo.spec import TrainContext, TrainResult
from zoo.train import Interrupted, Phase, TrainTask, fit
from zoo_plugins.dit_mca.config import DitMcaConfig
from zoo_plugins.dit_mca.model import DitMca, make_chain


class VaeTask(TrainTask):
    """Stage 1: the AutoencoderKL on images (masks unused)."""

    ema_decay = 0.0

    def __init__(self, model: DitMca, cfg: DitMcaConfig) -> None:
        self.model, self.cfg = model, cfg
        model.dit.requires_grad_(False)  # trained in stage 2
        model.vae.requires_grad_(True)

    def optimizers(self):
        return {"vae": torch.optim.AdamW(self.model.vae.parameters(), lr=self.cfg.vae_lr, weight_decay=0.0)}

    def phases(self):
        return [Phase("vae", self.loss)]

    def loss(self, batch: dict, step: int):
        x = batch["image"]
        dist = self.model.vae.encode(x).latent_dist
        rec = self.model.vae.decode(dist.sample()).sample
        l1 = (rec.float() - x.float()).abs().mean()
        kl = dist.kl().float().mean() / x[0].numel()  # per image, summed over latents; per pixel like l1
        loss = l1 + self.cfg.vae_kl_weight * kl
        return loss, {"l1": l1.item(), "kl": kl.item(), "loss": loss.item()}

    def fsdp_roots(self):
        vae = self.model.vae
        return [m for m in (vae.encoder, vae.decoder, vae.quant_conv, vae.post_quant_conv) if m is not None]

    def validation_sample(self, images, masks, generator):
        rec = self.model.vae.decode(self.model.vae.encode(images).latent_dist.mean).sample
        return images * (1 - masks) + rec.clamp(-1, 1) * masks  # reconstruction quality in the hole


class DenoiserTask(TrainTask):
    """Stage 2: the DiT on latents, the VAE frozen."""

    def __init__(self, model: DitMca, cfg: DitMcaConfig) -> None:
        self.model, self.cfg = model, cfg
        self.ema_decay = cfg.ema_decay
        self.chain = make_chain(cfg)
        model.vae.requires_grad_(False)
        model.dit.requires_grad_(True)

    def optimizers(self):
        return {"dit": torch.optim.AdamW(self.model.dit.parameters(), lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)}

    def phases(self):
        return [Phase("dit", self.loss)]

    def fsdp_roots(self):
        return [self.model.dit]  # the loss reaches trained weights only through dit(...)

    def enable_grad_checkpointing(self) -> bool:
        self.model.dit.grad_checkpointing = True  # the frozen VAE runs without a graph
        return True

    def loss(self, batch: dict, step: int):
        x, holes = batch["image"], batch["mask"]
        with torch.no_grad():
            z0 = self.model.encode(x, sample=True)  # (B, C, h, w)
            context, valid, _ = self.model.context(x, holes)
            drop = torch.rand(x.shape[0], device=x.device) < self.cfg.context_dropout
            empty_ctx, empty_valid = self.model.empty_context(z0)
            context = torch.where(drop[:, None, None, None], empty_ctx, context)
            valid = torch.where(drop[:, None], empty_valid, valid)
        dit = self.model.dit
        return diffusion_loss(lambda z, t: dit(z, t, context, valid), self.chain, z0.float(), learn_sigma=self.cfg.learn_sigma, clip=False)


@torch.no_grad()
def measure_latent_scale(model: DitMca, data, batch_size: int, max_images: int = 256) -> float:
    """1 / std of posterior samples of up to ``max_images`` training images (LDM)."""
    device = next(model.parameters()).device
    n = min(len(data), max_images)
    g = torch.Generator(device="cpu").manual_seed(0)
    zs = []
    for start in range(0, n, batch_size):
        x = torch.stack([data[i]["image"] for i in range(start, min(start + batch_size, n))]).to(device)
        dist = model.vae.encode(x).latent_dist
        zs.append((dist.mean + dist.std * torch.randn(dist.mean.shape, generator=g).to(device)).float().cpu())
    return float(1.0 / torch.cat(zs).std().clamp_min(1e-6))


def _stage_ctx(ctx: TrainContext, out_dir: Path, steps: int, resume: str | None, stage: str, budget_s: float | None = None) -> TrainContext:
    changes = {"resume": resume} if budget_s is None else {"resume": resume, "time_budget_s": budget_s}
    options = dataclasses.replace(ctx.options, **changes) if ctx.options is not None else None
    staged = dataclasses.replace(ctx, out_dir=out_dir, steps=steps, options=options)
    if hasattr(ctx, "val_data"):
        staged.val_data = ctx.val_data  # type: ignore[attr-defined]
    staged.stage = stage  # type: ignore[attr-defined]
    return staged


def _vae_stage_record(out: Path, budget_s: float) -> dict | None:
    """What the VAE stage of a run spent (steps, seconds: its newest checkpoint's clock);
    None when the run has no VAE stage checkpoint."""
    from zoo.train.budget import checkpoint_budget
    from zoo.train.state import list_checkpoints

    found = list_checkpoints(out / "vae")
    if not found:
        return None
    seconds = float(checkpoint_budget(found[-1]).get("elapsed_s") or 0.0)
    return {"name": "vae", "steps": int(found[-1].name.split("_")[-1]), "seconds": seconds, "time_budget_s": budget_s}


def _after_vae_stage(cfg: DitMcaConfig, ctx: TrainContext, result: TrainResult) -> DitMca:
    """A fresh model holding the trained VAE and its latent scale (an FSDP fit leaves its
    modules sharded, and only process 0 gets the exported weights: the next fit starts by
    copying process 0's weights and buffers to the others)."""
    model = DitMca(cfg)
    if result.state_dict:
        model.load_state_dict(result.state_dict, strict=True)
        _set_scale(model, cfg, ctx)
    return model


def train(ctx: TrainContext) -> TrainResult:
    from zoo_plugins.dit_mca.convert import load_dit_init, load_vae_into, resolve_vae, say

    cfg: DitMcaConfig = ctx.config
    resolve_vae(cfg)  # vae=PATH: read its config (architecture, scale) into cfg
    cfg.validate()
    model = DitMca(cfg)
    resume = getattr(ctx.options, "resume", None) if ctx.options is not None else None
    out = Path(ctx.out_dir)
    if cfg.init and resume is None and cfg.stage != "vae" and not Path(cfg.init).is_file():
        # before stage 1 trains: a typo must not cost a VAE stage first
        raise ZooError(f"dit-mca: init={cfg.init} does not exist; give a DiT checkpoint file (e.g. DiT-XL-2-256x256.pt)")

    budget = getattr(ctx.options, "time_budget_s", None) if ctx.options is not None else None
    records: list[dict] = []
    if cfg.stage == "vae":
        result = fit(VaeTask(model, cfg), _stage_ctx(ctx, out, ctx.steps, resume, "vae"))
        model = _after_vae_stage(cfg, ctx, result)
        return TrainResult(model.state_dict(), result.step, result.metrics, stages=result.stages)

    if cfg.vae:
        load_vae_into(model, cfg)
    elif resume is None:  # stage all, fresh run: train the VAE first, in RUN/vae
        vae_budget = None if budget is None else budget * cfg.budget_split
        vae_ctx = _stage_ctx(ctx, out / "vae", cfg.vae_steps, None, "vae", vae_budget)
        length = f"{cfg.vae_steps} steps" if budget is None else f"{vae_budget:.0f} s of the {budget:.0f} s budget"
        say(f"dit-mca: stage 1/2, VAE ({length}) in {out / 'vae'}")
        try:
            result = fit(VaeTask(model, cfg), vae_ctx)
        except Interrupted as stop:  # the engine's hint (--resume RUN/vae) does not apply to a stage
            first = str(stop).split(";")[0]
            raise Interrupted(
                f"dit-mca VAE stage: {first}; checkpoint in {out / 'vae' / 'checkpoints'}. Only the denoiser stage continues with --resume: "
                "run the command again (the VAE stage restarts), or train the stages apart (stage=vae, then stage=denoiser vae=...)",
                stop.signum, stop.checkpoint) from None
        model = _after_vae_stage(cfg, ctx, result)
        records += result.stages
        length = f"{ctx.steps} steps" if budget is None else f"the {budget - records[0]['seconds']:.0f} s left of the budget"
        say(f"dit-mca: stage 2/2, denoiser ({length}), latent scale {float(model.latent_scale):.5f}")
    elif budget is not None:  # resuming stage all: the VAE stage's time is spent already
        done = _vae_stage_record(out, budget * cfg.budget_split)
        records += [done] if done else []
    # (resuming stage all: the denoiser's checkpoint holds the VAE and the scale)
    if cfg.init and resume is None:
        load_dit_init(model.dit, cfg.init)
    if ctx.options is not None and getattr(ctx.options, "grad_checkpointing", False):
        model.dit.grad_checkpointing = True
    denoiser_budget = None if budget is None else max(1e-3, budget - sum(float(r["seconds"] or 0.0) for r in records))
    result = fit(DenoiserTask(model, cfg), _stage_ctx(ctx, out, ctx.steps, resume, "denoiser", denoiser_budget))
    model.dit.grad_checkpointing = False
    result.stages = records + result.stages
    return result


def _set_scale(model: DitMca, cfg: DitMcaConfig, ctx: TrainContext) -> None:
    scale = cfg.latent_scale or measure_latent_scale(model, ctx.data, max(1, min(ctx.batch_size, 32)))
    if not torch.isfinite(torch.tensor(scale)):
        raise ZooError(f"dit-mca: the trained VAE gives latent scale {scale}; train it longer (vae_steps) or give latent_scale")
    model.latent_scale.fill_(scale)
    cfg.latent_scale = scale  # recorded in the checkpoint's config too


__all__ = ["VaeTask", "DenoiserTask", "measure_latent_scale", "train"]
