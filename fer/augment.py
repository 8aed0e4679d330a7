"""Batched augmentation of face tensors, done on the whole batch at once (no per-image Python loop).

Faces are (N, 1, 48, 48) floats in [0, 1]. What suits faces: horizontal flips (expressions are
roughly symmetric), small rotations, shifts and zooms (detector boxes wobble), brightness and contrast
changes (lighting), and random erasing (occlusions: hands, glasses, hair). Never vertical flips.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch.nn import functional as F

from fer.model import to_tensor


@dataclass
class AugmentConfig:
    """The augmentation of the shipped recipe (its defaults); `python -m fer train` has an option per field."""

    flip: float = 0.5  # probability of a horizontal flip
    rotate_deg: float = 12.0  # uniform in [-rotate_deg, rotate_deg]
    shift: float = 0.10  # fraction of the image size, uniform in [-shift, shift] on each axis
    scale: float = 0.12  # zoom factor uniform in [1 - scale, 1 + scale]
    brightness: float = 0.25  # additive, uniform in [-b, b] * 0.5
    contrast: float = 0.25  # multiplicative around the mean, uniform in [1 - c, 1 + c]
    erase: float = 0.5  # probability of erasing one random rectangle
    erase_area: tuple[float, float] = (0.02, 0.2)
    # Photo degradations (fer.augment.degrade): each one applied to a face with this probability (0 = off).
    degrade: float = 0.3


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
    if config.degrade > 0:
        out = degrade(out, config.degrade, generator)

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


DEGRADE_SIDES = (16, 20, 24, 32, 40)  # a face this many pixels wide in the photo, enlarged back to 48


def degrade(images: torch.Tensor, p: float, generator: torch.Generator) -> torch.Tensor:
    """What a camera and the photo pipeline do to a face, each step on a random share `p` of the batch:
    a small face (shrunk, then enlarged back), optical blur, sensor noise, a gamma change, JPEG artefacts.

    Why: FER2013's sad faces are on average blurrier than the others, and the network learnt that blur
    means sad; on sharp or soft real photos that shortcut turns serious faces sad. Degrading faces of every
    class alike takes that cue away and teaches the network the faces it will be served."""
    n, size = images.shape[0], images.shape[-1]

    def chosen() -> torch.Tensor:
        return torch.rand(n, generator=generator) < p

    def uniform(low: float, high: float) -> torch.Tensor:
        return low + (high - low) * torch.rand(n, generator=generator)

    out = images.clone()
    small, side = chosen(), torch.randint(len(DEGRADE_SIDES), (n,), generator=generator)
    for k, s in enumerate(DEGRADE_SIDES):
        idx = small & (side == k)
        if idx.any():
            shrunk = F.interpolate(out[idx], size=(s, s), mode="area")
            out[idx] = F.interpolate(shrunk, size=(size, size), mode="bilinear", align_corners=False)
    sigma = torch.where(chosen(), uniform(0.3, 1.2), torch.zeros(n))
    if (sigma > 0).any():  # a separable Gaussian per face (sigma 0 = identity) in one grouped convolution
        taps = torch.arange(-3, 4, dtype=torch.float32)
        kernel = torch.exp(-(taps**2) / (2 * sigma.clamp(min=1e-3).view(n, 1) ** 2))
        kernel = kernel / kernel.sum(dim=1, keepdim=True)
        x = F.pad(out.view(1, n, size, size), (3, 3, 3, 3), mode="replicate")
        x = F.conv2d(x, kernel.view(n, 1, 1, 7), groups=n)
        out = F.conv2d(x, kernel.view(n, 1, 7, 1), groups=n).view(n, 1, size, size)
    gamma = torch.where(chosen(), torch.exp(uniform(math.log(0.6), math.log(1.6))), torch.ones(n))
    out = out.clamp(1e-4, 1).pow(gamma.view(n, 1, 1, 1))
    noise = torch.where(chosen(), uniform(0.01, 0.04), torch.zeros(n))
    out = (out + noise.view(n, 1, 1, 1) * torch.randn(out.shape, generator=generator)).clamp_(0, 1)
    jpeg, quality = chosen(), uniform(20, 90).round().int()
    for i in torch.nonzero(jpeg).flatten().tolist():
        pixels = (out[i, 0] * 255).round().to(torch.uint8).numpy()
        ok, encoded = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, int(quality[i])])
        out[i, 0] = torch.from_numpy(cv2.imdecode(encoded, cv2.IMREAD_GRAYSCALE).astype(np.float32) / 255)
    return out


def degrade_faces(faces: np.ndarray, p: float = 0.5, seed: int = 0, batch_size: int = 1024) -> np.ndarray:
    """`degrade` for uint8 (N, 48, 48) faces with a fixed seed: the same degraded copies every time."""
    generator = torch.Generator().manual_seed(seed)
    out = []
    for start in range(0, len(faces), batch_size):
        x = to_tensor(faces[start : start + batch_size])
        out.append((degrade(x, p, generator)[:, 0] * 255).round().to(torch.uint8).numpy())
    return np.concatenate(out) if out else np.zeros((0, *faces.shape[1:]), np.uint8)


def mixup(
    images: torch.Tensor, targets: torch.Tensor, alpha: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Blend each image (and its target) with a random partner; alpha is the Beta distribution's parameter."""
    if alpha <= 0:
        return images, targets
    lam = float(torch.distributions.Beta(alpha, alpha).sample())
    perm = torch.randperm(images.shape[0], generator=generator)
    return lam * images + (1 - lam) * images[perm], lam * targets + (1 - lam) * targets[perm]
