"""Config and presets of ``mat``.

The dataclass defaults are the published 512 px MAT (``networks/mat.py`` of fenglinglwb/MAT
and the training command of its README: ``--cfg places512 --batch 32 --pr 0.1 --pl False
--truncation 0.5 --style_mix 0.5 --ema 10 --lr 0.001``, R1 gamma 10); presets override a few
fields.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from zoo.errors import ZooError

NOISE_MODES = ("random", "const", "none")


@dataclass
class MatConfig:
    resolution: int = 512  # training size; a power of two (the generator's layout follows it)
    # training augmentation, the published recipe: MAT, a random 512 crop of the whole Places image
    # (reflect-padded when smaller) and x-flips.
    # Validation and evaluation always use fixed centre crops (docs/training.md, Augmentation)
    crop: str = "random"  # random | center: where the training crop is taken (zoo.data)
    flip: bool = True  # random horizontal flip of training images
    # -- style manipulation: mapping network z -> w ---------------------------------------
    z_dim: int = 512  # noise z
    w_dim: int = 512  # style w
    mapping_layers: int = 8  # FC layers of the mapping network (places512: map=8)
    mapping_lr_mul: float = 0.01  # learning-rate multiplier of the mapping layers (StyleGAN)
    w_avg_beta: float = 0.995  # decay of the tracked mean w (truncation)
    # -- channels of the convolutional second stage: min(channel_max, channel_base / res) ---
    channel_base: int = 32768  # 512 px: 64, 256: 128, 128: 256, <= 64: 512 (MAT's nf table)
    channel_max: int = 512
    # -- first stage: partial-conv head, window-MCA transformer, style-modulated conv tail --
    dim: int = 180  # channels of the first stage and its tokens
    num_heads: int = 6  # attention heads
    token_res: int = 64  # token grid of the transformer's first/last stage (head downsamples to it)
    depths: tuple[int, int, int, int, int] = (2, 3, 4, 3, 2)  # blocks per stage: res, /2, /4, /2, res
    window_sizes: tuple[int, int, int, int, int] = (8, 16, 16, 16, 8)  # window per stage (odd blocks shift by half)
    mlp_ratio: float = 2.0  # hidden width of the block MLP
    square: int = 16  # to_square: the noise map of the style module is square x square, resized to the tokens
    # -- sampling -------------------------------------------------------------------------
    truncation_psi: float = 1.0  # w = w_avg + psi (w - w_avg) at sampling (generate_image.py: 1)
    noise_mode: str = "random"  # style-conv noise: random | const (the stored maps) | none
    score_samples: int = 4  # zoo score: completions per image for the diversity score (0 = skip it)
    # -- discriminator (two heads: final image, first-stage image) ------------------------
    discriminator: bool = True  # build it (training, realism score); imported generators have none
    mbstd_group: int = 4  # minibatch-stddev group (places512 asks 8, capped by 4 images per GPU)
    # -- losses and optimisation (TwoStageLoss, training_loop.py) ------------------------
    r1_gamma: float = 10.0  # R1 on reals, both heads
    r1_every: int = 16  # lazy R1 (D_reg_interval): every k steps, scaled by k
    g_reg_every: int = 4  # G_reg_interval: only rescales G's lr/betas (path length reg is off)
    pcp_weight: float = 0.1  # VGG-19 perceptual loss (conv4_4 / 4 + conv5_4 / 2); README --pr 0.1
    pcp_weights: str = ""  # torchvision vgg19 weights file (vgg19-dcbb9e9d.pth); empty = torch hub cache
    l1_weight: float = 0.0  # zoo addition, off in MAT: L1 of the output (tiny uses it to learn in seconds)
    style_mixing: float = 0.5  # style-mixing probability in training (--style_mix)
    train_truncation_psi: float = 0.5  # truncation in training (--truncation 0.5)
    lr_g: float = 1e-3  # Adam; x k/(k+1) for lazy regularisation, as StyleGAN2-ADA
    lr_d: float = 1e-3
    betas: tuple[float, float] = (0.0, 0.99)  # Adam betas (** k/(k+1)), eps 1e-8
    ema_kimg: float = 10.0  # EMA half-life in thousands of images: decay = 0.5 ** (batch / (ema_kimg * 1000))
    checkpoint_convs: bool = False  # --grad-checkpointing also recomputes the conv blocks (most activations at 512 px)
    steps: int = 781_250  # 25 000 kimg / batch 32
    batch_size: int = 32  # global batch (8 GPUs x 4); --micro-batch auto reaches it on one small GPU
    train_masks: str = "mat-train"  # MAT's free-form strokes + boxes

    @property
    def num_ws(self) -> int:
        return int(math.log2(self.resolution)) * 2 - 6

    @property
    def down_times(self) -> int:
        """Stride-2 partial convs of the head, from the image to the token grid."""
        return int(math.log2(self.resolution // self.token_res))

    def nf(self, res: int) -> int:
        return int(min(self.channel_max, self.channel_base // res))

    @property
    def multiple(self) -> int:
        """Image sizes the window layout takes: multiples of this."""
        scale = self.resolution // self.token_res
        need = self.resolution // 16  # second stage: its encoder halves the image down to 1/16 of resolution
        for factor, win in zip((1, 2, 4, 2, 1), self.window_sizes):
            res = self.token_res // factor
            win = min(win, res)
            need = max(need, scale * factor * win)
        return need

    def validate(self) -> None:
        def bad(field: str, value, valid: str) -> None:
            raise ZooError(f"mat: {field}={value!r} is invalid; {valid}")

        r = self.resolution
        if r < 32 or r & (r - 1):
            bad("resolution", r, "use a power of two, 32 or more")
        for name in ("z_dim", "w_dim", "mapping_layers", "dim", "num_heads", "channel_base", "channel_max", "square", "mbstd_group", "r1_every", "g_reg_every", "batch_size", "steps"):
            if getattr(self, name) < 1:
                bad(name, getattr(self, name), "use a positive integer")
        t = self.token_res
        if t < 8 or t & (t - 1) or t >= r:
            bad("token_res", t, f"use a power of two from 8 to half the resolution ({r // 2})")
        if self.dim % self.num_heads:
            bad("num_heads", self.num_heads, f"dim ({self.dim}) must be divisible by it")
        if len(self.depths) != 5 or min(self.depths) < 1:
            bad("depths", self.depths, "give five positive block counts (stages at token_res, /2, /4, /2, token_res)")
        if len(self.window_sizes) != 5 or min(self.window_sizes) < 1:
            bad("window_sizes", self.window_sizes, "give five positive window sizes")
        for factor, win in zip((1, 2, 4, 2, 1), self.window_sizes):
            res = t // factor
            if res > win and res % win:
                bad("window_sizes", self.window_sizes, f"each stage's token grid (token_res / 1, 2, 4, 2, 1) must be a multiple of its window, or no larger")
        if self.score_samples < 0 or self.score_samples == 1:
            bad("score_samples", self.score_samples, "use 0 (no diversity score) or 2 or more")
        if self.noise_mode not in NOISE_MODES:
            bad("noise_mode", self.noise_mode, f"valid choices: {', '.join(NOISE_MODES)}")
        for name in ("truncation_psi", "train_truncation_psi"):
            if not 0 <= getattr(self, name) <= 1:
                bad(name, getattr(self, name), "use a value in [0, 1]")
        if not 0 <= self.style_mixing <= 1:
            bad("style_mixing", self.style_mixing, "use a probability in [0, 1]")
        for name in ("r1_gamma", "pcp_weight", "l1_weight", "lr_g", "lr_d", "ema_kimg"):
            if getattr(self, name) < 0:
                bad(name, getattr(self, name), "use a value >= 0")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            bad("betas", self.betas, "give two values in [0, 1)")


MAT_PRESETS = {
    "tiny": {
        "crop": "center", "flip": False,  # tests overfit fixed images: no augmentation
        "resolution": 32,
        "z_dim": 32,
        "w_dim": 32,
        "mapping_layers": 2,
        "channel_base": 512,  # 32 px: 16 channels, 16 px and below: 32
        "channel_max": 32,
        "dim": 24,
        "num_heads": 2,
        "token_res": 16,
        "depths": (2, 2, 1, 2, 2),
        "window_sizes": (4, 4, 4, 4, 4),
        "square": 4,
        "mbstd_group": 2,
        "r1_every": 4,
        "pcp_weight": 0.0,  # no pretrained VGG in tests
        "l1_weight": 10.0,  # so a few dozen CPU steps visibly learn
        "style_mixing": 0.0,
        "lr_g": 2e-3,
        "lr_d": 2e-3,
        "ema_kimg": 0.02,  # decay 0.87 at batch 4
        "steps": 50,
        "batch_size": 4,
        "train_masks": "box",
    },
    # 64 px on a CPU, ~1.9 M parameters: the published architecture scaled down for `zoo study` and
    # CPU-minute --time-budget runs (table in README.md)
    "small": {
        "resolution": 64,
        "z_dim": 128,
        "w_dim": 128,
        "mapping_layers": 4,
        "channel_max": 64,
        "dim": 48,
        "num_heads": 4,
        "token_res": 16,  # 1/4 of the image (MAT at 512 px: 1/8)
        "depths": (2, 2, 2, 2, 2),
        "window_sizes": (8, 8, 4, 8, 8),
        "square": 8,
        "pcp_weight": 0.0,  # its VGG-19 weights are not on an offline machine ...
        "l1_weight": 10.0,  # ... so an L1 term gives the first CPU minutes a signal
        "ema_kimg": 0.5,  # decay 0.9945 at batch 4
        "steps": 20_000,
        "batch_size": 4,  # MAT's batch per GPU
    },
    "base": {  # 256 px, about a quarter of mat-256's weights: one consumer GPU
        "resolution": 256,
        "z_dim": 256,
        "w_dim": 256,
        "channel_max": 256,
        "dim": 120,
        "num_heads": 4,
        "depths": (2, 2, 3, 2, 2),
    },
    "mat-256": {"resolution": 256},
    "mat-512": {},
}
