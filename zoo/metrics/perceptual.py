"""LPIPS (Zhang et al. CVPR 2018) through the ``lpips`` package, version 0.1.

The linear calibration layers ship inside the pip package; the backbone is torchvision's
ImageNet AlexNet (``lpips``, the default, as in the LPIPS paper) or VGG16 (``lpips-vgg``),
read from the torch hub cache (see :mod:`zoo.metrics.weights`). Images go in at [-1, 1],
which is what ``lpips.LPIPS`` expects.
"""

from __future__ import annotations

import functools

import torch

from zoo.metrics.weights import cached_or_download

BACKBONES = {"alex": "AlexNet_Weights", "vgg": "VGG16_Weights"}


def backbone_url(net: str) -> str:
    import torchvision

    return getattr(torchvision.models, BACKBONES[net]).IMAGENET1K_V1.url


@functools.lru_cache(maxsize=4)
def lpips_model(net: str = "alex", device: str = "cpu") -> torch.nn.Module:
    """The ``lpips.LPIPS`` network, its backbone from the hub cache (never random)."""
    import warnings

    import lpips

    cached_or_download(backbone_url(net), f"LPIPS {net} backbone")
    with warnings.catch_warnings():  # lpips calls torchvision's deprecated pretrained=True
        warnings.simplefilter("ignore", UserWarning)
        model = lpips.LPIPS(net=net, version="0.1", pretrained=True, verbose=False)
    return model.eval().requires_grad_(False).to(device)


def lpips_distance(pred: torch.Tensor, gt: torch.Tensor, net: str = "alex") -> torch.Tensor:
    """LPIPS per image (B,) between [-1, 1] images."""
    model = lpips_model(net, str(pred.device))
    with torch.no_grad():
        return model(pred.float(), gt.float()).flatten().double()


def lpips_alex(pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    return lpips_distance(pred, gt, "alex")


def lpips_vgg(pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    return lpips_distance(pred, gt, "vgg")
