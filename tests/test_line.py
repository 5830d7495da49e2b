"""digitlab.line: the line reader's strip, CTC decoding and likelihood, and its second opinion in `read`
(which of the two readings is believed: tests/test_combine.py)."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import torch

from digitlab import line
from digitlab.models import shipped_weights
from digitlab.read import found, read_pictures
from digitlab.segment import segment
from tests.test_read import digits_of
from tests.test_segment import number_picture, strokes


def columns_saying(text: str, per_digit: int = 4) -> np.ndarray:
    """Log-probability columns that a CTC reader sure of `text` would give: each digit, then blanks."""
    symbols = [s for d in text for s in [int(d)] + [line.BLANK] * (per_digit - 1)] or [line.BLANK] * per_digit
    columns = np.full((len(symbols), 11), 1e-4, np.float32)
    columns[np.arange(len(symbols)), symbols] = 1.0
    return np.log(columns / columns.sum(1, keepdims=True))


class Says:
    """A fake line reader that reads every line as `text`."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __call__(self, layouts: list) -> tuple[list[str], list[np.ndarray]]:
        return [self.text] * len(layouts), [columns_saying(self.text)] * len(layouts)


def test_line_image_is_the_inks_strip_32_tall() -> None:
    layout = segment(strokes([[(30, 40), (30, 160)], [(80, 40), (80, 160)]], size=(300, 200)))
    strip = line.line_image(layout)
    assert strip.dtype == np.uint8 and strip.shape[0] == line.HEIGHT
    assert line.MIN_WIDTH <= strip.shape[1] <= line.MAX_WIDTH
    # Two strokes: two bright columns of ink, dark paper between them and around.
    inked = strip.max(0) > 128
    assert inked.any() and not inked[0] and not inked[-1]
    assert np.count_nonzero(np.diff(inked.astype(int)) == 1) == 2
    assert line.line_image(segment(strokes([]))).max() == 0


def test_greedy_merges_repeats_and_drops_blanks() -> None:
    assert line.greedy(columns_saying("1123", per_digit=3)) == "1123"
    # 1 1 blank 1 2 2 -> "112": a repeat counts twice only with a blank between.
    symbols = [1, 1, line.BLANK, 1, 2, 2]
    assert line.greedy(np.eye(11, dtype=np.float32)[symbols]) == "112"
    assert line.greedy(columns_saying("")) == ""


def test_log_likelihood_is_ctc_summed_over_alignments() -> None:
    g = np.random.default_rng(0)
    columns = np.log(g.dirichlet(np.ones(11), 4)).astype(np.float32)

    def brute(text: str) -> float:
        total = 0.0
        for path in itertools.product(range(11), repeat=len(columns)):
            if line.greedy(np.eye(11)[list(path)]) == text:
                total += float(np.exp(sum(columns[t, s] for t, s in enumerate(path))))
        return np.log(total)

    for text in ("12", "11", "7", ""):
        assert line.log_likelihood([columns], [text])[0] == pytest.approx(brute(text), abs=1e-4)
    # "11" needs a blank between its ones: 3 columns; "12345" cannot fit in 4.
    assert np.isfinite(line.log_likelihood([columns[:3]], ["11"])[0])
    assert line.log_likelihood([columns[:2], columns], ["11", "12345"]).tolist() == [-np.inf, -np.inf]
    with pytest.raises(ValueError):
        line.log_likelihood([columns], ["1a"])


