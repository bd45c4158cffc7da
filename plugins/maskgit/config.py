"""Config and presets of ``maskgit``: the tokenizer (a diffusers ``VQModel``), the
bidirectional transformer over its tokens, training of both stages, and decoding.

The dataclass defaults are the published MaskGIT ImageNet-256 setup: a VQGAN with 128
base channels, multipliers (1, 1, 2, 2, 4), 2 residual blocks per level (tokens at 1/16 of
the side), codebook 1024 x 256; a BERT-style transformer with 24 layers, 16 heads, width
768; AdamW (0.9, 0.96), label smoothing 0.1; cosine schedule, 8-12 iterations, choice
temperature 4.5.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from zoo.errors import ZooError

SCHEDULES = ("cosine", "linear", "square", "cubic", "sqrt", "log", "exp")
STAGES = ("both", "tokenizer", "transformer")

Schedule = Literal["cosine", "linear", "square", "cubic", "sqrt", "log", "exp"]


@dataclass
class MaskGITConfig:
    resolution: int = 256  # training crop; tokens are resolution / 2**(len(vq_channels) - 1) per side
    # training augmentation, the published recipe: VQGAN/MaskGIT on ImageNet, random crops (taming's
    # ImageNetTrain random_crop=True) and horizontal flips (both stages).
    # Validation and evaluation always use fixed centre crops (docs/training.md, Augmentation)
    crop: str = "random"  # random | center: where the training crop is taken (zoo.data)
    flip: bool = True  # random horizontal flip of training images
    # -- what `zoo train` runs ----------------------------------------------------------------
    stage: Literal["both", "tokenizer", "transformer"] = "both"  # both: tokenizer, then transformer on its tokens
    #: an existing tokenizer instead of training one: a diffusers VQModel folder (config.json +
    #: diffusion_pytorch_model.safetensors), a taming-transformers VQGAN .ckpt, or a maskgit
    #: checkpoint / run folder (its tokenizer)
    tokenizer: str = ""
    #: `zoo train --time-budget` with both stages: the tokenizer's share of the wall-clock
    #: budget (the published steps' ratio, 100k : 300k); the transformer gets what it leaves
    budget_split: float = 0.25
    # -- stage 1: tokenizer (diffusers VQModel) -----------------------------------------------
    vq_channels: tuple[int, ...] = (128, 128, 256, 256, 512)  # block_out_channels, one per level
    vq_layers_per_block: int = 2  # residual blocks per level
    vq_latent_channels: int = 256  # encoder output channels (z)
    vq_embed_dim: int = 256  # codebook vector size
    codebook_size: int = 1024  # K tokens in the vocabulary
    vq_norm_groups: int = 32  # GroupNorm groups
    vq_mid_attention: bool = False  # attention in the VQModel's middle blocks (MaskGIT's VQGAN has none)
    #: a diffusers VQModel config used instead of the fields above (filled from --set tokenizer=FOLDER)
    tokenizer_config: dict[str, Any] = field(default_factory=dict)
    tokenizer_steps: int = 100_000  # stage-1 share of `zoo train` steps
    tokenizer_lr: float = 1e-4  # Adam, tokenizer and discriminator
    tokenizer_betas: tuple[float, float] = (0.5, 0.9)  # Adam betas (VQGAN)
    l1_weight: float = 1.0  # pixel reconstruction (L1)
    l2_weight: float = 0.0  # pixel reconstruction (MSE)
    perceptual_weight: float = 0.1  # LPIPS (lpips package; needs its backbone weights in the torch hub cache)
    commit_weight: float = 1.0  # diffusers' VQ loss: codebook + 0.25 * commitment
    adv_weight: float = 0.1  # hinge PatchGAN generator loss, after disc_start steps
    disc_start: int = 20_000  # adversarial warm-up: steps with the GAN losses off
    disc_channels: int = 64  # PatchGAN first-layer channels
    disc_layers: int = 3  # PatchGAN stride-2 layers
    # -- stage 2: bidirectional transformer --------------------------------------------------
    dim: int = 768  # hidden width
    depth: int = 24  # transformer blocks
    heads: int = 16  # attention heads (SDPA)
    mlp_ratio: float = 4.0  # MLP hidden = mlp_ratio * dim
    dropout: float = 0.1  # embedding, attention and MLP dropout
    prenorm: bool = False  # LayerNorm before attention/MLP (GPT/ViT) instead of after (BERT, MaskGIT)
    transformer_steps: int = 300_000  # stage-2 share of `zoo train` steps
    lr: float = 1e-4  # AdamW, transformer
    betas: tuple[float, float] = (0.9, 0.96)  # AdamW betas (MaskGIT)
    weight_decay: float = 0.045  # AdamW weight decay (MaskGIT)
    warmup_steps: int = 5_000  # linear learning-rate warm-up of the transformer
    label_smoothing: float = 0.1  # on the masked tokens' cross-entropy
    train_schedule: Schedule = "cosine"  # gamma for training: ceil(gamma(r) * N) tokens masked, r ~ U(0, 1)
    ema_decay: float = 0.0  # EMA of all weights (the checkpoint holds EMA weights); 0 = off
    batch_size: int = 256  # global batch of both stages
    train_masks: str = "box"  # engine masks; unused by the losses (both stages are unconditional)
    # -- inpainting decode ---------------------------------------------------------------------
    schedule: Schedule = "cosine"  # gamma for decoding
    total_iter: int = 12  # T: iterations of the schedule
    sweet_spot: int = 0  # stop after this many iterations and keep every sample (0 = run all T)
    choice_temperature: float = 4.5  # Gumbel noise on the confidence, annealed as temp * (1 - (t+1)/T)
    hole_margin: int = 8  # pixels: tokens within this distance of the hole become [MASK] too

    @property
    def downsample(self) -> int:
        """Pixels per token side."""
        if self.tokenizer_config:
            return 2 ** (len(self.tokenizer_config.get("block_out_channels", (64,))) - 1)
        return 2 ** (len(self.vq_channels) - 1)

    @property
    def vocab_size(self) -> int:
        if self.tokenizer_config:
            return int(self.tokenizer_config.get("num_vq_embeddings", 256))
        return self.codebook_size

    @property
    def stages(self) -> tuple[str, ...]:
        """The stages `zoo train` runs: an existing tokenizer skips stage 1."""
        if self.stage == "both":
            return ("transformer",) if self.tokenizer else ("tokenizer", "transformer")
        return (self.stage,)

    @property
    def steps(self) -> int:
        """Default `zoo train` length: the steps of the stages that run (``--steps`` overrides)."""
        return sum(self.tokenizer_steps if s == "tokenizer" else self.transformer_steps for s in self.stages)

    def validate(self) -> None:
        """One ZooError naming the first bad field."""

        def bad(name: str, value: Any, valid: str) -> ZooError:
            return ZooError(f"maskgit: {name}={value!r} is invalid; {valid}")

        for name in ("resolution", "vq_layers_per_block", "vq_latent_channels", "vq_embed_dim", "codebook_size", "vq_norm_groups",
                     "disc_channels", "disc_layers", "dim", "depth", "heads", "total_iter", "batch_size"):
            if getattr(self, name) < 1:
                raise bad(name, getattr(self, name), "it must be a positive integer")
        for name in ("tokenizer_steps", "transformer_steps", "disc_start", "warmup_steps", "sweet_spot", "hole_margin"):
            if getattr(self, name) < 0:
                raise bad(name, getattr(self, name), "it must be 0 or more")
        if not self.vq_channels or any(c < 1 for c in self.vq_channels):
            raise bad("vq_channels", self.vq_channels, "give one positive channel count per level, e.g. [32, 64]")
        if any(c % self.vq_norm_groups for c in self.vq_channels):
            raise bad("vq_channels", self.vq_channels, f"every entry must be divisible by vq_norm_groups={self.vq_norm_groups}")
        if self.resolution % self.downsample:
            raise bad("resolution", self.resolution, f"it must be a multiple of the tokenizer's downsampling {self.downsample}")
        if self.dim % self.heads:
            raise bad("dim", self.dim, f"it must be divisible by heads={self.heads}")
        if self.sweet_spot > self.total_iter:
            raise bad("sweet_spot", self.sweet_spot, f"it must be 0 (off) or at most total_iter={self.total_iter}")
        if not 0 < self.budget_split < 1:
            raise bad("budget_split", self.budget_split, "it must be between 0 and 1 (the tokenizer's share of --time-budget)")
        if not 0 <= self.dropout < 1:
            raise bad("dropout", self.dropout, "it must be in [0, 1)")
        if not 0 <= self.label_smoothing < 1:
            raise bad("label_smoothing", self.label_smoothing, "it must be in [0, 1)")
        if self.choice_temperature < 0:
            raise bad("choice_temperature", self.choice_temperature, "it must be 0 or more")
        if self.stage == "transformer" and not self.tokenizer:
            raise bad("stage", self.stage, "the transformer stage needs --set tokenizer=PATH (a maskgit tokenizer checkpoint or run, a diffusers VQModel folder, or a taming VQGAN .ckpt)")
        if self.stage == "tokenizer" and self.tokenizer:
            raise bad("tokenizer", self.tokenizer, "stage=tokenizer trains a tokenizer; drop tokenizer=PATH or use stage=transformer")


PRESETS: dict[str, dict[str, Any]] = {
    # seconds on a CPU; tests. 32 px with tokens at 1/4 (8 x 8 = 64 tokens: at 1/8 only 16
    # tokens are left, too few for a decoding schedule to matter)
    "tiny": {
        "crop": "center", "flip": False,  # tests overfit fixed images: no augmentation
        "resolution": 32, "vq_channels": (16, 32, 32), "vq_layers_per_block": 1, "vq_latent_channels": 16,
        "vq_embed_dim": 16, "codebook_size": 128, "vq_norm_groups": 8, "tokenizer_steps": 30, "tokenizer_lr": 2e-3,
        "perceptual_weight": 0.0, "adv_weight": 0.1, "disc_start": 20, "disc_channels": 8, "disc_layers": 2,
        "dim": 64, "depth": 2, "heads": 4, "dropout": 0.0, "prenorm": True, "transformer_steps": 30, "lr": 2e-3,
        "weight_decay": 0.0, "warmup_steps": 0, "batch_size": 8, "total_iter": 8, "hole_margin": 2,
    },
    # 64 px on a CPU, ~3.2 M parameters: the published architecture scaled down for `zoo study` and
    # CPU-minute --time-budget runs (table in README.md)
    # tokens at 1/4 (16 x 16 = 256; at the published 1/16 only 4 x 4 would be left)
    "small": {
        "resolution": 64, "vq_channels": (32, 64, 64), "vq_layers_per_block": 1, "vq_latent_channels": 64,
        "vq_embed_dim": 64, "codebook_size": 512, "vq_norm_groups": 16, "tokenizer_steps": 5_000, "tokenizer_lr": 2e-4,
        "perceptual_weight": 0.0,  # LPIPS weights are not on an offline machine
        "disc_start": 1_000, "disc_channels": 32, "disc_layers": 2,
        "dim": 192, "depth": 4, "heads": 4, "transformer_steps": 15_000, "lr": 3e-4, "warmup_steps": 500,
        "batch_size": 8, "hole_margin": 2,
    },
    # one consumer GPU: 128 px, tokens at 1/8 (16 x 16), a 12-layer transformer
    "base": {
        "resolution": 128, "vq_channels": (128, 128, 256, 256), "codebook_size": 1024, "tokenizer_steps": 100_000,
        "disc_start": 20_000, "dim": 512, "depth": 12, "heads": 8, "transformer_steps": 200_000, "batch_size": 32,
        "hole_margin": 4,
    },
    # the published ImageNet-256 architecture (tokens at 1/16: 16 x 16, 24 layers x 768)
    "imagenet-256": {},
}


#: Sampling settings `zoo study` tunes on its validation split: iterations T of the schedule
#: (MaskGIT reports 8-12 as the sweet spot at 256 px; fewer tokens at 64 px may need fewer).
TUNABLE = ({"total_iter": 4}, {"total_iter": 8}, {"total_iter": 12})
