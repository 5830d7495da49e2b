"""A small CNN built for time-to-accuracy on a CPU: few multiply-adds, BatchNorm so a high learning
rate is stable, and global pooling instead of a large dense layer.

    conv 1->24 5x5 -> BN -> ReLU -> maxpool 2       (24 x 12 x 12)
    conv 24->48 3x3 -> BN -> ReLU -> maxpool 2      (48 x 5 x 5)
    conv 48->64 3x3 -> BN -> ReLU                   (64 x 3 x 3)
    flatten -> linear 576 -> 10
"""

from __future__ import annotations

import torch
from torch import nn

from digitlab.models.layers import Standardize, conv_bn


class FastCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.norm = Standardize()
        self.features = nn.Sequential(
            conv_bn(1, 24, 5),
            nn.MaxPool2d(2),
            conv_bn(24, 48, 3),
            nn.MaxPool2d(2),
            conv_bn(48, 64, 3),
            nn.Flatten(),
        )
        self.out = nn.Linear(64 * 3 * 3, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.features(self.norm(x)))