def test_net_reads_a_batch_of_strips_of_different_widths() -> None:
    torch.manual_seed(0)
    reader = line.LineReader(line.LineNet())
    layouts = [segment(strokes([[(30, 40), (30, 160)]])),
               segment(strokes([[(30, 40), (30, 160)], [(120, 40), (120, 160)], [(200, 40), (260, 160)]],
                               size=(320, 200)))]
    texts, columns = reader(layouts)
    assert len(texts) == 2 and all(t == "" or t.isdigit() for t in texts)
    assert [c.shape[0] for c in columns] == [line.line_image(x).shape[1] // 4 for x in layouts]
    np.testing.assert_allclose(np.exp(columns[1]).sum(1), 1, atol=1e-5)


@pytest.mark.mnist
@pytest.mark.skipif(not shipped_weights().is_file(), reason="run `make weights`")
def test_a_reader_rescores_readings_in_read(mnist_test: tuple[torch.Tensor, torch.Tensor]) -> None:
    from digitlab.engine import load_engine

    engine = load_engine(None, "torch")
    picture = number_picture(digits_of(mnist_test, "4096", 3), [6, 8, 5])
    alone = found(engine, [picture], line=None)[0]
    assert alone.number == "4096" and alone.line is None
    agreeing = found(engine, [picture], line=Says("4096"))[0]
    assert agreeing.number == "4096" and agreeing.line[0] > -1 and not agreeing.line[1]
    # A reader that hears more digits than the ink has cannot overrule; the verdict is told it disagrees.
    deaf = found(engine, [picture], line=Says("99999999"))[0]
    assert deaf.number == "4096" and deaf.line[0] < -20 and deaf.line[1]
    # 28x28 pictures are one digit as `predict` reads them: the line reader is not asked.
    single = found(engine, [mnist_test[0][0].numpy()], line=Says("99999999"))[0]
    assert single.line is None
    assert read_pictures(engine, [picture], line=Says("4096"))[0].number == "4096"


@pytest.mark.mnist
@pytest.mark.skipif(not shipped_weights("line").is_file(), reason="run `make weights-line`")
def test_shipped_line_reader_reads_numbers_on_its_own(mnist_test: tuple[torch.Tensor, torch.Tensor]) -> None:
    g = np.random.default_rng(5)
    texts = ["".join(map(str, g.integers(0, 10, g.integers(1, 7)))) for _ in range(24)]
    layouts = [segment(number_picture(digits_of(mnist_test, t, k), [int(g.integers(2, 10)) for _ in t[1:]],
                                      drift=float(g.uniform(-0.05, 0.05)), seed=k))
               for k, t in enumerate(texts)]
    read, _ = line.shipped()(layouts)
    right = sum(r == t for r, t in zip(read, texts, strict=True))
    assert right >= 20, list(zip(read, texts, strict=True))


@pytest.mark.skipif(not shipped_weights("line").is_file(), reason="run `make weights-line`")
def test_shipped_line_record_says_how_it_was_made() -> None:
    record = json.loads(shipped_weights("line").with_suffix(".json").read_text())
    assert record["command"].startswith("python -m digitlab.line") and record["reproduce"] == "make weights-line"
    assert f"--seed {record['seed']}" in record["command"] and record["strips"] >= 10_000


def test_strips_written_in_other_hands_follow_the_mnist_ones() -> None:
    made = line.strips(3, 2, lengths=range(2, 4), hands=2)
    assert [len(number) for _, number in made] == [2, 2, 3, 3, 2, 2, 3, 3]
    assert all(s.dtype == np.uint8 and s.shape[0] == line.HEIGHT and s.max() > 128 for s, _ in made)
    # The MNIST strips are the same with or without other hands, so adding them changes no earlier strip.
    alone = line.strips(3, 2, lengths=range(2, 4))
    assert all(np.array_equal(a, b) and n == m for (a, n), (b, m) in zip(alone, made[:4], strict=True))
    assert not any(np.array_equal(a, b) for (a, _), (b, _) in zip(made[:4], made[4:], strict=True))


def test_a_strip_reads_the_same_whatever_else_is_in_the_batch() -> None:
    """Until stop 45 strips were padded with black to the widest of the batch, and the padding reached back into
    a narrow strip's columns through the convolutions and the backward GRU: `digitlab read` on a folder could read
    a picture differently from the same picture alone (a development blank read "1" alone, blank in its batch)."""
    torch.manual_seed(0)
    reader = line.LineReader(line.LineNet())
    short = segment(strokes([[(30, 40), (30, 160)]]))
    wide = segment(strokes([[(30, 40), (30, 160)], [(120, 40), (120, 160)], [(200, 40), (260, 160)]],
                           size=(320, 200)))
    _, alone = reader([short])
    _, together = reader([short, wide])
    np.testing.assert_allclose(alone[0], together[0], atol=1e-5)
