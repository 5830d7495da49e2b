"""What `digitlab train` learns from and is measured on: (train, validation, test) as the config says.

The validation split is drawn first, from the source's training images alone, and never changes with the
extra sets added after it (`--hands`, `--cuts`, `--hand-cuts`): the held-out digits that the temperature,
the chain, combine and the verdict are fitted on stay unseen, in any form, by every model trained with them.

    from digitlab.data.splits import load_splits
    train, val, test = load_splits(TrainConfig(hands=5, cuts=4000, hand_cuts=1500), main=True)
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from digitlab import distributed
from digitlab.config import TrainConfig
from digitlab.data import Digits, hands, load, split_validation
from digitlab.data.cuts import cut_digits, cut_hands
from digitlab.errors import DigitlabError


def load_splits(cfg: TrainConfig, main: bool) -> tuple[Digits, Digits, Digits]:
    """(train, validation, test) from `cfg.data`; a source without a test split has one held out of it."""
    # Only rank 0 may download; the others wait, then read the verified files from the cache.
    if main:
        train = load(cfg.data, "train")
    distributed.barrier()
    if not main:
        train = load(cfg.data, "train")
    test = load(cfg.data, "test")
    if train is None or train.labels is None:
        raise DigitlabError(f"{cfg.data or 'data'}: no labelled training data")
    if cfg.limit is not None:
        train = train.subset(torch.arange(min(cfg.limit, len(train))))
    val_size = min(cfg.val_size, len(train) // 5)
    train_index, val_index = split_validation(len(train), val_size, cfg.seed)
    if test is None and len(val_index):
        # A source with no test split of its own (a Kaggle train.csv): the validation images are the test.
        # Nothing is chosen by them (no early stopping, no pick of epochs), so they stay a fair held-out
        # estimate, and 42,000 rows train on 37,000 instead of the 30,834 a second held-out set left.
        test = train.subset(val_index)
    elif test is None:  # --val-size 0 on such a source: train on every image (a Kaggle submission's run)
        test = train.subset(torch.arange(0))
    train, val = train.subset(train_index), train.subset(val_index)
    # Added after the validation split, so the held-out digits (and everything fitted on them) stay the same.
    # The numbers are written with the training split's digits only: the held-out ones stay unseen in any form.
    extras: list[Digits] = []
    if cfg.cuts:
        images, labels = train.images.numpy(), train.labels.numpy()
        extras.append(_made_once(lambda: cut_digits(images, labels, cfg.cuts, seed=cfg.seed)))
    if cfg.hand_cuts:
        extras.append(_made_once(lambda: cut_hands(cfg.hand_cuts, seed=cfg.seed)))
    if cfg.hands:
        extras.append(hands.distorted(hands.split("train", unambiguous=True), cfg.hands, seed=cfg.seed))
    for extra in extras:
        train = Digits(torch.cat([train.images, extra.images]), torch.cat([train.labels, extra.labels]),
                       f"{train.source} + {extra.source}")
    return train, val, test


def _made_once(make: Callable[[], Digits]) -> Digits:
    """An extra set made by rank 0 alone and sent to the others. The cuts are deterministic, so every process
    could make them itself, but `read` segments thousands of photos for them (about 1.5 min for --cuts 4000
    and 40 s more for --hand-cuts 1500 on 2 cores) and under torchrun each process would spend that time."""
    if distributed.world_size() == 1:
        return make()
    # Rank 0 by its own count, as broadcast_tensors counts it, whatever `main` the caller passed.
    made = make() if distributed.is_main() else None
    source = distributed.broadcast_object(made.source if made is not None else None)
    images, labels = distributed.broadcast_tensors([made.images, made.labels] if made is not None else None)
    return Digits(images, labels, str(source))
