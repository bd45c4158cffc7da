"""MAT training on the shared engine: three phases per step, as StyleGAN2-ADA runs them.

    G phase:      z -> w (truncation 0.5, style mixing 0.5), (x, x_stg1) = G(image * known, mask)
                  L_G = softplus(-D(x)) + softplus(-D1(x_stg1)) + pcp_weight * VGG(x, image)
                        [+ l1_weight * |x - image|, a zoo addition, off in MAT]
    D phase:      L_D = softplus(D(x)) + softplus(D1(x_stg1)) + softplus(-D(image)) + softplus(-D1(image))
    R1 phase:     every r1_every steps, same optimizer: r1_every * gamma / 2 * (||dD/dx||^2 + ||dD1/dx||^2)

The optimizers are MAT's Adam(betas=(0, 0.99), eps=1e-8) with StyleGAN2-ADA's lazy-
regularisation rescaling: lr * k/(k+1) and betas ** (k/(k+1)), k = 16 for D (R1) and 4 for G
(whose path-length phase MAT turns off, but the rescaling stays). The EMA half-life is
``ema_kimg`` thousand images. Randomness (z, style mixing, feature mixing, noise) comes from
the global RNG, which the engine seeds and checkpoints.
"""

from __future__ import annotations

from pathlib import Path

import torch

from zoo.errors import ZooError
from zoo.spec import TrainContext, TrainResult
from zoo.train import Phase, TrainTask, fit
from zoo_plugins.mat import losses
from zoo_plugins.mat.layers import Draws
from zoo_plugins.mat.model import MAT


def lazy_ratio(every: int) -> float:
    return every / (every + 1)


class MatTask(TrainTask):
    def __init__(self, model: MAT, config, batch_size: int) -> None:
        if model.discriminator is None:
            raise ZooError("mat: training needs the discriminator; this config has discriminator=false (zoo train mat turns it on: use MatConfig.for_training())")
        self.model, self.config = model, config
        self.ema_decay = 0.5 ** (batch_size / (config.ema_kimg * 1000)) if config.ema_kimg > 0 else 0.0
        # fails early, naming the file, when the VGG weights are missing
        self.pcp = losses.VGGPerceptualLoss(losses.load_vgg19_features(config.pcp_weights)) if config.pcp_weight > 0 else None

    def init_missing(self, keys: list[str], source: Path) -> str | None:
        """``--init`` from a generator-only checkpoint (a ``G_ema.pth``, or any ``zoo import``
        without ``D``): the discriminator starts from its fresh initialisation; a missing
        generator tensor is refused."""
        if all(k.startswith("discriminator.") for k in keys):
            return (
                f"{source.name} has no discriminator (a generator-only checkpoint): fine-tuning with a freshly initialised "
                "two-headed discriminator; import the release .pkl (it holds D) to start from the published one"
            )
        return super().init_missing(keys, source)

    def to(self, device: torch.device) -> None:
        self.model.to(device)
        if self.pcp is not None:
            self.pcp.to(device)

    def fsdp_roots(self):
        if self.config.r1_gamma > 0:
            raise ZooError(
                "mat cannot train with --strategy fsdp while its R1 penalty is on (it backpropagates through the discriminator twice); "
                "use --strategy ddp, or start a new run with --set r1_gamma=0"
            )
        return [self.model.generator, self.model.discriminator]

    def optimizers(self):
        c = self.config
        rg, rd = lazy_ratio(c.g_reg_every), lazy_ratio(c.r1_every)
        return {
            "generator": torch.optim.Adam(self.model.generator.parameters(), lr=c.lr_g * rg, betas=tuple(b**rg for b in c.betas), eps=1e-8),
            "discriminator": torch.optim.Adam(self.model.discriminator.parameters(), lr=c.lr_d * rd, betas=tuple(b**rd for b in c.betas), eps=1e-8),
        }

    def phases(self):
        ph = [Phase("generator", self.g_loss), Phase("discriminator", self.d_loss)]
        if self.config.r1_gamma > 0:
            ph.append(Phase("discriminator", self.r1_loss, every=self.config.r1_every))
        return ph

    # ---- generator forward as in training: truncation and style mixing ----
    def generate(self, images: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.config
        z = torch.randn(images.shape[0], c.z_dim, device=images.device)
        z_mix, cutoff = None, 0
        if c.style_mixing > 0 and torch.rand(()) < c.style_mixing:  # styles from `cutoff` on from a second z
            cutoff = int(torch.randint(1, c.num_ws, ()))
            z_mix = torch.randn_like(z)
        # one call of the generator's forward (also what FSDP needs)
        return self.model(images * (1 - masks), masks, z, truncation_psi=c.train_truncation_psi, noise_mode="random", draws=Draws(), z_mix=z_mix, mix_cutoff=cutoff)

    def g_loss(self, batch: dict, step: int):
        c, D = self.config, self.model.discriminator
        D.requires_grad_(False)  # gradients flow through D into G only
        real, masks = batch["image"], batch["mask"]
        fake, fake1 = self.generate(real, masks)
        logits, logits1 = self.model.discriminate(fake, masks, fake1)
        adv = losses.generator_adv(logits, logits1)
        loss = adv
        hole = ((fake - real).abs() * masks).sum() / (masks.sum() * 3).clamp_min(1)
        logs = {"g_adv": adv.item(), "g_fake": logits.mean().item(), "g_fake_stg1": logits1.mean().item(), "l1_hole": hole.item()}
        if self.pcp is not None:
            pcp = self.pcp(fake.float(), real.float())
            loss = loss + c.pcp_weight * pcp
            logs["g_pcp"] = pcp.item()
        if c.l1_weight > 0:
            l1 = (fake - real).abs().mean()
            loss = loss + c.l1_weight * l1
            logs["g_l1"] = l1.item()
        return loss, logs

    def d_loss(self, batch: dict, step: int):
        D = self.model.discriminator
        D.requires_grad_(True)
        real, masks = batch["image"], batch["mask"]
        with torch.no_grad():
            fake, fake1 = self.generate(real, masks)
        f, f1 = self.model.discriminate(fake, masks, fake1)
        r, r1 = self.model.discriminate(real, masks, real)
        loss = losses.discriminator_adv(f, f1, r, r1)
        return loss, {"d_adv": loss.item(), "d_real": r.mean().item(), "d_fake": f.mean().item()}

    def r1_loss(self, batch: dict, step: int):
        c, D = self.config, self.model.discriminator
        D.requires_grad_(True)
        real = batch["image"].detach().requires_grad_(True)
        real1 = batch["image"].detach().requires_grad_(True)
        r, r1 = self.model.discriminate(real, batch["mask"], real1)
        pen, pen1 = losses.r1_penalty(r, r1, real, real1)
        loss = (pen + pen1) * (c.r1_gamma / 2) * c.r1_every + (r.mean() + r1.mean()) * 0
        return loss, {"d_r1": pen.item(), "d_r1_stg1": pen1.item()}


def train(ctx: TrainContext) -> TrainResult:
    ctx.config.validate()
    model = MAT(ctx.config)
    task = MatTask(model, ctx.config, ctx.batch_size)
    try:
        return fit(task, ctx)
    finally:
        model.discriminator.requires_grad_(True)
