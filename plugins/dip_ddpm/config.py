"""Config and presets of ``dip-ddpm``: stage 1 (a Deep Image Prior fitted to each image's
known pixels), stage 2 (a DDPM prior that refines the DIP estimate from timestep ``t0``),
the prior's architecture / noise schedule / training, and where an existing prior comes from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from zoo.errors import ZooError


@dataclass
class DipDdpmConfig:
    # -- what runs at sample time -------------------------------------------------------------
    stages: Literal["dip+ddpm", "dip", "ddpm"] = "dip+ddpm"  # dip: stage 1 only; ddpm: stage 2 from pure noise
    # -- stage 1: Deep Image Prior (Ulyanov et al. 2018), `skip` encoder-decoder --------------
    dip_input_channels: int = 32  # depth of the fixed noise input z (uniform [0, 0.1))
    dip_channels_down: tuple[int, ...] = (128, 128, 128, 128, 128)  # one entry per scale (= depth)
    dip_channels_up: tuple[int, ...] = (128, 128, 128, 128, 128)
    dip_channels_skip: tuple[int, ...] = (128, 128, 128, 128, 128)  # 0 = no skip at that scale
    dip_iters: int = 3000  # Adam iterations (upper bound with early stopping)
    dip_lr: float = 0.01
    dip_reg_noise: float = 0.03  # std of the fresh noise added to z at every iteration
    dip_holdout: float = 0.05  # fraction of known pixels held out for early stopping (0: off)
    dip_eval_every: int = 50  # iterations between held-out evaluations
    dip_patience: int = 6  # evaluations without held-out improvement before an image stops
    # -- stage 2: DDPM refinement from t0 (SDEdit-style, known region re-imposed) ---------------
    t0: int = 100  # model timestep the refinement starts at (0 < t0 < diffusion_steps)
    refine_steps: int = 20  # respaced reverse steps from t0 to 0 (network calls without resampling)
    sampler: Literal["ddpm", "ddim"] = "ddim"  # ddpm: posterior step (learned variance if any)
    eta: float = 1.0  # ddim noise scale
    jump_length: int = 1  # RePaint resampling: levels jumped back up at each jump point
    jump_n_sample: int = 1  # RePaint resampling: times each stretch is denoised (1 = no resampling)
    clip_denoised: bool = True
    # -- the prior: guided-diffusion UNet (same architecture fields as `repaint`) --------------
    prior: str = ""  # zoo train: take this prior instead of training (repaint/dip-ddpm checkpoint, guided-diffusion .pt, diffusers folder)
    backbone: Literal["guided", "diffusers"] = "guided"
    resolution: int = 256
    # training augmentation, the published recipe: the prior trains like guided-diffusion's: centre crop, random flip.
    # Validation and evaluation always use fixed centre crops (docs/training.md, Augmentation)
    crop: str = "center"  # random | center: where the training crop is taken (zoo.data)
    flip: bool = True  # random horizontal flip of training images
    channels: int = 256
    channel_mult: tuple[int, ...] = (1, 1, 2, 2, 4, 4)
    num_res_blocks: int = 2
    attention_resolutions: tuple[int, ...] = (32, 16, 8)
    num_head_channels: int = 64
    dropout: float = 0.0
    use_scale_shift_norm: bool = True
    resblock_updown: bool = True
    learn_sigma: bool = True
    diffusers_unet: dict[str, Any] = field(default_factory=dict)  # UNet2DModel config (backbone=diffusers)
    # -- noise schedule ---------------------------------------------------------------------
    diffusion_steps: int = 1000
    beta_schedule: Literal["linear", "cosine"] = "linear"
    beta_start: float = 1e-4
    beta_end: float = 0.02
    # -- training the prior (DIP needs none) --------------------------------------------------
    lr: float = 1e-4
    weight_decay: float = 0.0
    ema_decay: float = 0.9999
    steps: int = 250_000  # training steps of the prior
    batch_size: int = 16
    train_masks: str = "box"  # the prior is unconditional; the engine draws masks anyway
    score_levels: int = 10  # timesteps the score hook averages the hole denoising loss over

    def validate(self) -> None:
        """Raise one ZooError naming the first bad field."""
        depth = len(self.dip_channels_down)
        checks: list[tuple[bool, str]] = [
            (depth >= 1, f"dip_channels_down: {self.dip_channels_down!r} needs at least one scale"),
            (len(self.dip_channels_up) == depth, f"dip_channels_up: {len(self.dip_channels_up)} entries, dip_channels_down has {depth}; give one per scale"),
            (len(self.dip_channels_skip) == depth, f"dip_channels_skip: {len(self.dip_channels_skip)} entries, dip_channels_down has {depth}; give one per scale"),
            (all(c >= 1 for c in (*self.dip_channels_down, *self.dip_channels_up)), "dip_channels_down/up: every entry must be >= 1"),
            (all(c >= 0 for c in self.dip_channels_skip), f"dip_channels_skip: {self.dip_channels_skip!r}; entries must be >= 0"),
            (self.dip_input_channels >= 1, f"dip_input_channels: {self.dip_input_channels}; must be >= 1"),
            (self.dip_iters >= 1, f"dip_iters: {self.dip_iters}; must be >= 1"),
            (self.dip_lr > 0, f"dip_lr: {self.dip_lr}; must be > 0"),
            (self.dip_reg_noise >= 0, f"dip_reg_noise: {self.dip_reg_noise}; must be >= 0"),
            (0 <= self.dip_holdout < 1, f"dip_holdout: {self.dip_holdout}; must be in [0, 1)"),
            (self.dip_eval_every >= 1, f"dip_eval_every: {self.dip_eval_every}; must be >= 1"),
            (self.dip_patience >= 1, f"dip_patience: {self.dip_patience}; must be >= 1"),
            (self.diffusion_steps >= 2, f"diffusion_steps: {self.diffusion_steps}; must be >= 2"),
            (0 < self.t0 < self.diffusion_steps, f"t0: {self.t0}; valid: 1 to {self.diffusion_steps - 1} (diffusion_steps - 1)"),
            (1 <= self.refine_steps <= self.t0 + 1, f"refine_steps: {self.refine_steps}; valid: 1 to {self.t0 + 1} (t0 + 1 levels)"),
            (self.jump_length >= 1, f"jump_length: {self.jump_length}; must be >= 1"),
            (self.jump_n_sample >= 1, f"jump_n_sample: {self.jump_n_sample}; must be >= 1"),
            (self.eta >= 0, f"eta: {self.eta}; must be >= 0"),
            (self.resolution >= 1, f"resolution: {self.resolution}; must be >= 1"),
            (self.channels >= 1, f"channels: {self.channels}; must be >= 1"),
            (self.steps >= 1, f"steps: {self.steps}; must be >= 1"),
            (self.batch_size >= 1, f"batch_size: {self.batch_size}; must be >= 1"),
            (self.score_levels >= 1, f"score_levels: {self.score_levels}; must be >= 1"),
        ]
        if self.stages == "ddpm" and self.t0 != self.diffusion_steps - 1:
            checks.append((False, f"t0: {self.t0}; stages=ddpm starts from pure noise, so t0 must be diffusion_steps - 1 ({self.diffusion_steps - 1})"))
        for ok, message in checks:
            if not ok:
                raise ZooError(message)


_PRIOR_TINY = {
    "resolution": 32, "channels": 32, "channel_mult": (1, 2), "num_res_blocks": 1,
    "attention_resolutions": (16,), "num_head_channels": 16, "diffusion_steps": 1000,
    "lr": 1e-3, "ema_decay": 0.9, "steps": 40, "batch_size": 4,
}

#: DIP's inpainting settings in the official notebook (kate.png): 5 scales of 128 channels,
#: 128 skip channels, z with 32 channels, Adam lr 0.01, 6,001 iterations, reg noise 0.03.
_DIP_PUBLISHED = {
    "dip_input_channels": 32, "dip_channels_down": (128,) * 5, "dip_channels_up": (128,) * 5,
    "dip_channels_skip": (128,) * 5, "dip_iters": 6000, "dip_lr": 0.01, "dip_reg_noise": 0.03,
}

PRESETS: dict[str, dict[str, Any]] = {
    # seconds on a CPU; tests
    "tiny": {
        "crop": "center", "flip": False,  # tests overfit fixed images: no augmentation
        **_PRIOR_TINY,
        "dip_input_channels": 8, "dip_channels_down": (16, 16, 16), "dip_channels_up": (16, 16, 16),
        "dip_channels_skip": (4, 4, 4), "dip_iters": 40, "dip_lr": 0.01, "dip_eval_every": 10, "dip_patience": 3,
        "t0": 100, "refine_steps": 5,
    },
    # 64 px on a CPU, ~3.2 M parameters: the published architecture scaled down for `zoo study` and
    # CPU-minute --time-budget runs (table in README.md)
    "small": {
        "resolution": 64, "channels": 32, "channel_mult": (1, 2, 4), "num_res_blocks": 1,
        "attention_resolutions": (16,), "num_head_channels": 32, "lr": 2e-4, "ema_decay": 0.999,
        "steps": 20_000, "batch_size": 8,
        "dip_input_channels": 16, "dip_channels_down": (32,) * 4, "dip_channels_up": (32,) * 4,
        "dip_channels_skip": (4,) * 4, "dip_iters": 500, "t0": 100, "refine_steps": 20,
    },
    # one consumer GPU at 256 px: the repaint `base` prior, DIP with 64 channels
    "base": {
        "resolution": 256, "channels": 128, "channel_mult": (1, 1, 2, 2, 4, 4), "num_res_blocks": 2,
        "attention_resolutions": (16, 8), "num_head_channels": 64, "lr": 1e-4, "batch_size": 8, "steps": 300_000,
        "dip_channels_down": (64,) * 5, "dip_channels_up": (64,) * 5, "dip_channels_skip": (16,) * 5,
        "dip_iters": 2000, "t0": 100, "refine_steps": 25,
    },
    # the idea's published setting: guided-diffusion CelebA-HQ 256 prior (import it with
    # --set prior=celeba256_250000.pt), DIP as in the paper, t0 = 100 of 1000
    "celebahq-256": {
        "resolution": 256, "channels": 256, "channel_mult": (1, 1, 2, 2, 4, 4), "num_res_blocks": 2,
        "attention_resolutions": (32, 16, 8), "num_head_channels": 64, "use_scale_shift_norm": True,
        "resblock_updown": True, "learn_sigma": True, "diffusion_steps": 1000, "beta_schedule": "linear",
        "ema_decay": 0.9999, **_DIP_PUBLISHED, "t0": 100, "refine_steps": 100, "sampler": "ddpm",
    },
}


#: Sampling settings `zoo study` tunes on its validation split: the timestep t0 the DDPM
#: refinement starts from (25 / 50 / 100 keep more of the DIP estimate; 250 lets the prior
#: redraw more), the refinement's steps (20 or 50) and the DIP iterations (100 or 300). Not a
#: full grid: DIP optimises a network per image, so every candidate pays the DIP stage again
#: (100 iterations about 5 CPU-s per 64 px image on one core, 300 about 12 s, the `small`
#: preset's 500 about 19 s: `zoo bench dip-ddpm --preset small --resolution 64`); one axis is
#: varied at a time around t0 = 100, 100 iterations and the preset's steps (20 in `small`). The first candidate wins a tie.
TUNABLE = (
    {"t0": 100, "dip_iters": 100},
    {"t0": 25, "dip_iters": 100},
    {"t0": 50, "dip_iters": 100},
    {"t0": 250, "dip_iters": 100},
    {"t0": 100, "dip_iters": 100, "refine_steps": 50},
    {"t0": 100, "dip_iters": 300},
)
