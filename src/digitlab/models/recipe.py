"""A training recipe: the defaults `digitlab train --arch NAME` uses, kept beside the architecture.

Each model file defines `RECIPE`; `digitlab.models.REGISTRY` pairs it with the network, and
`digitlab.config` fills every option the user did not give from it. One place per architecture, so the
parser, the registry and the shipped weights' metadata cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Recipe:
    epochs: int                 # on MNIST's 55,000 training images (60,000 less the 5,000 validation)
    batch_size: int = 128
    lr: float = 3e-3            # the peak of the one-cycle schedule
    augment: bool = False
    label_smoothing: float = 0.0
    handwriting: bool = False   # other pens and scans: augment.handwriting

    @property
    def budget_images(self) -> int:
        """Training images the recipe was tuned to see on MNIST; digitlab.config.epochs_for scales it to a
        smaller set (Kaggle's 42,000-row train.csv), which would otherwise be under-trained (issue 14, item 4).
        """
        return self.epochs * MNIST_TRAIN_IMAGES


MNIST_TRAIN_IMAGES = 55_000
