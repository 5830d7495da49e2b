"""Which runs of slices are the digits: a score for each candidate, and the best chain of them.

    python -m digitlab.chain          # refit the shipped checker and weights (make weights-chain, ~8 min on 2 cores)

`digitlab.segment` over-cuts a number into slices and lists the runs of slices that may each be a digit;
the model reads every run. A reading is a chain of runs covering every slice once, left to right, where a
small slice (a speck, a shadow's edge, a piece of a broken stroke too far from its digit) may also be left
out. Which chain? The classifier alone cannot say: a 7 with a slanted 1 leaning on it reads as "7" as
confidently as a clean 7 does, and half a 0 reads as a confident 1. Each run is described by:

- measurements (`FEATURES`): its top logit next to the picture's best, how wide it is, how tall next to the
  digits around it, whether it begins or ends by cutting through ink, how many slices and blobs it joins;
- a small CNN, the checker, that looks at the run's 28x28 crop and those measurements and says how likely
  the run is exactly one whole digit (not a fragment, not two digits, not a digit and a piece);
- how much `digitlab.refuse`'s check takes the crop for a digit at all.

and each slice that may be left out by `SKIP_FEATURES`. A chain's score is the sum of `weights . row` over
its runs and left-out slices; the best chain is found by dynamic programming. The checker is trained on
made-up photos of numbers (`digitlab.synth`) written with MNIST's *training* digits, where each digit lies
is known; the weights are then learned on other such photos with a structured perceptron: whenever the best
chain misreads a photo, the weights move towards the best chain that reads it right. The benchmark's photos
are written with MNIST's test digits and stay unseen.
"""

from __future__ import annotations

import argparse
import functools
import io
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from digitlab.data import augment
from digitlab.engine import one_torch_thread
from digitlab.segment import Layout

FEATURES = ("bias", "top logit / picture's best", "calibrated log p", "margin to runner-up / best",
            "width / height", "too wide (w/h - 1.2)+", "height / digits around", "too short (0.65 - h)+",
            "starts by cutting ink", "ends by cutting ink", "slices - 1", "blobs - 1")
# What a candidate's score adds up: its measurements, then the checker's logit and the not-a-digit check's
# margin (digitlab.refuse: logit - threshold, split at 0), both capped at CAP: on a crop unlike anything they
# were trained on (a ruler-straight 1) a small CNN's logit can be -15, and one such crop must not decide alone.
COLUMNS = (*FEATURES, "checker", "digit check below threshold", "digit check above threshold")
SKIP_FEATURES = ("leave out a slice", "its height / digits around", "alone in its blob", "its ink / most ink")
# Only slices this small may be left out: a whole digit never can, so a number never loses a digit silently.
SKIP_HEIGHT, SKIP_INK = 0.4, 0.2
CAP = 6.0
# The costs the weights start from before learning, in units of the picture's best top logit: less a cost
# per digit, more when too wide, much more for a fragment far shorter than its neighbours, a little for a
# start that cuts ink; the checker at 0.2 (the hand-fitted mix of the first version); leaving a slice out
# costs 5.
START = np.array([-0.9, 1, 0, 0, 0, -0.9, 0, -3.6, -0.18, 0, 0, 0, 0.2, 0, 0, -5, 0, 0, 0], np.float32)


@dataclass
class Scores:
    """One layout's scores: per candidate (run of slices), and per slice for leaving it out (-inf: never)."""

    runs: np.ndarray
    skips: np.ndarray


