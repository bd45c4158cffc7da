"""Config and presets of ``lama``.

The dataclass defaults are the published big-lama configuration
(``configs/training/big-lama.yaml`` of advimman/lama: generator ``ffc_resnet`` with 18 blocks,
discriminator ``pix2pixhd_nlayer``, ``default_optimizers``, trainer
``any_gpu_large_ssim_ddp_final``); presets override a few fields.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from zoo.config import require


@dataclass
class LamaConfig:
    resolution: int = 256  # training crop size (big-lama: 256 px crops of Places)
    # training augmentation, the published recipe: LaMa's `distortions` transform, RandomCrop to out_size +
    # HorizontalFlip (its affine, perspective and colour jitter are not reproduced).
    # Validation and evaluation always use fixed centre crops (docs/training.md, Augmentation)
    crop: str = "random"  # random | center: where the training crop is taken (zoo.data)
    flip: bool = True  # random horizontal flip of training images
    # -- generator: FFC-ResNet ----------------------------------------------------------
    ngf: int = 64  # channels after the 7x7 stem; doubles at each downsampling
    n_downsampling: int = 3  # stride-2 FFC convs (sampling pads to a multiple of 2**n)
    n_blocks: int = 18  # residual FFC blocks (big-lama 18, lama-fourier 9)
    max_features: int = 1024  # channel cap of the generator
    ratio_g: float = 0.75  # global (spectral) share of channels in the residual blocks
    enable_lfu: bool = False  # local Fourier unit in the spectral transforms (off in LaMa)
    # -- discriminator: pix2pixHD n-layer PatchGAN --------------------------------------
    discriminator: bool = True  # build it (needed to train and for the realism score)
    ndf: int = 64  # channels of the first discriminator conv
    d_layers: int = 4  # stride-2 conv layers (n_layers in pix2pixhd_nlayer.yaml)
    # -- losses (losses: block of big-lama.yaml) ---------------------------------------
    l1_weight_known: float = 10.0  # L1 on known pixels (weight_known)
    l1_weight_missing: float = 0.0  # L1 on hole pixels (weight_missing; 0 in LaMa)
    adv_weight: float = 10.0  # non-saturating generator loss weight
    r1_gamma: float = 0.001  # R1 penalty coefficient (gp_coef) on real images
    r1_every: int = 1  # R1 every k discriminator steps, scaled by k (LaMa: every step)
    fm_weight: float = 100.0  # discriminator feature matching (MSE of activations)
    hrf_pl_weight: float = 30.0  # high-receptive-field perceptual loss (resnet_pl); 0 = off
    #: ADE20k ResNet-50-dilated encoder weights: the file encoder_epoch_20.pth, or a folder
    #: holding ade20k/ade20k-resnet50dilated-ppm_deepsup/encoder_epoch_20.pth (like LaMa's
    #: TORCH_HOME); empty = look under $TORCH_HOME.
    hrf_pl_weights: str = ""
    # -- optimisation (default_optimizers.yaml, trainer kwargs) -------------------------
    lr_g: float = 1e-3  # Adam, generator
    lr_d: float = 1e-4  # Adam, discriminator
    betas: tuple[float, float] = (0.9, 0.999)  # Adam betas (torch defaults, as in LaMa)
    grad_clip: float = 1.0  # gradient_clip_val; used when --grad-clip is not given
    ema_decay: float = 0.0  # EMA of the generator weights (LaMa: none)
    steps: int = 1_000_000  # 40 epochs x 25000 batches
    batch_size: int = 10  # per GPU in LaMa (trained on several GPUs)
    train_masks: str = "lama-train"  # LaMa's mixture of irregular strokes and boxes
    # -- test-time feature refinement (predict.py ``refine:`` / ``refiner:`` of
    #    configs/prediction/default.yaml; Kulshreshtha et al. 2022), sampling only -------
    refine: bool = False  # optimise the generator's bottleneck features per image (refine)
    refine_n_iters: int = 15  # forward passes per scale after the coarsest (refiner.n_iters)
    refine_lr: float = 0.002  # Adam learning rate on the features (refiner.lr)
    refine_min_side: int = 512  # scales: 1 + round(log2(short side / min_side)) (refiner.min_side)
    refine_max_scales: int = 3  # cap on the number of pyramid scales (refiner.max_scales)
    refine_px_budget: int = 1_800_000  # larger images are refined at a size with H*W <= this (refiner.px_budget)

    def for_training(self) -> "LamaConfig":
        """Training is adversarial: the discriminator is always built (a generator-only
        import has ``discriminator=false``; ``zoo train lama --init`` fine-tunes it with a
        freshly initialised discriminator, see :meth:`LamaTask.init_missing`)."""
        return self if self.discriminator else dataclasses.replace(self, discriminator=True)

    def validate(self) -> None:
        for name in ("ngf", "ndf", "max_features", "r1_every"):
            require(getattr(self, name) >= 1, name, getattr(self, name), "must be at least 1")
        require(self.n_downsampling >= 0, "n_downsampling", self.n_downsampling, "must be 0 or more")
        require(0.0 <= self.ratio_g <= 1.0, "ratio_g", self.ratio_g, "must lie in [0, 1]")
        require(self.lr_g > 0 and self.lr_d > 0, "lr_g/lr_d", (self.lr_g, self.lr_d), "must be > 0")
        require(all(0.0 <= b < 1.0 for b in self.betas), "betas", self.betas, "each must lie in [0, 1)")
        for name in ("refine_n_iters", "refine_min_side", "refine_max_scales", "refine_px_budget"):
            require(getattr(self, name) >= 1, name, getattr(self, name), "must be at least 1")
        require(self.refine_lr > 0, "refine_lr", self.refine_lr, "must be > 0")
        if self.refine:
            require(self.n_blocks >= 1, "refine", self.refine, "needs a generator with residual blocks (n_blocks >= 1): it optimises their input")


LAMA_PRESETS = {
    "tiny": {
        "crop": "center", "flip": False,  # tests overfit fixed images: no augmentation
        "resolution": 32,
        "ngf": 8,
        "n_blocks": 2,
        "ndf": 8,
        "d_layers": 3,
        "hrf_pl_weight": 0.0,  # no pretrained segmentation net in tests
        "l1_weight_missing": 10.0,  # hole L1 so a few CPU steps visibly learn
        "fm_weight": 10.0,
        "adv_weight": 1.0,
        "lr_g": 3e-3,  # faster on a toy problem
        "lr_d": 3e-4,
        "steps": 50,
        "batch_size": 4,
        "train_masks": "box",
    },
    # 64 px on a CPU, ~3.4 M parameters: the published architecture scaled down for `zoo study` and
    # CPU-minute --time-budget runs (table in README.md)
    "small": {
        "resolution": 64,
        "ngf": 24,  # 64 -> 8 px after 3 downsamplings, 192 channels in 6 FFC blocks
        "n_blocks": 6,
        "ndf": 32,
        "d_layers": 3,
        "hrf_pl_weight": 0.0,  # its ADE20k segmentation weights are not on an offline machine ...
        "l1_weight_missing": 10.0,  # ... so the hole gets an L1 term in its place
        "steps": 20_000,
        "batch_size": 8,
    },
    "lama-fourier": {"n_blocks": 9},
    "big-lama": {},
}
