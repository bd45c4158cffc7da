"""LaMa training: two phases per step on the shared engine.

    D phase:  x_fake = G(x * (1 - m), m)  (no grad)
              L_D = softplus(-D(x)) + m * softplus(D(x_fake)) + (1 - m) * softplus(-D(x_fake))
                    + r1_gamma * ||dD(x)/dx||^2              (R1 every r1_every steps, scaled)
    G phase:  x_fake = G(x * (1 - m), m)
              L_G = L1_known/missing + adv_weight * softplus(-D(x_fake))
                    + fm_weight * FM(D(x_fake), D(x)) + hrf_pl_weight * HRF(x_fake, x)

Images are mapped to [0, 1] inside the losses, LaMa's range, so the weights are those of
the published config. The discriminator sees the raw prediction (not the composite), as in
LaMa (``image_to_discriminator: predicted_image``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from zoo.errors import ZooError
from zoo.spec import TrainContext, TrainResult
from zoo.train import Phase, TrainOptions, TrainTask, fit
from zoo_plugins.lama import losses
from zoo_plugins.lama.model import LaMa


class LamaTask(TrainTask):
    def __init__(self, model: LaMa, config) -> None:
        if model.discriminator is None:
            raise ZooError("lama: training needs the discriminator; this config has discriminator=false (zoo train lama turns it on: use LamaConfig.for_training())")
        self.model, self.config = model, config
        self.ema_decay = config.ema_decay
        # fails early, with the file name, when the weights are missing
        self.hrf = losses.HRFPerceptualLoss(losses.load_hrf_encoder(config.hrf_pl_weights)) if config.hrf_pl_weight > 0 else None

    def to(self, device: torch.device) -> None:
        self.model.to(device)
        if self.hrf is not None:
            self.hrf.to(device)

    def init_missing(self, keys: list[str], source: Path) -> str | None:
        """``--init`` from a generator-only checkpoint (big-lama.zip, or any ``zoo import``
        without ``discriminator.*``): the discriminator starts from its fresh
        initialisation; a missing generator tensor is refused."""
        if all(k.startswith("discriminator.") for k in keys):
            return (
                f"{source.name} has no discriminator (a generator-only checkpoint): fine-tuning with a freshly initialised "
                f"pix2pixHD discriminator (ndf={self.config.ndf}, {self.config.d_layers} layers); import big-lama-with-discr to start from the published one"
            )
        return super().init_missing([k for k in keys if not k.startswith("discriminator.")], source)

    def fsdp_roots(self):
        """Generator and discriminator are called through their own forwards, so both can
        be sharded, unless the R1 penalty (r1_gamma > 0, as published) differentiates the
        discriminator twice, which FSDP does not support."""
        if self.config.r1_gamma > 0:
            raise ZooError(
                "lama cannot train with --strategy fsdp while its R1 penalty is on (it backpropagates through the discriminator twice); "
                "use --strategy ddp (Big LaMa's 51 M weights fit one card), or start a new run with --set r1_gamma=0"
            )
        return [self.model.generator, self.model.discriminator]

    def optimizers(self):
        c = self.config
        return {
            "discriminator": torch.optim.Adam(self.model.discriminator.parameters(), lr=c.lr_d, betas=tuple(c.betas)),
            "generator": torch.optim.Adam(self.model.generator.parameters(), lr=c.lr_g, betas=tuple(c.betas)),
        }

    def phases(self):
        return [Phase("discriminator", self.d_loss), Phase("generator", self.g_loss)]

    @staticmethod
    def _unit(batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        return (batch["image"] + 1) / 2, batch["mask"]  # (B, 3, H, W) in [0, 1], (B, 1, H, W)

    def d_loss(self, batch: dict, step: int):
        c, D = self.config, self.model.discriminator
        D.requires_grad_(True)
        real, mask = self._unit(batch)
        with torch.no_grad():
            fake = self.model.generate01(real, mask)
        lazy = c.r1_gamma > 0 and step % c.r1_every == 0
        real = real.detach().requires_grad_(lazy)
        real_logits, _ = D(real)
        fake_logits, _ = D(fake)
        loss = losses.discriminator_loss(real_logits, fake_logits, mask)
        logs = {"d_adv": loss.item(), "d_real": real_logits.mean().item(), "d_fake": fake_logits.mean().item()}
        if lazy:
            r1 = losses.r1_penalty(real_logits, real)
            loss = loss + c.r1_gamma * c.r1_every * r1
            logs["d_r1"] = r1.item()
        return loss, logs

    def g_loss(self, batch: dict, step: int):
        c, D = self.config, self.model.discriminator
        D.requires_grad_(False)  # gradients flow through D into G only
        real, mask = self._unit(batch)
        fake = self.model.generate01(real, mask)
        l1 = losses.masked_l1(fake, real, mask, c.l1_weight_known, c.l1_weight_missing)
        fake_logits, fake_feats = D(fake)
        with torch.no_grad():
            _, real_feats = D(real)
        adv = losses.generator_adv_loss(fake_logits)
        fm = losses.feature_matching(fake_feats, real_feats)
        loss = l1 + c.adv_weight * adv + c.fm_weight * fm
        hole = ((fake - real).abs() * mask).sum() / (mask.sum() * 3).clamp_min(1)
        logs = {"g_l1": l1.item(), "g_adv": adv.item(), "g_fm": fm.item(), "l1_hole": hole.item()}
        if self.hrf is not None:
            pl = self.hrf(fake, real)
            loss = loss + c.hrf_pl_weight * pl
            logs["g_hrf_pl"] = pl.item()
        return loss, logs


def train(model: LaMa, ctx: TrainContext) -> TrainResult:
    task = LamaTask(model, ctx.config)
    options = ctx.options or TrainOptions()
    if options.grad_clip == 0 and ctx.config.grad_clip > 0:
        # LaMa clips gradients (gradient_clip_val: 1); the config supplies the engine's
        # setting unless --grad-clip was given
        options = dataclasses.replace(options, grad_clip=ctx.config.grad_clip)
    ctx = dataclasses.replace(ctx, options=options)
    try:
        return fit(task, ctx)
    finally:
        model.discriminator.requires_grad_(True)
