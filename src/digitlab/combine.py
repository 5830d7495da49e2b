"""Two readers, one reading: when the chain and the line reader disagree, which one to believe.

    python -m digitlab.combine        # refit digitlab/weights/combine.json (make weights-combine, ~7 min on 2 cores)

`digitlab.read` reads a number twice: the chain of cut-out digits (`digitlab.chain`) and the line reader that
reads the whole strip of ink without cutting it (`digitlab.line`). Mostly they agree. When they do not, the
best chain that spells the line reader's reading is found (a run may be read as any digit, at the
log-probability gap to the classifier's top digit, floored at COST_FLOOR), and a logistic regression over
FEATURES says whether to take it instead of the chain's own reading. A line reading more than
MOST_DIGITS_APART digits longer or shorter than the chain's is never taken.

Stop 28 took the reading with the higher `chain score + 1.0 * line log p`: one weight, chosen on photos of
the strong model's 2,000 held-out MNIST training digits, where weights 1 to 8 read the same. The regression
learns more than a weight: that a line reader which hears a different count of digits is usually right (a
chain that cut a 6 into "10"), and that a gap in chain score matters less than the same gap in log p. It is
fitted on the disagreements in photos of those same held-out digits (`digitlab.synth`, lengths 1-6), which
neither reader nor classifier trained on and the benchmark never shows; a quarter of the photos is held out,
and the record compares the regression with the chain alone, the line reader alone and the old weights there.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from digitlab.chain import Scores, spelled
from digitlab.line import log_likelihood

if TYPE_CHECKING:
    from digitlab.read import Found

FEATURES = ("bias", "chain score gap / 5", "line log p gap / 5", "line log p of its own reading / 5",
            "different count of digits", "line log p of the chain's reading / 5")
# A reading the line reader cannot make sense of (log p -60) or a chain that cuts a scribble (a score gap of
# 80) must not decide alone.
GAP_CAP, LOGP_GAP_CAP, OWN_FLOOR, CHAINS_FLOOR = 40.0, 20.0, -10.0, -20.0
COST_FLOOR = -15.0  # reading a run as a digit the classifier all but rules out costs at most this
# The chain's cuts seldom miss or add two digits: a line reading two digits longer or shorter was right in 2 of
# the 6,000 photos the regression is fitted on, and wrong in 4; it is never believed.
MOST_DIGITS_APART = 1
L2 = 1e-2


@dataclass(frozen=True)
class Combiner:
    """Take the line reader's reading when `features @ weights > 0`."""

    weights: np.ndarray

    @classmethod
    def weighted(cls, weight: float) -> Combiner:
        """Stop 28's rule: the higher `chain score + weight * line log p` wins (within the caps)."""
        return cls(np.array([0.0, -1.0, weight, 0.0, 0.0, 0.0]))

    def believes_line(self, x: np.ndarray) -> bool:
        return float(x @ self.weights) > 0


def features(chains: float, other: float, logp_chains: float, logp_other: float, count_differs: bool
             ) -> np.ndarray:
    """One row of FEATURES: the chain's score and that of the best chain spelling the other reading, and the
    line reader's log p of each reading."""
    return np.array([1.0, min(chains - other, GAP_CAP) / 5, min(logp_other - logp_chains, LOGP_GAP_CAP) / 5,
                     max(logp_other, OWN_FLOOR) / 5, float(count_differs), max(logp_chains, CHAINS_FLOOR) / 5])


def disagreement(f: Found, text: str, columns: np.ndarray
                 ) -> tuple[np.ndarray | None, list[int] | None, np.ndarray]:
    """For a line reading `text` other than the chain's: (FEATURES row or None when no chain spells `text`,
    that chain, the line log p of [the chain's reading, text])."""
    ll = log_likelihood([columns, columns], [f.number, text])
    if abs(len(text) - len(f.number)) > MOST_DIGITS_APART:
        return None, None, ll
    logp = np.log(np.maximum(f.probs, 1e-12))
    costs = np.maximum(logp - logp.max(1, keepdims=True), COST_FLOOR)
    scores = Scores(f.scores, f.skips)
    # The chain's own reading spelled with these costs is the chain itself (its labels cost 0): its total score.
    base, other = spelled(f.layout, scores, f.number, costs), spelled(f.layout, scores, text, costs)
    if base is None or other is None:
        return None, None, ll
    return features(base[1], other[1], float(ll[0]), float(ll[1]), len(text) != len(f.number)), other[0], ll


def second_opinion(f: Found, text: str, columns: np.ndarray, combiner: Combiner
                   ) -> tuple[list[int], list[int], float, bool]:
    """(chain, labels, line log p of the reading, whether the line reader's own reading differs)."""
    ours = f.number
    if text == ours or not text:  # most pictures: nothing to weigh, no chain to spell
        return f.chain, f.labels, float(log_likelihood([columns], [ours])[0]), text != ours
    x, chain, ll = disagreement(f, text, columns)
    if x is not None and chain is not None and combiner.believes_line(x):
        return chain, [int(d) for d in text], float(ll[1]), False
    return f.chain, f.labels, float(ll[0]), True


