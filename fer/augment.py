"""Batched augmentation of face tensors, done on the whole batch at once (no per-image Python loop).

Faces are (N, 1, 48, 48) floats in [0, 1]. What suits faces: horizontal flips (expressions are
roughly symmetric), small rotations, shifts and zooms (detector boxes wobble), brightness and contrast
changes (lighting), and random erasing (occlusions: hands, glasses, hair). Never vertical flips.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.nn import functional as F


@dataclass
class AugmentConfig:
    flip: float = 0.5  # probability of a horizontal flip
    rotate_deg: float = 12.0  # uniform in [-rotate_deg, rotate_deg]
    shift: float = 0.10  # fraction of the image size, uniform in [-shift, shift] on each axis
    scale: float = 0.12  # zoom factor uniform in [1 - scale, 1 + scale]
    brightness: float = 0.25  # additive, uniform in [-b, b] * 0.5
    contrast: float = 0.25  # multiplicative around the mean, uniform in [1 - c, 1 + c]
    erase: float = 0.5  # probability of erasing one random rectangle
    erase_area: tuple[float, float] = (0.02, 0.2)


def augment(images: torch.Tensor, config: AugmentConfig, generator: torch.Generator) -> torch.Tensor:
    n = images.shape[0]

    def uniform(low: float, high: float) -> torch.Tensor:
        return low + (high - low) * torch.rand(n, generator=generator)

    # One affine warp per image: rotation, zoom, shift, and the flip as a negative x scale.
    angle = uniform(-config.rotate_deg, config.rotate_deg) * math.pi / 180
    zoom = uniform(1 - config.scale, 1 + config.scale)
    flip = torch.where(torch.rand(n, generator=generator) < config.flip, -1.0, 1.0)
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = cos * flip, -sin
    theta[:, 1, 0], theta[:, 1, 1] = sin * flip, cos
    theta[:, 0, 2] = uniform(-2 * config.shift, 2 * config.shift)
    theta[:, 1, 2] = uniform(-2 * config.shift, 2 * config.shift)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    out = F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)

    mean = out.mean(dim=(1, 2, 3), keepdim=True)
    contrast = uniform(1 - config.contrast, 1 + config.contrast).view(n, 1, 1, 1)
    brightness = (uniform(-config.brightness, config.brightness) * 0.5).view(n, 1, 1, 1)
    out = ((out - mean) * contrast + mean + brightness).clamp_(0, 1)

    if config.erase > 0:
        size = images.shape[-1]
        area = uniform(*config.erase_area) * size * size
        aspect = torch.exp(uniform(math.log(0.3), math.log(3.3)))
        h = (area * aspect).sqrt().clamp(1, size).long()
        w = (area / aspect).sqrt().clamp(1, size).long()
        top = (torch.rand(n, generator=generator) * (size - h + 1)).long()
        left = (torch.rand(n, generator=generator) * (size - w + 1)).long()
        rows = torch.arange(size).view(1, size, 1)
        cols = torch.arange(size).view(1, 1, size)
        box = (
            (rows >= top.view(n, 1, 1))
            & (rows < (top + h).view(n, 1, 1))
            & (cols >= left.view(n, 1, 1))
            & (cols < (left + w).view(n, 1, 1))
        )
        box &= (torch.rand(n, generator=generator) < config.erase).view(n, 1, 1)
        noise = torch.rand(out.shape, generator=generator)
        out = torch.where(box.unsqueeze(1), noise, out)
    return out


def mixup(
    images: torch.Tensor, targets: torch.Tensor, alpha: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Blend each image (and its target) with a random partner; alpha is the Beta distribution's parameter."""
    if alpha <= 0:
        return images, targets
    lam = float(torch.distributions.Beta(alpha, alpha).sample())
    perm = torch.randperm(images.shape[0], generator=generator)
    return lam * images + (1 - lam) * images[perm], lam * targets + (1 - lam) * targets[perm]


def cutmix(
    images: torch.Tensor, targets: torch.Tensor, alpha: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Paste one rectangle of a random partner into each image (Yun et al. 2019); the targets mix by the
    pasted share of the area. One box per batch, its area 1 - lambda with lambda ~ Beta(alpha, alpha)."""
    if alpha <= 0:
        return images, targets
    size = images.shape[-1]
    lam = float(torch.distributions.Beta(alpha, alpha).sample())
    side = int(round(size * math.sqrt(1 - lam)))
    cy, cx = (int(v) for v in torch.randint(size, (2,), generator=generator))
    top, bottom = max(cy - side // 2, 0), min(cy + side - side // 2, size)
    left, right = max(cx - side // 2, 0), min(cx + side - side // 2, size)
    perm = torch.randperm(images.shape[0], generator=generator)
    mixed = images.clone()
    mixed[..., top:bottom, left:right] = images[perm][..., top:bottom, left:right]
    pasted = (bottom - top) * (right - left) / (size * size)  # the box is clipped at the borders
    return mixed, (1 - pasted) * targets + pasted * targets[perm]
