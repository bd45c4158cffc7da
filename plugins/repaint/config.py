"""Config and presets of ``repaint``: the prior (guided-diffusion UNet, or a diffusers
UNet2DModel for imported diffusers folders), its noise schedule, training, and sampling."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal


@dataclass
class RepaintConfig:
    SET_ALIASES: ClassVar[dict[str, str]] = {"class": "class_label"}  # `--set class=N` ("class" is a Python keyword)

    # -- the prior: guided-diffusion UNet (Dhariwal & Nichol 2021) --------------------------
    backbone: Literal["guided", "diffusers"] = "guided"  # diffusers: imported UNet2DModel folder
    resolution: int = 256  # training size; attention_resolutions refer to it
    # training augmentation, the published recipe: guided-diffusion's load_data: random_crop=False (centre crop), random_flip=True.
    # Validation and evaluation always use fixed centre crops (docs/training.md, Augmentation)
    crop: str = "center"  # random | center: where the training crop is taken (zoo.data)
    flip: bool = True  # random horizontal flip of training images
    channels: int = 256  # base width C ("num_channels")
    channel_mult: tuple[int, ...] = (1, 1, 2, 2, 4, 4)  # width multiplier per level
    num_res_blocks: int = 2  # residual blocks per level
    attention_resolutions: tuple[int, ...] = (32, 16, 8)  # feature-map sizes with self-attention
    num_head_channels: int | None = 64  # channels per attention head (none: a fixed head count, num_heads)
    num_heads: int = 4  # heads per attention layer when num_head_channels is none
    dropout: float = 0.0
    use_scale_shift_norm: bool = True  # FiLM-style timestep conditioning
    resblock_updown: bool = True  # residual blocks resample (else strided conv / upsample+conv)
    learn_sigma: bool = True  # 6 output channels: eps and the variance interpolation v
    diffusers_unet: dict[str, Any] = field(default_factory=dict)  # UNet2DModel config (backbone=diffusers)
    num_classes: int | None = None  # class-conditional prior (label_emb; read from the file); none: unconditional
    # -- noise schedule ---------------------------------------------------------------------
    diffusion_steps: int = 1000  # T of the training chain
    beta_schedule: Literal["linear", "cosine"] = "linear"  # linear: beta_start..beta_end scaled by 1000/T
    beta_start: float = 1e-4  # linear schedule, at T = 1000
    beta_end: float = 0.02
    # -- training ---------------------------------------------------------------------------
    lr: float = 1e-4  # AdamW
    weight_decay: float = 0.0
    ema_decay: float = 0.9999  # the checkpoint holds the EMA weights
    steps: int = 250_000
    batch_size: int = 16
    vlb_clip_denoised: bool = False  # clip the x0 estimate in the VLB term (guided-diffusion: false)
    train_masks: str = "box"  # unused by the prior (unconditional); the engine draws masks anyway
    # -- sampling (RePaint) -----------------------------------------------------------------
    sampling: Literal["published", "fast", "custom"] = "published"  # custom: the fields below
    t_T: int = 250  # levels of the respaced sampling chain (guided "timestep_respacing")
    jump_length: int = 10  # j: levels jumped back up at each jump point
    jump_n_sample: int = 10  # r: times each stretch is denoised
    jump2_length: int = 1  # a second tier of jumps inside each stretch (official default 1: none)
    jump2_n_sample: int = 1
    jump3_length: int = 1  # a third tier inside the second
    jump3_n_sample: int = 1
    start_resampling: int | None = None  # jumps only at levels <= this (none: everywhere)
    n_sample: int = 1  # one-level resamplings at every step (official schedule_jump_params.n_sample)
    sampler: Literal["ddpm", "ddim"] = "ddpm"  # ddpm: posterior step (learned variance if any)
    eta: float = 1.0  # ddim noise scale (1.0 = DDPM-like variance, 0.0 = deterministic)
    clip_denoised: bool = True  # clip the x0 estimate to [-1, 1]
    known_noise: Literal["shared", "fresh"] = "shared"  # fresh: known region re-drawn before every call (official)
    schedule_alignment: Literal["repaint", "diffusers"] = "repaint"  # level walk of the official code or of diffusers
    class_label: str | None = None  # --set class=N: the class to sample; a file of "NAME CLASS" lines; none: random per image (official)
    classifier: str | None = None  # noisy-image classifier file (guided-diffusion EncoderUNetModel) for classifier guidance
    classifier_scale: float = 1.0  # scale of the classifier's gradient
    classifier_depth: int = 2  # residual blocks per level of the classifier (the published 2; shapes cannot tell it)
    score_levels: int = 10  # timesteps (evenly spread) the score hook averages the hole loss over

    def __post_init__(self) -> None:
        if self.t_T > self.diffusion_steps:
            raise ValueError(f"t_T ({self.t_T}) cannot exceed diffusion_steps ({self.diffusion_steps})")

    def validate(self) -> None:
        from zoo.config import require

        for name in ("t_T", "jump_length", "jump_n_sample", "jump2_length", "jump2_n_sample", "jump3_length", "jump3_n_sample", "n_sample", "num_heads", "score_levels"):
            require(getattr(self, name) >= 1, name, getattr(self, name), "must be at least 1")
        require(self.num_head_channels is None or self.num_head_channels >= 1, "num_head_channels", self.num_head_channels, "must be at least 1, or none (use num_heads)")
        require(len(self.channel_mult) > 0 and all(m >= 1 for m in self.channel_mult), "channel_mult", self.channel_mult, "needs at least one entry, each at least 1")
        if self.backbone == "guided":
            widths = [self.channels * m for m in self.channel_mult]
            require(all(w % 32 == 0 for w in widths), "channels", self.channels, f"channels x channel_mult must be multiples of 32 (GroupNorm(32)); got {widths}")
            down = 2 ** (len(self.channel_mult) - 1)
            require(self.resolution % down == 0, "resolution", self.resolution, f"must be divisible by {down} (2 ** (levels - 1))")
            # attention widths: the levels listed in attention_resolutions and the middle block
            attn = {self.channels * m for lvl, m in enumerate(self.channel_mult) if self.resolution // 2**lvl in self.attention_resolutions}
            attn.add(self.channels * self.channel_mult[-1])
            if self.num_head_channels is None:
                require(all(w % self.num_heads == 0 for w in attn), "num_heads", self.num_heads, f"must divide the attention widths {sorted(attn)}")
            else:
                require(all(w % self.num_head_channels == 0 for w in attn), "num_head_channels", self.num_head_channels, f"must divide the attention widths {sorted(attn)}")
        require(0.0 < self.beta_start < self.beta_end < 1.0, "beta_start/beta_end", (self.beta_start, self.beta_end), "need 0 < beta_start < beta_end < 1")
        require(self.eta >= 0, "eta", self.eta, "must be 0 or more")
        require(self.num_classes is None or self.num_classes >= 1, "num_classes", self.num_classes, "must be at least 1, or none (unconditional)")
        require(self.classifier_depth >= 1, "classifier_depth", self.classifier_depth, "must be at least 1")
        require(self.lr > 0, "lr", self.lr, "must be > 0")


#: Named sampling settings (``--set sampling=fast``). ``published``: the paper's schedule,
#: 2,410 network calls; ``fast``: 235 calls, the best schedule within 241 calls in the
#: measurement in README.md (40 respaced levels, jump 1, 6 resamplings, DDIM-style steps with
#: eta = 1, i.e. the posterior variance instead of the learned one).
SAMPLING_MODES: dict[str, dict[str, Any]] = {
    "published": {"t_T": 250, "jump_length": 10, "jump_n_sample": 10, "sampler": "ddpm"},
    "fast": {"t_T": 40, "jump_length": 1, "jump_n_sample": 6, "sampler": "ddim", "eta": 1.0},
}

_PUBLISHED = {
    "resolution": 256,
    "channels": 256,
    "channel_mult": (1, 1, 2, 2, 4, 4),
    "num_res_blocks": 2,
    "attention_resolutions": (32, 16, 8),
    "num_head_channels": 64,
    "use_scale_shift_norm": True,
    "resblock_updown": True,
    "learn_sigma": True,
    "diffusion_steps": 1000,
    "beta_schedule": "linear",
    "ema_decay": 0.9999,
}

PRESETS: dict[str, dict[str, Any]] = {
    # seconds on a CPU; tests
    "tiny": {
        "crop": "center", "flip": False,  # tests overfit fixed images: no augmentation
        "resolution": 32, "channels": 32, "channel_mult": (1, 2), "num_res_blocks": 1,
        "attention_resolutions": (16,), "num_head_channels": 16, "diffusion_steps": 1000,
        "lr": 1e-3, "ema_decay": 0.9, "steps": 40, "batch_size": 4,
        "sampling": "custom", "t_T": 10, "jump_length": 2, "jump_n_sample": 2,
    },
    # 64 px on a CPU, ~3.2 M parameters: the published architecture scaled down for `zoo study` and
    # CPU-minute --time-budget runs (table in README.md)
    "small": {
        "resolution": 64, "channels": 32, "channel_mult": (1, 2, 4), "num_res_blocks": 1,
        "attention_resolutions": (16,), "num_head_channels": 32, "lr": 2e-4, "ema_decay": 0.999,
        "steps": 20_000, "batch_size": 8,
    },
    # one consumer GPU (~140M parameters at 256 px; use --grad-checkpointing / --precision bf16)
    "base": {
        "resolution": 256, "channels": 128, "channel_mult": (1, 1, 2, 2, 4, 4), "num_res_blocks": 2,
        "attention_resolutions": (16, 8), "num_head_channels": 64, "lr": 1e-4, "batch_size": 8, "steps": 300_000,
    },
    # the published architecture of RePaint's CelebA-HQ and Places2 priors (guided-diffusion, 552.8M params)
    "celebahq-256": dict(_PUBLISHED),
    "places-256": dict(_PUBLISHED),
    # guided-diffusion's class-conditional ImageNet prior (256x256_diffusion.pt; RePaint's inet256 configs)
    "imagenet-256": {**_PUBLISHED, "num_classes": 1000},
}


#: Sampling settings `zoo study` tunes on its validation split, cheapest first: a plain DDIM
#: chain without resampling (25 calls) and RePaint's resampling on a short chain (t_T 20, each
#: level denoised twice with a jump back: 39 calls). Longer chains are left out because one
#: call of the `small` UNet costs about 0.09 CPU-seconds per 64 px image on one core (`zoo
#: bench repaint --preset small --resolution 64`): the `fast` schedule's 235 calls would take
#: about 2.5 hours for a study's 400 test images per budget.
TUNABLE = (
    {"sampling": "custom", "t_T": 25, "jump_length": 1, "jump_n_sample": 1, "sampler": "ddim", "eta": 0.0},
    {"sampling": "custom", "t_T": 20, "jump_length": 1, "jump_n_sample": 2, "sampler": "ddim", "eta": 1.0},
)
