"""Digits as `read` sees them: cut out of photos of numbers by digitlab.segment, then brought to 28x28.

The classifier learns MNIST's centred 28x28 digits, but in `digitlab read` it is shown the runs of slices that
digitlab.segment cuts from a photo: a neighbour's stroke at the edge, a stroke cut through, a thin or a thick
pen, blur, JPEG and paper. `digitlab train --cuts N` adds the candidates cut from N digitlab.synth photos of
numbers (1-6 digits) that cover one true digit, labelled with that digit. The numbers are written with the
training split's own digits only, after the validation split, so that nothing held out is seen.

MNIST's writers are not everyone's: `--hand-cuts N` cuts N more photos written in the handwriting fonts'
training families (digitlab.data.hands), one font per number as one person writes a number, each digit an
elastically distorted copy so that a repeated digit is never the same picture twice. The validation fonts
stay unseen; benchmarks/read_development.py measures other hands on them.

    from digitlab.data.cuts import cut_digits, cut_hands
    extra = cut_digits(images, labels, photos=6000, seed=0)   # Digits: uint8 (N, 28, 28) and their labels
    more = cut_hands(photos=1500, seed=0)
"""

from __future__ import annotations

import numpy as np
import torch

from digitlab.data import Digits


def cut_digits(images: np.ndarray, labels: np.ndarray, photos: int, seed: int = 0) -> Digits:
    """The candidates of `photos` photos of numbers written with (images, labels) that cover one true digit
    (overlap / union of columns >= synth.WHOLE_DIGIT, as digitlab.chain.is_digit), each labelled with the
    digit it covers."""
    from digitlab.data.images import open_image, to_mnist
    from digitlab.segment import segment
    from digitlab.synth import WHOLE_DIGIT, coverage, number_photo

    if photos < 0:
        raise ValueError(f"photos must be >= 0, got {photos}")
    crops: list[np.ndarray] = []
    truth: list[int] = []
    for k in range(photos):
        info: dict = {}
        photo, number = number_photo((images, labels), np.random.default_rng([seed, 35, k]), 1 + k % 6, info=info)
        layout = segment(open_image(photo))
        for (i, j), digit, share in zip(layout.candidates, *coverage(layout, info["columns"]), strict=True):
            if share >= WHOLE_DIGIT:
                crops.append(to_mnist(layout.crop(layout.piece(i, j)), look_for_field=False))
                truth.append(int(number[digit]))
    pictures = torch.from_numpy(np.stack(crops)) if crops else torch.zeros((0, 28, 28), dtype=torch.uint8)
    return Digits(pictures, torch.tensor(truth, dtype=torch.long), f"cut from {photos} photos of numbers")


def cut_hands(photos: int, seed: int = 0, copies: int = 8) -> Digits:
    """cut_digits over `photos` photos of numbers written in the training fonts, one font per number (drawn
    at random), each font's digits in `copies` distorted versions."""
    from digitlab.data import hands

    if photos < 0:
        raise ValueError(f"photos must be >= 0, got {photos}")
    pools = hands.pools("train", copies, seed=seed + 40)
    font_of = np.random.default_rng(seed + 41).integers(0, len(pools), photos)
    # One cut_digits per font, each with its own seed: the photos of a font do not depend on how many the
    # other fonts were given.
    parts = [cut_digits(*pools[f], int((font_of == f).sum()), seed=seed + 1000 + f) for f in range(len(pools))]
    return Digits(torch.cat([p.images for p in parts]), torch.cat([p.labels for p in parts]),
                  f"cut from {photos} photos of numbers in the training fonts")
