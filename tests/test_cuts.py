"""digitlab.data.cuts: the digits `read` cuts out of photos of numbers, labelled, and `train --cuts N` and
`--hand-cuts N`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from digitlab.config import TrainConfig
from digitlab.data import hands
from digitlab.data.cuts import cut_digits, cut_hands
from digitlab.data.splits import load_splits
from tests.conftest import MNIST


@pytest.mark.mnist
def test_cut_digits_are_labelled_with_the_digit_they_cover(mnist_test: tuple[torch.Tensor, torch.Tensor]) -> None:
    from digitlab.engine import load_engine

    images, labels = (t[:500].numpy() for t in mnist_test)
    cut = cut_digits(images, labels, photos=30, seed=4)
    assert cut.images.dtype == torch.uint8 and cut.images.shape[1:] == (28, 28)
    # 30 numbers of 1-6 digits hold 105 digits; a digit may be cut more than one way (with a speck or without).
    assert 60 <= len(cut) <= 400 and len(cut.labels) == len(cut.images)
    # The label is the digit the crop covers: the shipped classifier, which never saw these test digits, mostly
    # agrees (97.5% on cuts of training digits; a wrong label would agree about 10% of the time).
    agree = (load_engine("strong").logits(cut.images).argmax(1) == cut.labels).float().mean()
    assert agree >= 0.9
    again = cut_digits(images, labels, photos=30, seed=4)
    assert torch.equal(again.images, cut.images) and torch.equal(again.labels, cut.labels)  # seeded
    assert len(cut_digits(images, labels, photos=0)) == 0
    with pytest.raises(ValueError, match="photos"):
        cut_digits(images, labels, photos=-1)


def test_training_adds_the_cuts_after_the_validation_split() -> None:
    base = TrainConfig(data=str(MNIST), out="unused", limit=2000, val_size=300, seed=0, quiet=True)
    train0, val0, _ = load_splits(base, True)
    train1, val1, _ = load_splits(TrainConfig(**{**base.__dict__, "cuts": 12}), True)
    assert torch.equal(val0.images, val1.images)  # the held-out digits do not move
    assert torch.equal(train1.images[: len(train0)], train0.images)
    # Written with the training split's own digits (the same cuts come out of them alone), none held out.
    added = cut_digits(train0.images.numpy(), train0.labels.numpy(), 12, seed=0)
    assert len(added) > 0 and torch.equal(train1.images[len(train0):], added.images)
    assert torch.equal(train1.labels[len(train0):], added.labels)


@pytest.mark.mnist
def test_hand_cuts_are_written_in_the_training_fonts_only(monkeypatch: pytest.MonkeyPatch) -> None:
    from digitlab.engine import load_engine

    asked: list[str] = []
    pools = hands.pools

    def spy(which: str, copies: int, seed: int = 0) -> list:
        asked.append(which)
        return pools(which, copies, seed=seed)

    monkeypatch.setattr(hands, "pools", spy)
    cut = cut_hands(photos=24, seed=3)
    assert asked == ["train"]  # the validation fonts, which read_development measures on, stay unseen
    assert cut.images.dtype == torch.uint8 and cut.images.shape[1:] == (28, 28) and len(cut) >= 20
    # Labelled with the digit each crop covers: the shipped classifier reads the training fonts' distorted digits
    # about 97% right, so wrong labels (about 10% agreement) could not pass.
    agree = (load_engine("strong").logits(cut.images).argmax(1) == cut.labels).float().mean()
    assert agree >= 0.85
    again = cut_hands(photos=24, seed=3)
    assert torch.equal(again.images, cut.images) and torch.equal(again.labels, cut.labels)  # seeded
    assert not torch.equal(cut_hands(photos=24, seed=4).images[:10], cut.images[:10])
    assert len(cut_hands(photos=0)) == 0
    with pytest.raises(ValueError, match="photos"):
        cut_hands(photos=-1)


def test_training_adds_the_hand_cuts_after_the_validation_split() -> None:
    base = TrainConfig(data=str(MNIST), out="unused", limit=2000, val_size=300, seed=0, quiet=True)
    train0, val0, _ = load_splits(base, True)
    train1, val1, _ = load_splits(TrainConfig(**{**base.__dict__, "cuts": 5, "hand_cuts": 6}), True)
    assert torch.equal(val0.images, val1.images)  # the held-out digits do not move
    # After MNIST's training digits: first the cuts of MNIST numbers, then those of the fonts' numbers.
    mnist_cuts = cut_digits(train0.images.numpy(), train0.labels.numpy(), 5, seed=0)
    font_cuts = cut_hands(6, seed=0)
    assert torch.equal(train1.images, torch.cat([train0.images, mnist_cuts.images, font_cuts.images]))
    assert torch.equal(train1.labels, torch.cat([train0.labels, mnist_cuts.labels, font_cuts.labels]))


@pytest.mark.parametrize("flag", ["--cuts", "--hand-cuts"])
def test_bad_cuts_input_is_a_clear_error(tmp_path: Path, flag: str) -> None:
    run = subprocess.run([sys.executable, "-m", "digitlab", "train", flag, "-1", "--out", str(tmp_path / "r")],
                         capture_output=True, text=True)
    assert run.returncode == 2 and run.stderr.strip() == f"error: {flag} must be at least 0, got -1"
    assert not (tmp_path / "r").exists()
