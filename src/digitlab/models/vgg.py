"""A VGG-style CNN, built to disagree with `strong` on the hard digits, for mixed ensembles.

    [conv 3x3 (padding 1) -> BN -> ReLU] x 2, 24 channels -> maxpool 2 -> dropout    (24 x 14 x 14)
    [conv 3x3 (padding 1) -> BN -> ReLU] x 2, 48 channels -> maxpool 2 -> dropout    (48 x 7 x 7)
    [conv 3x3 (padding 1) -> BN -> ReLU] x 2, 96 channels -> global average pool     (96)
    dropout -> linear 96 -> 10                                          162,562 parameters

Why another architecture: members of the same architecture and augmentation make the same mistakes,
so an ensemble of `strong` models stops improving at about 99.70%. This one sees the digit differently
(padded 3x3 convolutions at full resolution, max-pooling and a global average instead of `strong`'s
unpadded, strided 5x5 convolutions and a 4x4 convolution head) at about the same cost per image.
Measured (benchmarks/results/strong_ensemble.md): 99.68% +- 0.02% alone over 5 seeds, as good as
`strong`; but the hard digits are hard for both, so 7 `strong` + 5 `vgg` still vote 99.70%.
"""

from __future__ import annotations

import torch
from torch import nn

from digitlab.models.layers import Standardize, conv_bn
from digitlab.models.strong import RECIPE as STRONG_RECIPE


class VggCNN(nn.Module):
    def __init__(self, widths: tuple[int, int, int] = (24, 48, 96), dropout: float = 0.3) -> None:
        super().__init__()
        self.norm = Standardize()
        a, b, c = widths
        self.features = nn.Sequential(
            conv_bn(1, a, 3, 1, 1), conv_bn(a, a, 3, 1, 1), nn.MaxPool2d(2), nn.Dropout(dropout),   # 14
            conv_bn(a, b, 3, 1, 1), conv_bn(b, b, 3, 1, 1), nn.MaxPool2d(2), nn.Dropout(dropout),   # 7
            conv_bn(b, c, 3, 1, 1), conv_bn(c, c, 3, 1, 1),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout),
        )
        self.out = nn.Linear(c, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.features(self.norm(x)))


# `strong`'s recipe unchanged, so that a mixed ensemble differs in architecture only.
RECIPE = STRONG_RECIPE
