"""The choice of which runs of slices are digits (digitlab.chain): the chain, the checker, its provenance."""

from __future__ import annotations

import io
import json
from importlib import resources

import numpy as np
import pytest
import torch
from PIL import Image

from digitlab import chain
from digitlab.data.images import to_mnist
from digitlab.engine import TorchEngine, load_engine
from digitlab.segment import segment
from digitlab.synth import number_photo
from tests.test_segment import number_picture, strokes


@pytest.fixture(scope="module")
def engine() -> TorchEngine:
    return load_engine(None, "torch")


def test_best_chain_covers_every_slice_once_left_to_right() -> None:
    layout = segment(strokes([[(30, 40), (30, 160)], [(80, 40), (80, 160)], [(130, 40), (130, 160)]]))
    assert len(layout.slices) == 3
    # Scores that favour joining the first two slices into one "digit".
    scores = np.array([1.0 if (i, j) == (0, 2) else 0.1 if j - i == 1 else -5.0 for i, j in layout.candidates])
    picked = [layout.candidates[k] for k in chain.best_chain(layout, scores)]
    assert picked[0][0] == 0 and picked[-1][1] == 3
    assert all(a[1] == b[0] for a, b in zip(picked, picked[1:], strict=False))
    if (0, 2) in layout.candidates:
        assert picked == [(0, 2), (2, 3)]


def test_features_have_one_row_per_candidate() -> None:
    layout = segment(strokes([[(40, 40), (44, 160)], [(150, 40), (150, 160)]]))
    logits = np.random.default_rng(0).normal(size=(len(layout.candidates), 10)).astype(np.float32)
    table = chain.features(layout, logits, 1.0)
    assert table.shape == (len(layout.candidates), len(chain.FEATURES))
    assert np.isfinite(table).all() and (table[:, 0] == 1).all()


def test_shipped_checker_records_how_it_was_made() -> None:
    record = json.loads(resources.files("digitlab").joinpath("weights/chain.json").read_text())
    assert record["command"].startswith("python -m digitlab.chain")
    assert record["features"] == list(chain.FEATURES)
    assert record["exact_with_checker"] >= record["exact_hand_set"]
    checker, alpha, beta = chain.shipped()
    assert isinstance(checker, chain.Checker) and alpha >= 0


@pytest.mark.mnist
def test_checker_tells_whole_digits_from_fragments_and_pairs(engine: TorchEngine,
                                                              mnist_test: tuple[torch.Tensor, torch.Tensor]) -> None:
    """On photos written with MNIST *test* digits (the checker trained on training digits), candidates that
    are exactly one digit score higher than fragments and pairs: area under the ROC curve well above 0.5."""
    mnist = tuple(t.numpy() for t in mnist_test)
    checker, _, _ = chain.shipped()
    right, wrong = [], []
    for k in range(24):
        info: dict = {}
        photo, _ = number_photo(mnist, np.random.default_rng([5, k]), 3, info=info)
        layout = segment(Image.open(io.BytesIO(photo)))
        crops = np.stack([to_mnist(layout.crop(layout.piece(i, j))) for i, j in layout.candidates])
        logits = engine.logits(torch.from_numpy(crops)).float().numpy()
        table = chain.features(layout, logits, engine.temperature)
        with torch.inference_mode():
            checked = checker(torch.from_numpy(crops), torch.from_numpy(table[:, 1:])).numpy()
        digit = chain.is_digit(layout, info["columns"]).astype(bool)
        right += list(checked[digit])
        wrong += list(checked[~digit])
    auc = np.mean([r > w for r in right for w in wrong])
    assert len(right) >= 60 and auc >= 0.9, auc


@pytest.mark.mnist
def test_a_slanted_one_leaning_on_its_neighbour_is_its_own_digit(
        engine: TorchEngine, mnist_test: tuple[torch.Tensor, torch.Tensor]) -> None:
    from digitlab.read import read_picture

    pixels, labels = (t.numpy() for t in mnist_test)
    g = np.random.default_rng(4)
    ones = [pixels[i] for i in g.choice(np.flatnonzero(labels == 1), 10, replace=False)]
    sevens = [pixels[i] for i in g.choice(np.flatnonzero(labels == 7), 10, replace=False)]
    right = sum(read_picture(engine, number_picture([s, o], gaps=[-1])).number == "71"
                for s, o in zip(sevens, ones, strict=True))
    assert right >= 8, right
