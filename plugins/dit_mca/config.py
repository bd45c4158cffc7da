"""Config and presets of ``dit-mca``: a latent diffusion transformer (DiT, Peebles & Xie 2023)
whose attention is MAT's multi-head contextual attention, conditioned on the known region,
sampled with RePaint-style resampling in latent space.

Two stages: a diffusers ``AutoencoderKL`` (trained here, or any diffusers VAE folder with
``vae=PATH``), then the denoiser on its latents. ``zoo train dit-mca`` runs both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from zoo.errors import ZooError

STAGES = ("all", "vae", "denoiser")
ATTENTIONS = ("contextual-window", "contextual-global", "self")


@dataclass
class DitMcaConfig:
    resolution: int = 256  # training image size
    # training augmentation, the published recipe: DiT's train.py: centre crop + RandomHorizontalFlip (both stages).
    # Validation and evaluation always use fixed centre crops (docs/training.md, Augmentation)
    crop: str = "center"  # random | center: where the training crop is taken (zoo.data)
    flip: bool = True  # random horizontal flip of training images
    # -- latent space: diffusers AutoencoderKL -----------------------------------------------
    vae: str = ""  # "" = train one (stage vae); a diffusers AutoencoderKL folder, or a dit-mca checkpoint
    vae_config: dict[str, Any] = field(default_factory=dict)  # AutoencoderKL config; filled from `vae` when given
    vae_channels: tuple[int, ...] = (128, 256, 512, 512)  # block_out_channels of a trained VAE (8x down)
    vae_layers: int = 2  # layers_per_block
    latent_channels: int = 4
    latent_scale: float = 0.0  # z = scale * latent; 0 = 1/std of training latents (measured after the VAE stage)
    vae_steps: int = 50_000  # VAE steps when one command trains both stages
    #: `zoo train --time-budget` when one command trains both stages: the VAE's share of the
    #: wall-clock budget (vae_steps : steps = 50k : 400k); the denoiser gets what it leaves
    budget_split: float = 0.11
    vae_lr: float = 1e-4
    vae_kl_weight: float = 1e-6  # KL weight (LDM's kl-f8 setting; no LPIPS/GAN term here)
    # -- denoiser: DiT with multi-head contextual attention ----------------------------------
    depth: int = 28
    hidden_size: int = 1152
    num_heads: int = 16
    patch_size: int = 2
    mlp_ratio: float = 4.0
    #: contextual-window: MAT's multi-head contextual attention in (shifted) windows, the dynamic
    #: mask growing block by block; contextual-global: the same over the whole image (every token
    #: is valid after block 1; "contextual" in checkpoints written before windows existed);
    #: self: plain DiT attention. README.md, "Attention", says why the defaults are what they are
    attention: Literal["contextual-window", "contextual-global", "self"] = "contextual-window"
    window: int = 4  # contextual-window: tokens per window side; must divide the token grid (resolution / (VAE factor x patch))
    mask_update_blocks: int = -1  # contextual-window: the first N blocks leave out invalid keys and grow the mask; -1 = every block
    global_blocks: int = 0  # contextual-window: the last N blocks attend over all tokens instead of windows
    learn_sigma: bool = True  # 2C outputs: eps and the variance interpolation v (DiT / iDDPM)
    context_dropout: float = 0.1  # P(context dropped) in training, for classifier-free guidance
    init: str = ""  # a DiT checkpoint (DiT-XL-2-256x256.pt layout) to start the denoiser from
    # -- noise schedule (DiT: linear, 1000 steps) --------------------------------------------
    diffusion_steps: int = 1000
    beta_schedule: Literal["linear", "cosine"] = "linear"
    beta_start: float = 1e-4
    beta_end: float = 0.02
    # -- training ----------------------------------------------------------------------------
    stage: Literal["all", "vae", "denoiser"] = "all"  # all: VAE (unless `vae` is given) then denoiser
    lr: float = 1e-4  # AdamW, constant (DiT)
    weight_decay: float = 0.0
    ema_decay: float = 0.9999
    steps: int = 400_000  # denoiser steps (or VAE steps with stage=vae)
    batch_size: int = 256
    train_masks: str = "mat-train"  # hole kind drawn for the context while training
    # -- sampling ----------------------------------------------------------------------------
    num_steps: int = 250  # respaced levels of the sampling chain
    sampler: Literal["ddpm", "ddim"] = "ddpm"
    eta: float = 1.0  # ddim noise scale
    jump_length: int = 10  # RePaint j
    jump_n_sample: int = 1  # RePaint r: times each stretch is denoised (1 = no resampling)
    guidance: float = 1.0  # w: eps = eps(empty) + w (eps(c) - eps(empty)); 1 = none (one call per step)

    #: values renamed since checkpoints were written: read as their new names (zoo.config)
    VALUE_ALIASES: ClassVar[dict[str, dict[Any, Any]]] = {"attention": {"contextual": "contextual-global"}}

    def validate(self) -> None:
        """One-line :class:`ZooError` for a bad field."""
        positive = ("resolution", "latent_channels", "vae_layers", "vae_steps", "depth", "hidden_size", "num_heads",
                    "patch_size", "diffusion_steps", "steps", "batch_size", "num_steps", "jump_length", "jump_n_sample")
        for name in positive:
            if getattr(self, name) < 1:
                raise ZooError(f"dit-mca: {name}={getattr(self, name)} must be a positive integer")
        for name in ("vae_lr", "lr"):
            if getattr(self, name) <= 0:
                raise ZooError(f"dit-mca: {name}={getattr(self, name)} must be positive")
        if not 0 < self.budget_split < 1:
            raise ZooError(f"dit-mca: budget_split={self.budget_split} must be between 0 and 1 (the VAE's share of --time-budget)")
        if self.stage not in STAGES:
            raise ZooError(f"dit-mca: stage={self.stage!r} is not valid; valid choices: {', '.join(STAGES)}")
        if self.attention not in ATTENTIONS:
            raise ZooError(f"dit-mca: attention={self.attention!r} is not valid; valid choices: {', '.join(ATTENTIONS)}")
        self.validate_attention()
        if self.hidden_size % self.num_heads:
            raise ZooError(f"dit-mca: hidden_size={self.hidden_size} is not divisible by num_heads={self.num_heads}")
        if self.hidden_size % 4:
            raise ZooError(f"dit-mca: hidden_size={self.hidden_size} must be a multiple of 4 (2-D sin-cos positions)")
        if not self.vae_config and (not self.vae_channels or any(c < 1 for c in self.vae_channels)):
            raise ZooError(f"dit-mca: vae_channels={list(self.vae_channels)} must be a non-empty list of positive widths")
        if not self.vae_config and any(c % 32 for c in self.vae_channels):
            raise ZooError(f"dit-mca: vae_channels={list(self.vae_channels)} must be multiples of 32 (GroupNorm groups)")
        if self.resolution % self.multiple:
            raise ZooError(f"dit-mca: resolution={self.resolution} must be a multiple of {self.multiple} (VAE downsampling x patch_size)")
        if self.num_steps > self.diffusion_steps:
            raise ZooError(f"dit-mca: num_steps={self.num_steps} cannot exceed diffusion_steps={self.diffusion_steps}")
        if not 0.0 <= self.context_dropout <= 1.0:
            raise ZooError(f"dit-mca: context_dropout={self.context_dropout} must lie in [0, 1]")
        if self.latent_scale < 0:
            raise ZooError(f"dit-mca: latent_scale={self.latent_scale} must be positive (or 0 = measure it)")
        if self.guidance < 0:
            raise ZooError(f"dit-mca: guidance={self.guidance} must be 0 or more")
        if self.stage == "denoiser" and not self.vae:
            raise ZooError("dit-mca: stage=denoiser needs vae=PATH (a diffusers AutoencoderKL folder or a dit-mca checkpoint)")

    def validate_attention(self) -> None:
        """The attention fields: block counts within the depth; the window divides the token grid."""
        if not -1 <= self.mask_update_blocks <= self.depth:
            raise ZooError(f"dit-mca: mask_update_blocks={self.mask_update_blocks} is out of range for depth={self.depth}; "
                           f"give 0 ... {self.depth} (the first N blocks), or -1 for every block")
        if not 0 <= self.global_blocks <= self.depth:
            raise ZooError(f"dit-mca: global_blocks={self.global_blocks} is out of range for depth={self.depth}; give 0 ... {self.depth} (the last N blocks)")
        if self.attention != "contextual-window" or self.resolution % self.multiple:
            return  # (a resolution the VAE and patches cannot take has its own error)
        grid = self.resolution // self.multiple
        fits = [w for w in range(2, grid + 1) if grid % w == 0]
        if self.window < 2:
            raise ZooError(f"dit-mca: window={self.window} must be at least 2 tokens (a 1-token window spreads nothing); "
                           f"valid windows for the {grid} x {grid} token grid: {', '.join(map(str, fits))}")
        if grid % self.window:
            raise ZooError(f"dit-mca: window={self.window} does not divide the {grid} x {grid} token grid of resolution={self.resolution} "
                           f"(resolution / (VAE factor {self.vae_factor} x patch {self.patch_size})); valid windows: {', '.join(map(str, fits))}")

    @property
    def vae_factor(self) -> int:
        """Spatial downsampling of the VAE (2 ** (number of blocks - 1))."""
        channels = self.vae_config.get("block_out_channels", self.vae_channels) if self.vae_config else self.vae_channels
        return 2 ** (len(channels) - 1)

    @property
    def multiple(self) -> int:
        """Image sizes the model takes directly: multiples of VAE factor x patch size."""
        return self.vae_factor * self.patch_size

    @property
    def guidance_calls(self) -> int:
        """Network calls per step: 1 at w = 0 (unconditional) or w = 1 (conditional), else 2."""
        return 1 if self.guidance in (0.0, 1.0) else 2


#: DiT's model sizes (Peebles & Xie 2023, Table 1): depth, width, heads; patch 2.
DIT_SIZES: dict[str, dict[str, int]] = {
    "S/2": {"depth": 12, "hidden_size": 384, "num_heads": 6, "patch_size": 2},
    "B/2": {"depth": 12, "hidden_size": 768, "num_heads": 12, "patch_size": 2},
    "L/2": {"depth": 24, "hidden_size": 1024, "num_heads": 16, "patch_size": 2},
    "XL/2": {"depth": 28, "hidden_size": 1152, "num_heads": 16, "patch_size": 2},
}

#: The published DiT setting on a Stable-Diffusion-sized VAE (8x, 4 channels): 256 px,
#: 32x32 latents, AdamW 1e-4, batch 256, EMA 0.9999, 250 DDPM sampling steps.
_PUBLISHED: dict[str, Any] = {
    "resolution": 256, "vae_channels": (128, 256, 512, 512), "vae_layers": 2, "latent_channels": 4,
    "lr": 1e-4, "ema_decay": 0.9999, "batch_size": 256, "num_steps": 250,
}

PRESETS: dict[str, dict[str, Any]] = {
    # seconds on a CPU; tests. 32 px -> 16x16 latents (2x VAE) -> 8x8 tokens
    "tiny": {
        "crop": "center", "flip": False,  # tests overfit fixed images: no augmentation
        "resolution": 32, "vae_channels": (32, 32), "vae_layers": 1, "latent_channels": 4, "vae_steps": 30,
        "vae_lr": 2e-3, "depth": 2, "hidden_size": 64, "num_heads": 2, "patch_size": 2, "lr": 1e-3,
        "ema_decay": 0.9, "steps": 40, "batch_size": 4, "train_masks": "box",
        "num_steps": 10, "jump_length": 2, "jump_n_sample": 2, "window": 2,
    },
    # 64 px on a CPU, ~3.8 M parameters: the published architecture scaled down for `zoo study` and
    # CPU-minute --time-budget runs (table in README.md)
    # 64 px -> 16 x 16 x 4 latents (4x VAE) -> 8 x 8 tokens; a DiT of 4 blocks x 192 (S/2 is 12 x 384)
    "small": {
        "resolution": 64, "vae_channels": (32, 64, 64), "vae_layers": 1, "latent_channels": 4, "vae_steps": 5_000,
        "vae_lr": 2e-4, "depth": 4, "hidden_size": 192, "num_heads": 3, "patch_size": 2, "lr": 3e-4,
        "ema_decay": 0.999, "steps": 20_000, "batch_size": 8, "budget_split": 0.2, "window": 2,
    },
    **{name: {**_PUBLISHED, **size} for name, size in DIT_SIZES.items()},
}


#: Sampling settings `zoo study` tunes on its validation split: respaced levels of the chain
#: (the published 250 is out of a CPU study's reach at 200 test images).
TUNABLE = ({"num_steps": 25}, {"num_steps": 50}, {"num_steps": 100})