class Checker(nn.Module):
    """Is this crop exactly one whole digit? Three 3x3 conv layers on the crop, the measurements beside."""

    def __init__(self, measurements: int = len(FEATURES) - 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.conv3 = nn.Conv2d(32, 32, 3, padding=1)
        self.fc1 = nn.Linear(32 * 3 * 3 + measurements, 64)
        self.fc2 = nn.Linear(64, 1)

    def forward(self, crops: torch.Tensor, measurements: torch.Tensor) -> torch.Tensor:
        x = crops.float().div(255).unsqueeze(1)
        for conv in (self.conv1, self.conv2, self.conv3):
            x = F.max_pool2d(F.relu(conv(x)), 2)
        return self.fc2(F.relu(self.fc1(torch.cat([x.flatten(1), measurements], 1)))).squeeze(1)


def features(layout: Layout, logits: np.ndarray, temperature: float) -> np.ndarray:
    """One row of FEATURES per candidate of the layout; `logits` are the model's, one row per candidate."""
    if len(layout.candidates) == 0:
        return np.zeros((0, len(FEATURES)), np.float32)
    logits = np.asarray(logits, np.float64)
    top2 = np.sort(logits, axis=1)[:, -2:]
    best = max(float(top2[:, 1].max()), 1e-3)
    scaled = logits / temperature
    peak = scaled.max(1, keepdims=True)
    logp = -np.log(np.exp(scaled - peak).sum(1))
    n = len(layout.slices)
    rows = []
    for k, (i, j) in enumerate(layout.candidates):
        piece = layout.piece(i, j)
        aspect = piece.width / max(piece.height, 1)
        ratio = layout.height_ratio(i, j)
        ends_in_ink = j < n and layout.blobs[j] == layout.blobs[j - 1]
        rows.append((1.0, top2[k, 1] / best, logp[k], (top2[k, 1] - top2[k, 0]) / best, aspect,
                     max(0.0, aspect - 1.2), ratio, max(0.0, 0.65 - ratio), float(layout.cuts_ink(i)),
                     float(ends_in_ink), j - i - 1, len(set(layout.blobs[i:j])) - 1))
    return np.asarray(rows, np.float32)


def skip_features(layout: Layout) -> tuple[np.ndarray, np.ndarray]:
    """One row of SKIP_FEATURES per slice, and whether the slice is small enough to be left out."""
    n = len(layout.slices)
    ink = np.array([s.mask.sum() for s in layout.slices], np.float32)
    most = max(float(ink.max()), 1.0) if n else 1.0
    rows = []
    for i, piece in enumerate(layout.slices):
        alone = ((i == 0 or layout.blobs[i - 1] != layout.blobs[i])
                 and (i == n - 1 or layout.blobs[i + 1] != layout.blobs[i]))
        rows.append((1.0, piece.height / max(layout.heights[i], 1), float(alone), ink[i] / most))
    table = np.asarray(rows, np.float32).reshape(n, len(SKIP_FEATURES))
    return table, (table[:, 1] < SKIP_HEIGHT) & (table[:, 3] < SKIP_INK)


def best_chain(layout: Layout, scores: Scores | np.ndarray) -> list[int]:
    """The candidates, left to right, of the best-scoring chain: every slice covered once or left out."""
    return _best(layout, scores)[0]


def _best(layout: Layout, scores: Scores | np.ndarray, spell: str | None = None, labels: np.ndarray | None = None
          ) -> tuple[list[int], list[int]] | None:
    """(candidates, slices left out) of the best chain; with `spell`, of the best chain whose candidates'
    `labels` spell it (None if there is none). `labels` is one label per candidate, or (k, 10) costs of reading
    candidate k as each digit, added to its score (-inf: it cannot be read so)."""
    if not isinstance(scores, Scores):
        scores = Scores(np.asarray(scores), np.full(len(layout.slices), -np.inf))
    n, places = len(layout.slices), 1 if spell is None else len(spell) + 1
    labels = None if labels is None else np.asarray(labels)
    best = np.full((n + 1, places), -np.inf)
    best[0, 0] = 0.0
    back: dict[tuple[int, int], tuple[int, int]] = {}
    starting: list[list[int]] = [[] for _ in range(n)]
    for k, (i, _) in enumerate(layout.candidates):
        starting[i].append(k)
    for i in range(n):
        for p in np.flatnonzero(np.isfinite(best[i])):
            if best[i, p] + scores.skips[i] > best[i + 1, p]:
                best[i + 1, p], back[(i + 1, p)] = best[i, p] + scores.skips[i], (-1 - i, p)
            for k in starting[i]:
                score = best[i, p] + scores.runs[k]
                if spell is None:
                    q = 0
                elif p >= len(spell):
                    continue
                elif labels.ndim == 1:
                    if int(labels[k]) != int(spell[p]):
                        continue
                    q = p + 1
                else:
                    q, cost = p + 1, labels[k, int(spell[p])]
                    if not np.isfinite(cost):
                        continue
                    score += cost
                j = layout.candidates[k][1]
                if score > best[j, q]:
                    best[j, q], back[(j, q)] = score, (k, p)
    at = (n, places - 1)
    if not np.isfinite(best[at]):
        return None
    runs, skipped = [], []
    while at[0] > 0:
        k, p = back[at]
        if k >= 0:
            runs.append(k)
            at = (layout.candidates[k][0], p)
        else:
            skipped.append(-1 - k)
            at = (-1 - k, p)
    return runs[::-1], skipped[::-1]


def spelled(layout: Layout, scores: Scores, text: str, costs: np.ndarray) -> tuple[list[int], float] | None:
    """The best chain whose candidates spell `text`, candidate k read as digit d at `costs[k, d]` added to its
    score (-inf: never), and its total score; None if no chain spells it."""
    if not text.isdigit():
        return None
    found = _best(layout, scores, text, costs)
    if found is None:
        return None
    runs, skipped = found
    total = sum(float(scores.runs[k] + costs[k, int(d)]) for k, d in zip(runs, text, strict=True))
    return runs, total + float(sum(scores.skips[s] for s in skipped))


@functools.cache
def shipped() -> tuple[Checker, np.ndarray]:
    """The shipped checker (digitlab/weights/chain.safetensors) and the learned weights (chain.json)."""
    from digitlab.models import shipped_weights

    weights = shipped_weights("chain")
    record = json.loads(weights.with_suffix(".json").read_text())
    learned = record.get("weights", {})
    if list(learned) != [*COLUMNS, *SKIP_FEATURES]:
        raise ValueError("digitlab/weights/chain.json was fitted for other features: run make weights-chain")
    checker = Checker()
    checker.load_state_dict(load_file(str(weights)))
    return checker.eval(), np.array(list(learned.values()), np.float32)


def tables(layouts: list[Layout], crops: np.ndarray, logits: np.ndarray, temperature: float, digitness: np.ndarray,
           checker: Checker) -> list[np.ndarray]:
    """Per layout, one row of COLUMNS per candidate; all candidates of all layouts go through the checker at
    once. `digitness` is digitlab.refuse's logit less its threshold, one per candidate."""
    rows, start = [], 0
    for layout in layouts:
        rows.append(features(layout, logits[start:start + len(layout.candidates)], temperature))
        start += len(layout.candidates)
    table = np.concatenate(rows) if rows else np.zeros((0, len(FEATURES)), np.float32)
    if len(table) == 0:
        return [np.zeros((0, len(COLUMNS)), np.float32) for _ in layouts]
    with one_torch_thread(), torch.inference_mode():
        checked = checker(torch.from_numpy(np.ascontiguousarray(crops)), torch.from_numpy(table[:, 1:])).numpy()
    margin = np.asarray(digitness, np.float32)
    table = np.column_stack([table, np.clip(checked, -CAP, CAP), np.clip(margin, -CAP, 0), np.clip(margin, 0, CAP)])
    out, start = [], 0
    for layout in layouts:
        out.append(table[start:start + len(layout.candidates)])
        start += len(layout.candidates)
    return out


def chain_scores(layouts: list[Layout], crops: np.ndarray, logits: np.ndarray, temperature: float,
                 digitness: np.ndarray, fitted: tuple[Checker, np.ndarray] | None = None) -> list[Scores]:
    """Per layout, each candidate's score and each slice's score for being left out."""
    checker, weights = shipped() if fitted is None else fitted
    return [_scores(table, *skip_features(layout), weights)
            for layout, table in zip(layouts, tables(layouts, crops, logits, temperature, digitness, checker),
                                     strict=True)]


def _scores(table: np.ndarray, skip_rows: np.ndarray, allowed: np.ndarray, weights: np.ndarray) -> Scores:
    """`weights` applied to one layout's candidate table and slice-skip table (-inf where no skip is allowed)."""
    return Scores(table @ weights[:len(COLUMNS)], np.where(allowed, skip_rows @ weights[len(COLUMNS):], -np.inf))


# ------------------------------------------------------------------------------------------ fitting


def photos(engine, mnist, seed: int, per_length: int, lengths: range) -> list[tuple]:
    """(layout, crops, logits, number, columns, digitness) for made-up photos of numbers written with `mnist`."""
    from PIL import Image

    from digitlab.data.images import to_mnist
    from digitlab.refuse import margins
    from digitlab.segment import segment
    from digitlab.synth import number_photo

    out = []
    for length in lengths:
        for k in range(per_length):
            info: dict = {}
            photo, number = number_photo(mnist, np.random.default_rng([seed, length, k]), length, info=info)
            layout = segment(Image.open(io.BytesIO(photo)))
            if layout.candidates:
                crops = np.stack([to_mnist(layout.crop(layout.piece(i, j)), look_for_field=False)
                                  for i, j in layout.candidates])
                logits = engine.logits(torch.from_numpy(crops)).float().numpy()
                out.append((layout, crops, logits, number, info["columns"], margins(crops, pieces=True)))
    return out


def is_digit(layout: Layout, columns: list[tuple[int, int]]) -> np.ndarray:
    """Whether each candidate covers one true digit's columns (overlap / union >= synth.WHOLE_DIGIT)."""
    from digitlab.synth import WHOLE_DIGIT, coverage

    return (coverage(layout, columns)[1] >= WHOLE_DIGIT).astype(np.float32)


def train_checker(examples: list[tuple], temperature: float, epochs: int, seed: int) -> Checker:
    torch.manual_seed(seed)
    crops = torch.from_numpy(np.concatenate([e[1] for e in examples]))
    table = torch.from_numpy(np.concatenate([features(e[0], e[2], temperature)[:, 1:] for e in examples]))
    truth = torch.from_numpy(np.concatenate([is_digit(e[0], e[4]) for e in examples]))
    checker = Checker()
    opt = torch.optim.AdamW(checker.parameters(), 2e-3, weight_decay=1e-4)
    for epoch in range(epochs):
        order = torch.randperm(len(truth))
        for b in range(0, len(truth), 256):
            at = order[b:b + 256]
            # Other pens: the photos' digits are MNIST's strokes, but a number drawn on the page's canvas or
            # with a fine pen comes out 1 px thin at 28x28; unaugmented, the checker took every such digit for
            # a fragment (-6 for a drawn 1, 0 and 4). Width, blur and resolution only: a skip would change
            # whether the crop is a whole digit.
            x = augment.handwriting(crops[at].float().div(255).unsqueeze(1)).squeeze(1).mul(255)
            loss = F.binary_cross_entropy_with_logits(checker(x, table[at]), truth[at])
            opt.zero_grad()
            loss.backward()
            opt.step()
        print(f"checker epoch {epoch + 1}/{epochs}: loss {loss.item():.3f}", file=sys.stderr)
    return checker.eval()


def _prepared(examples: list[tuple], temperature: float, checker: Checker) -> list[tuple]:
    """Per example: (layout, candidate table, slice-skip table, which slices may be skipped, labels, number)."""
    runs = tables([e[0] for e in examples], np.concatenate([e[1] for e in examples]),
                  np.concatenate([e[2] for e in examples]), temperature, np.concatenate([e[5] for e in examples]),
                  checker)
    return [(e[0], table, *skip_features(e[0]), e[2].argmax(1), e[3]) for e, table in zip(examples, runs, strict=True)]


def _read(layout: Layout, table: np.ndarray, skip_rows: np.ndarray, allowed: np.ndarray, weights: np.ndarray,
          labels: np.ndarray, spell: str | None = None) -> tuple[list[int], list[int]] | None:
    return _best(layout, _scores(table, skip_rows, allowed, weights), spell, labels)


def learn_weights(prepared: list[tuple], epochs: int, seed: int, start: np.ndarray = START) -> np.ndarray:
    """An averaged structured perceptron: when the best chain misreads a photo, move the weights by the
    difference between the best chain that reads it right and the chain that won."""
    weights, total, steps = start.astype(np.float64), np.zeros(len(start)), 0
    g = np.random.default_rng(seed)
    split = len(COLUMNS)
    for epoch in range(epochs):
        wrong = 0
        for n in g.permutation(len(prepared)):
            layout, table, skip_rows, allowed, labels, number = prepared[n]
            runs, skipped = _read(layout, table, skip_rows, allowed, weights, labels)
            if "".join(str(int(labels[k])) for k in runs) != number:
                wrong += 1
                right = _read(layout, table, skip_rows, allowed, weights, labels, number)
                if right is not None:
                    weights[:split] += 0.1 * (table[right[0]].sum(0) - table[runs].sum(0))
                    weights[split:] += 0.1 * (skip_rows[right[1]].sum(0) - skip_rows[skipped].sum(0))
            total += weights
            steps += 1
        print(f"weights epoch {epoch + 1}/{epochs}: {wrong} of {len(prepared)} misread", file=sys.stderr)
    return (total / max(steps, 1)).astype(np.float32)


def exact(prepared: list[tuple], weights: np.ndarray) -> float:
    """Fraction of the photos whose best chain reads the true number (nothing refused)."""
    right = 0
    for layout, table, skip_rows, allowed, labels, number in prepared:
        runs, _ = _read(layout, table, skip_rows, allowed, weights, labels)
        right += "".join(str(int(labels[k])) for k in runs) == number
    return right / max(len(prepared), 1)


def main(argv: list[str] | None = None) -> int:
    from digitlab.data.idx import load_idx_split
    from digitlab.engine import load_engine
    from digitlab.fileio import atomic_save_weights, atomic_write_text

    parser = argparse.ArgumentParser(prog="python -m digitlab.chain", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="src/digitlab/weights/chain")
    parser.add_argument("--model", default="strong")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--per-length", type=int, default=400, help="photos per number length (1-8) to train on")
    parser.add_argument("--epochs", type=int, default=6)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    engine = load_engine(args.model)
    t = engine.temperature
    train = tuple(x.numpy() for x in load_idx_split("data/mnist", "train"))
    fitting = photos(engine, train, args.seed, args.per_length, range(1, 9))
    learning = photos(engine, train, args.seed + 1, max(10, args.per_length * 3 // 4), range(1, 9))
    reporting = photos(engine, train, args.seed + 2, max(10, args.per_length // 2), range(1, 7))
    print(f"{len(fitting)} photos to train the checker on, {len(learning)} to learn the weights on, "
          f"{len(reporting)} to report on", file=sys.stderr)
    checker = train_checker(fitting, t, args.epochs, args.seed)
    weights = learn_weights(_prepared(learning, t, checker), 8, args.seed)
    shown = _prepared(reporting, t, checker)
    before, after = exact(shown, START), exact(shown, weights)
    print(f"exact numbers on the {len(reporting)} reporting photos: starting weights {before:.1%}, "
          f"learned {after:.1%}", file=sys.stderr)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_save_weights(out.with_suffix(".safetensors"), checker)
    record = {"command": f"python -m digitlab.chain --model {args.model} --seed {args.seed} "
                         f"--per-length {args.per_length} --epochs {args.epochs}",
              "reproduce": "make weights-chain", "model": args.model, "seed": args.seed,
              "checker_photos": len(fitting), "weight_photos": len(learning),
              "reporting_photos": len(reporting), "exact_starting_weights": round(before, 4),
              "exact_learned_weights": round(after, 4), "seconds": round(time.perf_counter() - start, 1),
              "features": list(FEATURES),
              "weights": {name: round(float(w), 5)
                          for name, w in zip([*COLUMNS, *SKIP_FEATURES], weights, strict=True)}}
    atomic_write_text(out.with_suffix(".json"), json.dumps(record, indent=2) + "\n")
    print(f"wrote {out}.safetensors and {out}.json", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
