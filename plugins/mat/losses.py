"""MAT's objective (``losses/loss.py`` TwoStageLoss and ``losses/pcp.py`` of fenglinglwb/MAT).

Images in [-1, 1]; the discriminator sees MAT's mask (1 = known, offset by -0.5) beside the
image, and scores the final output with one head and the first-stage output with another.

* non-saturating GAN loss on both heads: G: softplus(-D(fake)) + softplus(-D1(fake1));
  D: softplus(D(fake)) + softplus(D1(fake1)) + softplus(-D(real)) + softplus(-D1(real));
* R1 on reals for both heads: gamma / 2 * ||dD/dx||^2, lazily every k steps, scaled by k;
* perceptual loss: L1 between VGG-19 features (ImageNet-normalised [0, 1] input) at
  conv4_4 (weight 1/4) and conv5_4 (weight 1/2), before their ReLUs.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from zoo.errors import ZooError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
VGG_LAYERS = {25: 0.25, 34: 0.5}  # torchvision vgg19.features index: conv4_4, conv5_4


def generator_adv(logits: torch.Tensor, logits_stg1: torch.Tensor) -> torch.Tensor:
    return F.softplus(-logits).mean() + F.softplus(-logits_stg1).mean()


def discriminator_adv(fake: torch.Tensor, fake_stg1: torch.Tensor, real: torch.Tensor, real_stg1: torch.Tensor) -> torch.Tensor:
    return (F.softplus(fake) + F.softplus(fake_stg1) + F.softplus(-real) + F.softplus(-real_stg1)).mean()


def r1_penalty(logits: torch.Tensor, logits_stg1: torch.Tensor, real: torch.Tensor, real_stg1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-head E ||d logits / d x||^2 (``real`` and ``real_stg1`` must require grad)."""
    g, g1 = torch.autograd.grad([logits.sum() + logits_stg1.sum()], [real, real_stg1], create_graph=True)
    return g.float().square().sum([1, 2, 3]).mean(), g1.float().square().sum([1, 2, 3]).mean()


def vgg19_file(setting: str) -> Path:
    """The torchvision VGG-19 weights: the configured file, else the torch hub cache."""
    if setting:
        p = Path(setting).expanduser()
        if p.is_file():
            return p
        raise ZooError(f"mat: pcp_weights={setting!r} is not a file; give torchvision's vgg19-dcbb9e9d.pth, or turn the perceptual loss off with --set pcp_weight=0")
    from torchvision.models import VGG19_Weights

    from zoo.metrics.weights import cached_or_download

    return cached_or_download(VGG19_Weights.IMAGENET1K_V1.url, "mat perceptual loss (VGG-19)", "; or pass --set pcp_weights=FILE, or --set pcp_weight=0")


def load_vgg19_features(setting: str) -> nn.Sequential:
    """VGG-19 up to conv5_4, frozen, weights read without executing code."""
    from torchvision.models import vgg19

    from zoo.official import load_official, tensors_only

    path = vgg19_file(setting)
    state = tensors_only(load_official(path))
    features = vgg19(weights=None).features[: max(VGG_LAYERS) + 1]
    own = {f"features.{k}": v for k, v in features.state_dict().items()}
    missing = [k for k in own if k not in state]
    wrong = [k for k in own if k in state and state[k].shape != own[k].shape]
    if missing or wrong:
        raise ZooError(f"{path} is not torchvision's VGG-19 ({len(missing)} missing and {len(wrong)} mis-shaped tensors, e.g. {(missing or wrong)[0]})")
    features.load_state_dict({k[len("features."):]: state[k] for k in own})
    return features.eval().requires_grad_(False)


class VGGPerceptualLoss(nn.Module):
    """sum_l w_l * L1(phi_l(pred), phi_l(target)), phi = VGG-19 conv4_4 / conv5_4 (pre-ReLU)."""

    def __init__(self, features: nn.Sequential) -> None:
        super().__init__()
        self.features = features
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> "VGGPerceptualLoss":
        return super().train(False)

    def _feats(self, x: torch.Tensor) -> dict[int, torch.Tensor]:
        x = ((x + 1) / 2 - self.mean) / self.std
        out = {}
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in VGG_LAYERS:
                out[i] = x
        return out

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        fp = self._feats(pred)
        with torch.no_grad():
            ft = self._feats(target)
        return sum(w * F.l1_loss(fp[i], ft[i]) for i, w in VGG_LAYERS.items())
