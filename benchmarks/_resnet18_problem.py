"""The ResNet-18-size curvature problem shared by resnet18_hessian.py and its peer run.

Plain torch (the peers' venv imports it too): a CIFAR-style ResNet-18 (He et al. 2016,
BasicBlock x [2, 2, 2, 2], widths 64-512, 3x3 stem; 11,173,962 parameters), float32,
eval mode (PyHessian puts models in eval mode itself), seeded initialisation, synthetic
inputs N(0, 1) of shape (batch, 3, 32, 32) and labels uniform in 0..9, mean cross-entropy.
Also the ~1M-parameter conv net of the memory target, on the same kind of data.
"""

from __future__ import annotations

import resource

import torch
from torch import nn


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.short = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.short = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(h)) + self.short(x))


class ResNet18(nn.Module):
    def __init__(self, n_classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64))
        blocks, c = [], 64
        for width, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            blocks += [BasicBlock(c, width, stride), BasicBlock(width, width, 1)]
            c = width
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(512, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.blocks(torch.relu(self.stem(x)))
        return self.fc(h.mean((2, 3)))


def conv1m() -> nn.Module:
    """Four 3x3 conv + BatchNorm + ReLU layers (64-128-256-256), pooling, readout: 0.96M."""
    layers, c = [], 3
    for width, pool in ((64, False), (128, True), (256, False), (256, True)):
        layers += [nn.Conv2d(c, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU()]
        if pool:
            layers.append(nn.AvgPool2d(2))
        c = width
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, 10))


def convbn_small() -> nn.Module:
    """A small conv + BatchNorm net on (N, 1, 8, 8) digit-sized images (10,922 parameters)."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * 16, 10),
    )


def problem(name: str, batch: int):
    """(model in eval mode, x, y) with fixed seeds."""
    torch.manual_seed(0)
    build = {"resnet18": ResNet18, "conv1m": conv1m, "convbn": convbn_small}[name]
    model = build().eval()
    g = torch.Generator().manual_seed(1)
    size = {"resnet18": 32, "conv1m": 16, "convbn": 8}[name]
    channels = 1 if name == "convbn" else 3
    x = torch.randn(batch, channels, size, size, generator=g)
    y = torch.randint(0, 10, (batch,), generator=g)
    return model, x, y


def peak_rss_bytes() -> int:
    """High-water resident memory of this process (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def baseline_gradient(model, x, y) -> int:
    """One forward/backward of the model's own; returns the peak RSS after it."""
    model.zero_grad()
    nn.functional.cross_entropy(model(x), y).backward()
    model.zero_grad(set_to_none=True)
    return peak_rss_bytes()
