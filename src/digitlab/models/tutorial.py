"""The tutorial's CNN, exactly as written (Morvan's 401_CNN.py, used for Kaggle's Digit Recognizer).

    conv 1->16, 5x5, stride 1, padding 2 -> ReLU -> maxpool 2      (16 x 14 x 14)
    conv 16->32, 5x5, stride 1, padding 2 -> ReLU -> maxpool 2     (32 x 7 x 7)
    linear 32*7*7 -> 10                                             28,938 parameters

The one addition is `norm`, which holds the input normalisation as buffers (not parameters), so the saved
weights carry it and nobody has to remember 0.1307 / 0.3081 at inference time.
"""

from __future__ import annotations

import torch
from torch import nn

from digitlab.models.layers import Standardize
from digitlab.models.recipe import Recipe


class TutorialCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.norm = Standardize()
        self.conv1 = nn.Sequential(
            nn.Conv2d(in_channels=1, out_channels=16, kernel_size=5, stride=1, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=2),
        )
        self.conv2 = nn.Sequential(
            nn.Conv2d(16, 32, 5, 1, 2),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.out = nn.Linear(32 * 7 * 7, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, 1, 28, 28) floats in [0, 1] -> (N, 10) logits.

        The tutorial also returned the flattened features for a t-SNE plot; we return logits only.
        """
        x = self.conv1(self.norm(x))
        x = self.conv2(x)
        x = x.flatten(1)
        return self.out(x)


RECIPE = Recipe(epochs=2, batch_size=128, lr=3e-3)
