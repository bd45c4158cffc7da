"""LaMa's training objective (``saicinpainting/training/losses`` of advimman/lama).

All functions take images in [0, 1] (LaMa's own range, so loss weights and the R1 scale
are the published ones) and masks with 1 = hole.

* masked L1: per-pixel weights ``weight_known`` outside the hole, ``weight_missing`` inside;
* non-saturating adversarial loss with R1 on reals; the discriminator's target for a fake
  image is the mask itself (hole cells fake, known cells real: ``mask_as_fake_target``);
* feature matching: MSE between discriminator activations of fake and real images;
* high-receptive-field perceptual loss: MSE between the four stage outputs of a dilated
  ResNet-50 trained for ADE20k segmentation.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.models.resnet import Bottleneck

from zoo.errors import ZooError

HRF_FILE = "encoder_epoch_20.pth"
HRF_SUBDIR = Path("ade20k") / "ade20k-resnet50dilated-ppm_deepsup"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def masked_l1(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, weight_known: float, weight_missing: float) -> torch.Tensor:
    weights = mask * weight_missing + (1 - mask) * weight_known  # (B, 1, H, W)
    return ((pred - target).abs() * weights).mean()


def mask_at(mask: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """The mask resized to the discriminator's output grid (nearest, as LaMa)."""
    return F.interpolate(mask, size=logits.shape[-2:], mode="nearest")


def r1_penalty(real_logits: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """E ||d D(x) / d x||^2 over real images (``real`` must require grad)."""
    (grad,) = torch.autograd.grad(real_logits.sum(), real, create_graph=True)
    return grad.flatten(1).pow(2).sum(1).mean()


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """softplus(-D(real)) + mask * softplus(D(fake)) + (1 - mask) * softplus(-D(fake))."""
    m = mask_at(mask, fake_logits)
    fake = m * F.softplus(fake_logits) + (1 - m) * F.softplus(-fake_logits)
    return (F.softplus(-real_logits) + fake).mean()


def generator_adv_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    return F.softplus(-fake_logits).mean()


def feature_matching(fake_feats: list[torch.Tensor], real_feats: list[torch.Tensor]) -> torch.Tensor:
    return torch.stack([F.mse_loss(f, r) for f, r in zip(fake_feats, real_feats)]).mean()


# -- high-receptive-field perceptual loss ---------------------------------------------------
class ResNet50Dilated(nn.Module):
    """The ADE20k segmentation encoder (CSAIL semantic-segmentation-pytorch): ResNet-50 with
    a three-conv stem and dilation 2 / 4 instead of stride in stages 3 / 4 (output stride 8).

    (B, 3, H, W) ImageNet-normalised -> [stage1 (256, H/4), stage2 (512, H/8),
    stage3 (1024, H/8), stage4 (2048, H/8)]. Key names match ``encoder_epoch_20.pth``.
    """

    def __init__(self) -> None:
        super().__init__()

        def conv_bn(i: int, o: int, stride: int = 1) -> tuple[nn.Conv2d, nn.BatchNorm2d]:
            return nn.Conv2d(i, o, 3, stride, 1, bias=False), nn.BatchNorm2d(o)

        self.conv1, self.bn1 = conv_bn(3, 64, 2)
        self.conv2, self.bn2 = conv_bn(64, 64)
        self.conv3, self.bn3 = conv_bn(64, 128)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.inplanes = 128
        self.layer1 = self._stage(64, 3, stride=1, dilation=1)
        self.layer2 = self._stage(128, 4, stride=2, dilation=1)
        self.layer3 = self._stage(256, 6, stride=1, dilation=2)  # stride 2 -> dilation 2
        self.layer4 = self._stage(512, 3, stride=1, dilation=4)  # stride 2 -> dilation 4

    def _stage(self, planes: int, blocks: int, stride: int, dilation: int) -> nn.Sequential:
        down = nn.Sequential(nn.Conv2d(self.inplanes, planes * 4, 1, stride, bias=False), nn.BatchNorm2d(planes * 4))
        # the first block of a dilated stage keeps half the dilation (CSAIL's _nostride_dilate)
        layers = [Bottleneck(self.inplanes, planes, stride, down, dilation=max(1, dilation // 2))]
        self.inplanes = planes * 4
        layers += [Bottleneck(self.inplanes, planes, dilation=dilation) for _ in range(blocks - 1)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        x = self.maxpool(F.relu(self.bn3(self.conv3(x))))
        feats = []
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = stage(x)
            feats.append(x)
        return feats


def find_hrf_weights(setting: str) -> Path:
    """The encoder file from the config value (file or folder), else under $TORCH_HOME."""
    candidates = []
    for root in [setting] if setting else ([os.environ["TORCH_HOME"]] if os.environ.get("TORCH_HOME") else []):
        p = Path(root).expanduser()
        candidates += [p] if p.suffix == ".pth" else [p / HRF_SUBDIR / HRF_FILE, p / HRF_FILE]
    for p in candidates:
        if p.is_file():
            return p
    where = f" (looked at {', '.join(str(c) for c in candidates)})" if candidates else ""
    raise ZooError(
        f"the high-receptive-field perceptual loss needs the ADE20k ResNet-50-dilated weights "
        f"{HRF_SUBDIR / HRF_FILE}{where}; download it (see plugins/lama/README.md) and pass "
        f"--set hrf_pl_weights=PATH, or turn the loss off with --set hrf_pl_weight=0"
    )


def load_hrf_encoder(setting: str) -> ResNet50Dilated:
    """Build the frozen encoder and load its pretrained weights (read without executing code)."""
    from zoo.official import load_official, tensors_only

    path = find_hrf_weights(setting)
    state = tensors_only(load_official(path))
    net = ResNet50Dilated()
    own = net.state_dict()
    needed = [k for k in own if not k.endswith("num_batches_tracked")]
    missing = [k for k in needed if k not in state]
    wrong = [k for k in needed if k in state and state[k].shape != own[k].shape]
    if missing or wrong:
        k = (missing or wrong)[0]
        raise ZooError(f"{path} is not the ADE20k ResNet-50-dilated encoder ({len(missing)} missing and {len(wrong)} mis-shaped tensors, e.g. {k})")
    net.load_state_dict({k: state.get(k, own[k]) for k in own})
    net.eval().requires_grad_(False)
    return net


class HRFPerceptualLoss(nn.Module):
    """sum over the encoder's 4 stages of MSE(features(pred), features(target))."""

    def __init__(self, encoder: ResNet50Dilated) -> None:
        super().__init__()
        self.encoder = encoder
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> "HRFPerceptualLoss":
        return super().train(False)  # frozen BN statistics, always

    def forward(self, pred01: torch.Tensor, target01: torch.Tensor) -> torch.Tensor:
        pred_feats = self.encoder((pred01 - self.mean) / self.std)
        with torch.no_grad():
            target_feats = self.encoder((target01 - self.mean) / self.std)
        return torch.stack([F.mse_loss(p, t) for p, t in zip(pred_feats, target_feats)]).sum()
