"""Kaggle-sized data is not under-trained (issue 14, item 4): default epochs grow for a set smaller than
MNIST, the held-out images are not taken twice, and `make_competition` cuts Kaggle's sizes from MNIST."""

from __future__ import annotations

from pathlib import Path

import pytest

from digitlab.config import TrainConfig, fill
from digitlab.data import kaggle
from digitlab.models import REGISTRY
from tests.conftest import MNIST, synthetic_digits

TUTORIAL = REGISTRY["tutorial"].recipe


@pytest.mark.parametrize(("train_images", "epochs"), [(55_000, 2), (60_000, 2), (37_000, 5), (30_834, 7),
                                                      (20_000, 11), (600, 367)])
def test_default_epochs_grow_for_a_set_smaller_than_mnist(train_images: int, epochs: int) -> None:
    assert fill(TrainConfig(), TUTORIAL, train_images).epochs == epochs


def test_typed_epochs_and_quick_checks_are_not_scaled() -> None:
    assert fill(TrainConfig(epochs=1), TUTORIAL, 37_000).epochs == 1
    assert fill(TrainConfig(limit=2000), TUTORIAL, 1_600).epochs == TUTORIAL.epochs
    assert fill(TrainConfig(arch="strong"), REGISTRY["strong"].recipe, 42_000).epochs == 35


def test_a_csv_holds_out_one_set_not_two(tmp_path: Path) -> None:
    """300 rows: 60 held out (validation, and the reported test), 240 trained on; it used to be 40 + 60 + 200."""
    from digitlab.train import train

    images, labels = synthetic_digits(300)
    kaggle.write_kaggle_csv(tmp_path / "train.csv", images, labels)
    metrics = train(TrainConfig(data=str(tmp_path / "train.csv"), out=str(tmp_path / "run"), epochs=1,
                                batch_size=40, quiet=True))
    assert metrics["test_n"] == 60
    assert metrics["test_accuracy"] == metrics["val_accuracy"]
    every = train(TrainConfig(data=str(tmp_path / "train.csv"), out=str(tmp_path / "all"), epochs=1, val_size=0,
                              batch_size=40, quiet=True))
    assert every["test_n"] == 0 and every["test_accuracy"] is None


@pytest.mark.mnist
def test_make_competition_has_kaggles_sizes_and_no_overlap(tmp_path: Path) -> None:
    train_csv, heldout_csv = kaggle.make_competition(MNIST, tmp_path, train_rows=42_000)
    train_images, train_labels = kaggle.read_kaggle_csv(train_csv)
    held_images, held_labels = kaggle.read_kaggle_csv(heldout_csv)
    assert (len(train_images), len(held_images)) == (42_000, 28_000)
    assert held_labels is not None and train_labels is not None
    seen = {bytes(image.numpy()) for image in train_images}
    assert sum(bytes(image.numpy()) in seen for image in held_images[:18_000]) < 20  # MNIST's few duplicates
