"""digitlab.combine: which reading to believe when the chain and the line reader disagree."""

from __future__ import annotations

import json

import numpy as np
import pytest

from digitlab import combine, line
from digitlab.combine import Combiner, features, second_opinion
from digitlab.models import shipped_weights
from digitlab.read import Found
from digitlab.segment import segment
from tests.test_line import columns_saying
from tests.test_segment import strokes


def _three_ones() -> Found:
    """Three strokes, read by the chain as three digits "111"; the middle one could be a 7 (5%) or a 4 (1%)."""
    layout = segment(strokes([[(30, 40), (30, 160)], [(80, 40), (80, 160)], [(130, 40), (130, 160)]]))
    assert len(layout.slices) == 3
    k = len(layout.candidates)
    probs = np.full((k, 10), 0.1 / 9, np.float32)
    probs[:, 1] = 0.9
    middle = layout.candidates.index((1, 2))
    probs[middle] = [0.0, 0.94, 0.0, 0.0, 0.01, 0.0, 0.0, 0.05, 0.0, 0.0]
    scores = np.array([1.0 if j - i == 1 else -5.0 for i, j in layout.candidates])
    chain = [layout.candidates.index(c) for c in ((0, 1), (1, 2), (2, 3))]
    return Found(layout, chain, np.zeros((k, 28, 28), np.uint8), probs, np.zeros(k), scores,
                 np.full(3, -np.inf), [1, 1, 1])


def test_the_line_reader_may_respell_a_run_at_the_classifiers_cost() -> None:
    f = _three_ones()
    chain, labels, logp, differs = second_opinion(f, "171", columns_saying("171"), Combiner.weighted(1.0))
    assert (chain, labels, differs) == (f.chain, [1, 7, 1], False) and logp > -1
    # Weight 0: the chain's score alone, and the chain's own reading scores best.
    chain, labels, logp, differs = second_opinion(f, "171", columns_saying("171"), Combiner.weighted(0.0))
    assert (labels, differs) == ([1, 1, 1], True) and logp < -5
    # The 4 at 1% costs log(0.01 / 0.94) = -4.5 of chain score: a sure enough reader still wins; the 3 at 0%
    # costs COST_FLOOR, which a weak weight does not pay.
    assert second_opinion(f, "141", columns_saying("141"), Combiner.weighted(1.0))[1] == [1, 4, 1]
    assert second_opinion(f, "131", columns_saying("131"), Combiner.weighted(0.1))[1] == [1, 1, 1]
    assert second_opinion(f, "131", columns_saying("131"), Combiner.weighted(10.0))[1] == [1, 3, 1]
    # More digits than the ink has slices: no chain spells it, whatever the combiner.
    always = Combiner(np.array([100.0, 0, 0, 0, 0, 0]))
    assert second_opinion(f, "1111", columns_saying("1111"), always)[1:] == ([1, 1, 1], pytest.approx(
        float(line.log_likelihood([columns_saying("1111")], ["111"])[0])), True)
    # Agreeing costs nothing and changes nothing.
    assert second_opinion(f, "111", columns_saying("111"), always)[1:] == ([1, 1, 1], pytest.approx(0, abs=0.05),
                                                                          False)


def test_a_reading_two_digits_apart_is_never_believed(monkeypatch: pytest.MonkeyPatch) -> None:
    f = _three_ones()
    # A chain that spells anything, so that only the count of digits stands between the line reader and belief.
    monkeypatch.setattr(combine, "spelled", lambda layout, scores, text, costs: (f.chain, 0.0))
    always = Combiner(np.array([100.0, 0, 0, 0, 0, 0]))
    assert second_opinion(f, "1111", columns_saying("1111"), always)[1] == [1, 1, 1, 1]
    assert second_opinion(f, "11", columns_saying("11"), always)[1] == [1, 1]
    for text in ("11111", "1"):
        assert combine.disagreement(f, text, columns_saying(text))[0] is None
        assert second_opinion(f, text, columns_saying(text), always)[1:] == (
            [1, 1, 1], pytest.approx(float(line.log_likelihood([columns_saying(text)], ["111"])[0])), True)


def test_features_are_capped_and_the_weighted_rule_is_stop_28s() -> None:
    x = features(chains=30.0, other=-70.0, logp_chains=-60.0, logp_other=-0.5, count_differs=True)
    assert x.tolist() == pytest.approx([1, combine.GAP_CAP / 5, combine.LOGP_GAP_CAP / 5, -0.1, 1,
                                        combine.CHAINS_FLOOR / 5])
    g = np.random.default_rng(0)
    for _ in range(200):
        chains, other, a, b = g.uniform(0, 10), g.uniform(-10, 0), g.uniform(-9, 0), g.uniform(-9, 0)
        w = float(g.choice([0.5, 1.0, 2.0]))
        assert Combiner.weighted(w).believes_line(features(chains, other, a, b, False)) == (
            other + w * b > chains + w * a)


def test_fit_learns_a_rule_it_is_shown() -> None:
    g = np.random.default_rng(1)
    x = np.column_stack([np.ones(400), g.normal(size=(400, 2))])
    truth = np.array([0.5, -2.0, 3.0])
    y = (x @ truth + g.normal(0, 0.3, 400) > 0).astype(float)
    w = combine.fit(x, y)
    assert np.mean((x @ w > 0) == y) > 0.95
    assert np.sign(w[1:]).tolist() == [-1, 1]


def test_exact_counts_what_each_rule_reads() -> None:
    believe, doubt = np.eye(6)[0], -np.eye(6)[0]
    rows = [("12", "12", "12", None), ("12", "17", "12", believe), ("12", "12", "17", doubt),
            ("55", "56", "57", believe)]
    assert combine.exact(rows, None) == 0.5
    assert combine.exact(rows, Combiner(np.eye(6)[0])) == 0.75  # row 2 mended, row 3 kept, row 4 still wrong
    assert combine.exact(rows, Combiner(np.zeros(6))) == 0.5  # 0 is not > 0: the chain stands everywhere


@pytest.mark.skipif(not shipped_weights("combine").with_suffix(".json").is_file(),
                    reason="run `make weights-combine`")
def test_shipped_combiner_record_says_how_it_was_made_and_that_it_helps() -> None:
    record = json.loads(shipped_weights("combine").with_suffix(".json").read_text())
    assert record["command"].startswith("python -m digitlab.combine") and record["reproduce"] == "make weights-combine"
    assert list(record["weights"]) == list(combine.FEATURES)
    held = record["held_out_exact"]
    assert held["photos"] >= 1000
    # On photos it was not fitted on, it reads more numbers than the chain alone and than stop 28's rule.
    assert held["learned"] > held["chain alone"] and held["learned"] >= held["weight 1"]
    assert held["learned"] <= held["either reader right"]
    assert isinstance(combine.shipped(), Combiner)
