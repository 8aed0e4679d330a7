"""The classifier: a small residual CNN for 1x48x48 faces, sized for a 2-core CPU.

Four stages at 48, 24, 12 and 6 pixels; each stage starts with a stride-2 residual block (except the
first) and holds `depths[i]` blocks of `widths[i]` channels. A first stage of depth 0 leaves no block
at full resolution: the stem then feeds the stride-2 second stage. Global average pooling, dropout and
one linear layer give the four logits. `se_reduction` > 0 adds a squeeze-and-excitation gate to each
block after the first stage. The defaults are the shipped network: `FerNet()` builds it. Inputs are
grayscale in [0, 1]; the model normalises them itself so callers never repeat the constants.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from fer.config import CLASSES
from fer.preprocess import FACE_SIZE


def to_tensor(faces) -> torch.Tensor:
    """uint8 faces (N, 48, 48) -> float tensor (N, 1, 48, 48) in [0, 1]: what the network reads.

    Copies (np.array), so the caller's array may be read-only and is never shared with torch."""
    return torch.from_numpy(np.array(faces, dtype=np.uint8, order="C")).unsqueeze(1).float().div_(255)


@dataclass
class ModelConfig:
    widths: tuple[int, ...] = (48, 96, 192, 384)
    depths: tuple[int, ...] = (1, 1, 2, 1)
    dropout: float = 0.2
    se_reduction: int = 8  # > 0: a squeeze-and-excitation gate per block after the first stage (0 = none)
    num_classes: int = len(CLASSES)
    input_size: int = FACE_SIZE

    @classmethod
    def from_dict(cls, values: dict) -> ModelConfig:
        values = dict(values)
        for key in ("widths", "depths"):
            if key in values:
                values[key] = tuple(values[key])
        return cls(**values)

    def to_dict(self) -> dict:
        return asdict(self)


def stage_sizes(config: ModelConfig) -> dict[int, int]:
    """Pixels per side of each stage that has blocks, by stage index: {0: 48, 1: 24, 2: 12, 3: 6} by default."""
    return {i: config.input_size >> i for i, depth in enumerate(config.depths) if depth > 0}


def describe(config: ModelConfig) -> str:
    """One sentence on the network's layout, for the model card."""
    sizes = "/".join(map(str, stage_sizes(config).values()))
    gates = ""
    if config.se_reduction:
        gates = f" (those after the first stage with squeeze-and-excitation gates, reduction {config.se_reduction})"
    return (
        f"Residual CNN: 3x3 stem, stages at {sizes} px of basic residual blocks{gates}, "
        "global average pooling, dropout, linear head."
    )


class SqueezeExcitation(nn.Module):
    """Rescales each channel by a gate computed from the whole map (Hu et al., 2018): lets a block weigh
    its channels by what the face shows as a whole, for one pooled vector's worth of compute."""

    def __init__(self, channels: int, reduction: int):
        super().__init__()
        hidden = max(8, channels // reduction)  # at least 8, so narrow blocks keep a useful bottleneck
        self.reduce = nn.Linear(channels, hidden)
        self.expand = nn.Linear(hidden, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        gate = torch.sigmoid(self.expand(F.relu(self.reduce(gate))))
        return x * gate[:, :, None, None]


class BasicBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, se_reduction: int = 0):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.se = SqueezeExcitation(out_channels, se_reduction) if se_reduction else nn.Identity()
        self.shortcut = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = self.se(self.bn2(self.conv2(out)))
        return F.relu(out + self.shortcut(x), inplace=True)


class FerNet(nn.Module):
    # Pixel statistics of the training faces (grayscale, [0, 1]).
    MEAN, STD = 0.51, 0.25

    def __init__(self, config: ModelConfig | None = None):
        super().__init__()
        self.config = config = config or ModelConfig()
        if 0 in config.depths[1:] or config.depths[-1] == 0:
            raise ValueError(f"Only the first stage may have depth 0, got depths {config.depths}")
        first = config.widths[0]
        self.stem = nn.Sequential(
            nn.Conv2d(1, first, 3, 1, 1, bias=False), nn.BatchNorm2d(first), nn.ReLU(inplace=True)
        )
        stages, in_channels = [], first
        for i, (width, depth) in enumerate(zip(config.widths, config.depths)):
            if depth == 0:  # no blocks at this resolution (only the first stage may be empty)
                stages.append(nn.Sequential())
                continue
            se = (
                config.se_reduction if i > 0 else 0
            )  # at full resolution the gate costs training speed (docs/history/training-2026-11-26-to-12-03.md)
            blocks = [BasicBlock(in_channels, width, stride=1 if i == 0 else 2, se_reduction=se)]
            blocks += [BasicBlock(width, width, se_reduction=se) for _ in range(depth - 1)]
            stages.append(nn.Sequential(*blocks))
            in_channels = width
        self.stages = nn.Sequential(*stages)
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(in_channels, config.num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        # Zero the last BN of each residual branch so every block starts as the identity.
        for m in self.modules():
            if isinstance(m, BasicBlock):
                nn.init.zeros_(m.bn2.weight)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.MEAN) / self.STD
        return self.stages(self.stem(x))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled features (N, widths[-1]) the head reads."""
        return torch.flatten(F.adaptive_avg_pool2d(self.features(x), 1), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.embed(x)))


class LogitsAndEmbedding(FerNet):
    """The served form of a FerNet (eval only): returns (logits, pooled features) in one pass.

    Same modules under the same names, so its state dict (the int8 one too) has FerNet's keys. The
    features feed the "another expression" head (fer.calibrate).
    """

    @classmethod
    def of(cls, model: FerNet) -> LogitsAndEmbedding:
        served = cls(model.config)
        served.load_state_dict(model.state_dict())
        return served.eval()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        embedding = self.embed(x)
        return self.head(embedding), embedding


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_macs(model: FerNet) -> int:
    """Multiply-accumulates of one forward pass on one face (convolutions and the linear head)."""
    total = 0

    def hook(module, inputs, output):
        nonlocal total
        if isinstance(module, nn.Conv2d):
            kernel = module.kernel_size[0] * module.kernel_size[1] * module.in_channels // module.groups
            total += output.numel() * kernel
        elif isinstance(module, nn.Linear):
            total += module.in_features * module.out_features

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    was_training = model.training
    model.eval()
    with torch.no_grad():
        size = model.config.input_size
        model(torch.zeros(1, 1, size, size, device=next(model.parameters()).device))
    model.train(was_training)
    for handle in handles:
        handle.remove()
    return total
