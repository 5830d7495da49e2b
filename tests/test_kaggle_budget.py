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


@pytest.mark.parametrize(("train_images", "epochs", "augment"), [
    (55_000, 2, False), (60_000, 2, False),                  # MNIST itself: the tutorial exactly as written
    (37_000, 10, True), (30_834, 14, True), (20_000, 22, True), (600, 734, True),  # smaller: more, augmented
])
def test_a_set_smaller_than_mnist_trains_longer_and_augmented(train_images: int, epochs: int, augment: bool) -> None:
    filled = fill(TrainConfig(), TUTORIAL, train_images)
    assert (filled.epochs, filled.augment) == (epochs, augment)


def test_typed_options_and_quick_checks_are_not_changed() -> None:
    assert fill(TrainConfig(epochs=1), TUTORIAL, 37_000).epochs == 1
    assert fill(TrainConfig(epochs=1), TUTORIAL, 37_000).augment is True  # epochs typed, augmentation not
    plain = fill(TrainConfig(augment=False), TUTORIAL, 37_000)
    assert (plain.epochs, plain.augment) == (5, False)  # --no-augment: the plain budget, not the doubled one
    quick = fill(TrainConfig(limit=2000), TUTORIAL, 1_600)
    assert (quick.epochs, quick.augment) == (TUTORIAL.epochs, False)
    strong = fill(TrainConfig(arch="strong"), REGISTRY["strong"].recipe, 42_000)
    assert (strong.epochs, strong.augment) == (35, True)  # its recipe augments already: nothing doubled


def test_the_run_says_what_it_chose(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from digitlab.train import train

    images, labels = synthetic_digits(300)
    kaggle.write_kaggle_csv(tmp_path / "train.csv", images, labels)
    # epochs=3 keeps it quick; called without `explicit`, it is reported as if the budget had chosen it.
    train(TrainConfig(data=str(tmp_path / "train.csv"), out=str(tmp_path / "run"), epochs=3, batch_size=100))
    printed = capsys.readouterr().out
    assert "epochs (" in printed and "scaled up for a smaller set" in printed
    assert "augmentation on" in printed and "--no-augment" in printed
    stored = (tmp_path / "run" / "train-config.json").read_text()
    assert '"augment": true' in stored


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
