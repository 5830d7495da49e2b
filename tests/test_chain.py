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


def test_a_speck_may_be_left_out_but_a_digit_never() -> None:
    # Two tall strokes and, far to the right, a short dash (cut into slices, as anything wide is): every
    # slice of the dash is small enough to leave out, neither stroke is.
    layout = segment(strokes([[(30, 40), (30, 160)], [(90, 40), (90, 160)], [(170, 150), (180, 150)]],
                             size=(220, 200)))
    table, allowed = chain.skip_features(layout)
    assert table.shape == (len(layout.slices), len(chain.SKIP_FEATURES))
    assert len(layout.slices) > 2 and allowed.tolist() == [False, False] + [True] * (len(layout.slices) - 2)
    runs = np.array([1.0 if j <= 2 else -10.0 for i, j in layout.candidates])  # the dash reads badly
    scores = chain.Scores(runs, np.where(allowed, -1.0, -np.inf))
    picked = [layout.candidates[k] for k in chain.best_chain(layout, scores)]
    assert picked == [(0, 1), (1, 2)]  # the dash left out rather than read as a digit
    scores = chain.Scores(runs, np.where(allowed, -6.0, -np.inf))
    assert len(chain.best_chain(layout, scores)) == 3  # leaving it out costs more than reading it


def three_close_strokes():
    """Three strokes close enough that any run of them may be one digit."""
    layout = segment(strokes([[(30, 40), (30, 160)], [(50, 40), (50, 160)], [(70, 40), (70, 160)]]))
    assert layout.candidates == [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]
    return layout


def test_best_chain_that_spells_a_number() -> None:
    layout = three_close_strokes()
    labels = np.array([1 if j - i == 1 else 7 for i, j in layout.candidates])
    scores = np.array([2.0 if (i, j) == (0, 2) else 0.1 for i, j in layout.candidates])
    best = chain._best(layout, scores)
    assert "".join(str(labels[k]) for k in best[0]) == "71"  # the best chain, however it reads
    right = chain._best(layout, scores, "111", labels)
    assert right is not None and [layout.candidates[k] for k in right[0]] == [(0, 1), (1, 2), (2, 3)]
    assert chain._best(layout, scores, "1111", labels) is None  # no chain reads four digits


def test_features_have_one_row_per_candidate() -> None:
    layout = segment(strokes([[(40, 40), (44, 160)], [(150, 40), (150, 160)]]))
    logits = np.random.default_rng(0).normal(size=(len(layout.candidates), 10)).astype(np.float32)
    table = chain.features(layout, logits, 1.0)
    assert table.shape == (len(layout.candidates), len(chain.FEATURES))
    assert np.isfinite(table).all() and (table[:, 0] == 1).all()


def test_shipped_checker_records_how_it_was_made() -> None:
    record = json.loads(resources.files("digitlab").joinpath("weights/chain.json").read_text())
    assert record["command"].startswith("python -m digitlab.chain") and record["reproduce"] == "make weights-chain"
    assert record["features"] == list(chain.FEATURES)
    assert list(record["weights"]) == [*chain.COLUMNS, *chain.SKIP_FEATURES]
    # On photos neither the checker nor the weights were fitted on, learning did no harm.
    assert record["exact_learned_weights"] >= record["exact_starting_weights"]
    checker, weights = chain.shipped()
    assert isinstance(checker, chain.Checker) and weights.shape == (len(chain.COLUMNS) + len(chain.SKIP_FEATURES),)
    # A digit the check takes for a digit, and one the checker calls whole, scores higher.
    named = dict(zip(record["weights"], weights, strict=True))
    assert named["checker"] > 0 and named["digit check below threshold"] > 0


def test_learning_moves_the_weights_to_read_a_photo_right() -> None:
    # One photo, three slices; the starting weights read it as "77" or "7" where it is "111". The only
    # measurement that tells the chains apart is "slices - 1" (2 for the one run, 0 for single slices).
    layout = three_close_strokes()
    labels = np.array([1 if j - i == 1 else 7 for i, j in layout.candidates])
    table = np.zeros((len(layout.candidates), len(chain.COLUMNS)), np.float32)
    table[:, 0] = 1.0
    table[:, chain.FEATURES.index("slices - 1")] = [j - i - 1 for i, j in layout.candidates]
    start = np.zeros(len(chain.COLUMNS) + len(chain.SKIP_FEATURES), np.float32)
    start[chain.FEATURES.index("slices - 1")] = 0.5  # joining slices rewarded: "7" wins
    skip_rows, allowed = chain.skip_features(layout)
    photo = (layout, table, skip_rows, allowed, labels, "111")
    assert chain.exact([photo], start) == 0
    learned = chain.learn_weights([photo], epochs=10, seed=0, start=start)
    assert chain.exact([photo], learned) == 1


@pytest.mark.mnist
def test_checker_tells_whole_digits_from_fragments_and_pairs(engine: TorchEngine,
                                                              mnist_test: tuple[torch.Tensor, torch.Tensor]) -> None:
    """On photos written with MNIST *test* digits (the checker trained on training digits), candidates that
    are exactly one digit score higher than fragments and pairs: area under the ROC curve well above 0.5."""
    mnist = tuple(t.numpy() for t in mnist_test)
    checker, _ = chain.shipped()
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
