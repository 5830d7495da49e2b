"""Small building blocks shared by the models."""

from __future__ import annotations

import torch
from torch import nn

# MNIST's training-set pixel mean and standard deviation, for inputs scaled to [0, 1].
MNIST_MEAN = 0.1307
MNIST_STD = 0.3081


class Standardize(nn.Module):
    """(x - mean) / std with the constants stored in the state dict, so they travel with the weights."""

    def __init__(self, mean: float = MNIST_MEAN, std: float = MNIST_STD) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean))
        self.register_buffer("std", torch.tensor(std))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def conv_bn(cin: int, cout: int, kernel: int, stride: int = 1, padding: int = 0) -> nn.Sequential:
    """Conv (no bias: BatchNorm's shift replaces it) -> BatchNorm -> ReLU."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride, padding, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )
