"""digitlab.verdict: one learned score says whether a reading is of a number."""

from __future__ import annotations

import json

import numpy as np
import pytest

from digitlab.models import shipped_weights
from digitlab.verdict import SUMMARY, fit, judge, judged, summary


def test_summary_of_a_reading() -> None:
    row = summary(np.array([3.0, -9.0]), np.array([40.0, -2.0]), np.array([0.99, 0.5]))
    assert row.shape == (len(SUMMARY),)
    named = dict(zip(SUMMARY, row.tolist(), strict=True))
    # One wild value is capped: a margin of -9 counts as -6, a chain score of 40 as 15.
    assert named["weakest check margin"] == -6.0 and named["mean check margin"] == pytest.approx(-1.5)
    assert named["mean chain score / 5 (several digits)"] == pytest.approx((15 - 2) / 2 / 5)
    assert named["weakest log p"] == pytest.approx(np.log(0.5), abs=1e-6)
    # The one-digit terms are zero for a reading of several digits; for one digit the chain's score is left
    # out (it had nothing to choose) and the check's margin counts again.
    assert named["one digit"] == named["one digit: check margin"] == 0
    alone = dict(zip(SUMMARY, summary(np.array([2.0]), np.array([-5.0]), np.array([0.9])).tolist(), strict=True))
    assert alone["one digit"] == 1 and alone["one digit: check margin"] == 2
    assert alone["weakest chain score / 5 (several digits)"] == alone["mean chain score / 5 (several digits)"] == 0
    # Without the line reader's opinion (a 28x28 digit): its own term, not a reader sure of the reading.
    assert alone["line reader: log p of the reading / 5"] == alone["line reader reads it otherwise"] == 0
    assert alone["line reader not asked"] == 1 and named["line reader not asked"] == 1
    heard = dict(zip(SUMMARY, summary(np.array([2.0]), np.array([-5.0]), np.array([0.9]), (-80.0, True)).tolist(),
                     strict=True))
    assert heard["line reader: log p of the reading / 5"] == -2.0 and heard["line reader reads it otherwise"] == 1
    assert heard["line reader not asked"] == 0
    # The check for whole pictures speaks for a digit alone (capped like the other margins), never for a
    # digit among others; not given, the margin of the check for pieces stands in.
    assert alone["one digit: whole-picture check margin"] == 2
    both = dict(zip(SUMMARY, summary(np.array([2.0]), np.array([-5.0]), np.array([0.9]), whole=9.0).tolist(),
                    strict=True))
    assert both["one digit: whole-picture check margin"] == 6.0 and both["one digit: check margin"] == 2
    assert named["one digit: whole-picture check margin"] == 0
    assert summary(np.array([3.0, -9.0]), np.array([40.0, -2.0]), np.array([0.99, 0.5]), whole=5.0)[-1] == 0
    with pytest.raises(ValueError):
        summary(np.zeros(0), np.zeros(0), np.zeros(0))


def test_fit_separates_and_sets_the_threshold_at_the_quantile() -> None:
    g = np.random.default_rng(0)

    def rows(margin: float, n: int) -> np.ndarray:
        return np.stack([summary(g.normal(margin, 1.5, 3), g.normal(2 * margin, 3, 3), np.full(3, 0.95))
                         for _ in range(n)])

    numbers, others = rows(3.0, 400), rows(-2.0, 400)
    weights, thresholds = fit(numbers, others, quantile=0.05)
    # No digit alone among them: both thresholds are the quantile of all.
    assert thresholds[0] == thresholds[1]
    refused = np.array([not judged(row, (weights, thresholds)).number for row in numbers])
    assert 0.03 <= refused.mean() <= 0.07
    assert np.mean([not judged(row, (weights, thresholds)).number for row in others]) > 0.9


def test_a_digit_alone_is_refused_as_often_as_a_longer_number() -> None:
    # Lone digits whose margins run lower than longer numbers': with one threshold over all, the lone ones
    # would take nearly all of the refusals. They get their own threshold at the same quantile; longer
    # numbers keep the shared one, which refuses fewer of them than the quantile.
    g = np.random.default_rng(1)
    several = np.stack([summary(g.normal(4.0, 1.0, 3), g.normal(6, 2, 3), np.full(3, 0.97)) for _ in range(600)])
    alone = np.stack([summary(g.normal(2.0, 1.0, 1), g.normal(0, 1, 1), np.full(1, 0.97)) for _ in range(600)])
    others = np.stack([summary(g.normal(-2.0, 1.5, k), g.normal(-3, 3, k), np.full(k, 0.8))
                       for k in g.integers(1, 4, 600)])
    weights, thresholds = fit(np.concatenate([several, alone]), others, quantile=0.05)
    assert thresholds[1] < thresholds[0]
    refused = [np.mean([not judged(row, (weights, thresholds)).number for row in group]) for group in (several, alone)]
    assert refused[0] <= 0.05 and 0.03 <= refused[1] <= 0.07
    scores = np.concatenate([several, alone]) @ weights
    assert thresholds[0] == pytest.approx(np.quantile(scores, 0.05), abs=1e-5)
    # One shared threshold still works (verdict.json before stop 32 has one).
    shared = judged(several[0], (weights, float(thresholds[0])))
    assert shared == judged(several[0], (weights, thresholds))


def test_shipped_verdict_judges_whole_readings() -> None:
    clear = judge(np.array([5.0, 4.0, 6.0]), np.array([8.0, 6.0, 9.0]), np.array([0.99, 0.98, 0.99]))
    assert clear.number and clear.score > 0
    # Digits the check likes, one of which the chain scores low (cut a little wrong, a touching neighbour):
    # the rules before the verdict refused this number; the whole reading says it is one.
    assert judge(np.array([5.0, 4.0, 3.5, 6.0]), np.array([8.0, -5.0, 6.0, 7.0]), np.full(4, 0.99)).number
    # Three "digits" the check rejects: not a number.
    scribble = judge(np.array([-1.0, -5.0, -2.0]), np.array([1.0, -8.0, 0.0]), np.array([0.9, 0.7, 0.8]))
    assert not scribble.number and scribble.score < 0
    # One digit alone: the check decides, whatever the chain's checker thinks of a ruler-straight 1.
    assert judge(np.array([4.0]), np.array([-12.0]), np.array([0.99])).number
    assert not judge(np.array([-2.0]), np.array([5.0]), np.array([0.9])).number
    # The line reader's opinion of the whole reading counts: one it is sure of against one it reads otherwise.
    digits = np.array([2.0, 1.5, 3.0]), np.array([3.0, 2.0, 4.0]), np.array([0.95, 0.9, 0.99])
    assert judge(*digits, (-0.1, False)).score - judge(*digits, (-10.0, True)).score > 2


def test_shipped_record_says_how_it_was_fitted_and_how_it_did() -> None:
    record = json.loads(shipped_weights("verdict").with_suffix(".json").read_text())
    assert list(record["weights"]) == list(SUMMARY)
    assert record["command"].startswith("python -m digitlab.verdict") and record["reproduce"] == "make weights-verdict"
    held = record["held_out"]
    # On pictures held out of the fit: few right readings refused, most non-digits refused.
    assert held["right_readings"] >= 300 and held["right_readings_refused"] <= 0.02
    assert held["non_digit_pictures"] >= 300 and held["non_digit_pictures_refused"] >= 0.85