@functools.cache
def shipped() -> Combiner:
    """The shipped regression (digitlab/weights/combine.json)."""
    from digitlab.models import shipped_weights

    record = json.loads(shipped_weights("combine").with_suffix(".json").read_text())
    if list(record["weights"]) != list(FEATURES):
        raise ValueError("digitlab/weights/combine.json was fitted for other features: run make weights-combine")
    return Combiner(np.array(list(record["weights"].values())))


# ------------------------------------------------------------------------------------------ fitting

def cases(model: str, seed: int, per_length: int) -> list[tuple[str, str, str, np.ndarray | None]]:
    """(truth, the chain's reading, the line reader's, FEATURES row or None) for photos of the held-out digits,
    lengths 1-6, photo k of each length at index 6 * k + length - 1 (so that every fourth is of every length)."""
    from digitlab.engine import load_engine
    from digitlab.line import shipped as shipped_line
    from digitlab.line import training_digits
    from digitlab.read import found
    from digitlab.synth import number_photo

    engine, mnist, reader = load_engine(model), training_digits(held_out=True), shipped_line()
    if reader is None:
        raise ValueError("no line reader: run make weights-line first")
    pictures = [number_photo(mnist, np.random.default_rng([2000 + seed, n, k]), n)
                for k in range(per_length) for n in range(1, 7)]
    out = []
    for a in range(0, len(pictures), 50):
        part = pictures[a:a + 50]
        finds = found(engine, [p for p, _ in part], line=None)
        texts, columns = reader([f.layout for f in finds])
        for f, text, c, (_, truth) in zip(finds, texts, columns, part, strict=True):
            x = disagreement(f, text, c)[0] if f.chain and text and text != f.number else None
            out.append((truth, f.number, text, x))
    return out


def fit(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """L2-regularised logistic regression by Newton's method: a few hundred rows, six weights."""
    w = np.zeros(x.shape[1])
    for _ in range(50):
        p = 1 / (1 + np.exp(-x @ w))
        gradient = x.T @ (p - y) / len(y) + L2 * w
        hessian = (x.T * (p * (1 - p))) @ x / len(y) + L2 * np.eye(len(w))
        w -= np.linalg.solve(hessian, gradient)
    return w


def exact(rows: list[tuple[str, str, str, np.ndarray | None]], rule: Combiner | None) -> float:
    """Share of numbers read right, nothing refused: the chain alone (rule None) or with the line reader."""
    right = sum((text if rule is not None and x is not None and rule.believes_line(x) else ours) == truth
                for truth, ours, text, x in rows)
    return right / len(rows)


def main(argv: list[str] | None = None) -> int:
    from digitlab.fileio import atomic_write_text

    parser = argparse.ArgumentParser(prog="python -m digitlab.combine", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="src/digitlab/weights/combine.json")
    parser.add_argument("--model", default="strong")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--per-length", type=int, default=1000, help="photos per number length (1-6)")
    args = parser.parse_args(argv)
    began = time.perf_counter()
    rows = cases(args.model, args.seed, args.per_length)
    fitted, held = [r for k, r in enumerate(rows) if k % 24 < 18], [r for k, r in enumerate(rows) if k % 24 >= 18]
    # Only disagreements one of the readers gets right teach anything.
    taught = [(x, text == truth) for truth, ours, text, x in fitted if x is not None and truth in (ours, text)]
    weights = fit(np.stack([x for x, _ in taught]), np.array([float(y) for _, y in taught]))
    learned = Combiner(weights)
    record = {
        "command": f"python -m digitlab.combine --model {args.model} --seed {args.seed} "
                   f"--per-length {args.per_length}",
        "reproduce": "make weights-combine", "model": args.model, "seed": args.seed,
        "fitted_on": {"photos": len(fitted), "disagreements": len(taught)},
        "held_out_exact": {"photos": len(held),
                           "chain alone": round(exact(held, None), 4),
                           "line reader alone": round(sum(t == r for r, _, t, _ in held) / len(held), 4),
                           **{f"weight {w:g}": round(exact(held, Combiner.weighted(w)), 4) for w in (1.0, 2.0)},
                           "learned": round(exact(held, learned), 4),
                           "either reader right": round(sum(r in (o, t) for r, o, t, _ in held) / len(held), 4)},
        "seconds": round(time.perf_counter() - began, 1),
        "weights": {name: round(float(v), 5) for name, v in zip(FEATURES, weights, strict=True)},
    }
    atomic_write_text(Path(args.out), json.dumps(record, indent=2) + "\n")
    print(json.dumps(record["held_out_exact"]), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
