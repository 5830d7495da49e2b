"""Which runs of slices are the digits: a score for each candidate, and the best chain of them.

    python -m digitlab.chain          # refit the shipped checker (make weights-chain, ~10 min on 2 cores)

`digitlab.segment` over-cuts a number into slices and lists the runs of slices that may each be a digit;
the model reads every run. A reading is a chain of runs covering every slice once, left to right. Which
chain? The classifier alone cannot say: a 7 with a slanted 1 leaning on it reads as "7" as confidently as a
clean 7 does, and half a 0 reads as a confident 1. Each run is scored twice:

- by hand-set costs (`HAND`): its top logit next to the picture's best, less a cost per digit, more when it
  is too wide for one digit, much more when it is a fragment far shorter than the digits around it, and a
  little when it begins by cutting through ink;
- by a small CNN, the checker, that looks at the run's 28x28 crop and the same measurements and says how
  likely the run is exactly one whole digit (not a fragment, not two digits, not a digit and a piece).

The chain with the highest total of `HAND . features + alpha * checker + beta` wins. The checker is trained
on made-up photos of numbers (`digitlab.synth`) written with MNIST's *training* digits, where each digit
lies is known; alpha and beta are chosen on other such photos. The benchmark's photos are written with
MNIST's test digits and stay unseen.
"""

from __future__ import annotations

import argparse
import functools
import io
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from digitlab.engine import one_torch_thread
from digitlab.segment import Layout

FEATURES = ("bias", "top logit / picture's best", "calibrated log p", "margin to runner-up / best",
            "width / height", "too wide (w/h - 1.2)+", "height / digits around", "too short (0.65 - h)+",
            "starts by cutting ink", "ends by cutting ink", "slices - 1", "blobs - 1")
# The hand-set costs, in units of the picture's best top logit (see the module docstring).
HAND = np.array([-0.9, 1, 0, 0, 0, -0.9, 0, -3.6, -0.18, 0, 0, 0], np.float32)


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


def best_chain(layout: Layout, scores: np.ndarray) -> list[int]:
    """The candidates that cover every slice once, left to right, with the highest total score."""
    n = len(layout.slices)
    best = [0.0] + [-np.inf] * n
    back = [-1] * (n + 1)
    for k, (i, j) in enumerate(layout.candidates):  # ordered by i, so best[i] is final when reached
        score = best[i] + float(scores[k])
        if score > best[j]:
            best[j], back[j] = score, k
    chain, at = [], n
    while at > 0:
        k = back[at]
        chain.append(k)
        at = layout.candidates[k][0]
    return chain[::-1]


@functools.cache
def shipped() -> tuple[Checker, float, float]:
    """The shipped checker (digitlab/weights/chain.safetensors) and its alpha and beta (chain.json)."""
    from digitlab.models import shipped_weights

    weights = shipped_weights("chain")
    record = json.loads(weights.with_suffix(".json").read_text())
    if record["features"] != list(FEATURES):
        raise ValueError("digitlab/weights/chain.json was fitted for other features: run make weights-chain")
    checker = Checker()
    checker.load_state_dict(load_file(str(weights)))
    return checker.eval(), float(record["alpha"]), float(record["beta"])


def chain_scores(layouts: list[Layout], crops: np.ndarray, logits: np.ndarray, temperature: float,
                 checker: tuple[Checker, float, float] | None = None) -> list[np.ndarray]:
    """Per layout, each candidate's score; all candidates of all layouts go through the checker at once."""
    model, alpha, beta = shipped() if checker is None else checker
    rows, start = [], 0
    for layout in layouts:
        rows.append(features(layout, logits[start:start + len(layout.candidates)], temperature))
        start += len(layout.candidates)
    table = np.concatenate(rows) if rows else np.zeros((0, len(FEATURES)), np.float32)
    if len(table) == 0:
        return [np.zeros(0, np.float32) for _ in layouts]
    with one_torch_thread(), torch.inference_mode():
        checked = model(torch.from_numpy(np.ascontiguousarray(crops)), torch.from_numpy(table[:, 1:])).numpy()
    total = table @ HAND + alpha * checked + beta
    out, start = [], 0
    for layout in layouts:
        out.append(total[start:start + len(layout.candidates)])
        start += len(layout.candidates)
    return out


# ------------------------------------------------------------------------------------------ fitting


def photos(engine, mnist, seed: int, per_length: int, lengths: range) -> list[tuple]:
    """(layout, crops, logits, number, columns) for made-up photos of numbers written with `mnist`."""
    from PIL import Image

    from digitlab.data.images import to_mnist
    from digitlab.segment import segment
    from digitlab.synth import number_photo

    out = []
    for length in lengths:
        for k in range(per_length):
            info: dict = {}
            photo, number = number_photo(mnist, np.random.default_rng([seed, length, k]), length, info=info)
            layout = segment(Image.open(io.BytesIO(photo)))
            if layout.candidates:
                crops = np.stack([to_mnist(layout.crop(layout.piece(i, j))) for i, j in layout.candidates])
                logits = engine.logits(torch.from_numpy(crops)).float().numpy()
                out.append((layout, crops, logits, number, info["columns"]))
    return out


def is_digit(layout: Layout, columns: list[tuple[int, int]]) -> np.ndarray:
    """Whether each candidate covers one true digit's columns (overlap / union >= 0.7)."""
    found = []
    for i, j in layout.candidates:
        x0, _, x1, _ = layout.input_box(layout.piece(i, j))
        found.append(max((min(x1, b) - max(x0, a)) / (max(x1, b) - min(x0, a)) for a, b in columns) >= 0.7)
    return np.asarray(found, np.float32)


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
            loss = F.binary_cross_entropy_with_logits(checker(crops[at], table[at]), truth[at])
            opt.zero_grad()
            loss.backward()
            opt.step()
        print(f"checker epoch {epoch + 1}/{epochs}: loss {loss.item():.3f}", file=sys.stderr)
    return checker.eval()


def exact(examples: list[tuple], temperature: float, checker: tuple[Checker, float, float]) -> float:
    """Fraction of the examples whose best chain reads the true number."""
    scores = chain_scores([e[0] for e in examples], np.concatenate([e[1] for e in examples]),
                          np.concatenate([e[2] for e in examples]), temperature, checker)
    right = sum("".join(str(int(e[2][k].argmax())) for k in best_chain(e[0], s)) == e[3]
                for e, s in zip(examples, scores, strict=True))
    return right / max(len(examples), 1)


def main(argv: list[str] | None = None) -> int:
    from digitlab.data.idx import load_idx_split
    from digitlab.engine import load_engine
    from digitlab.fileio import atomic_write_text

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
    choosing = photos(engine, train, args.seed + 1, max(10, args.per_length // 8), range(1, 7))
    print(f"{len(fitting)} photos to train on, {len(choosing)} to choose alpha and beta on", file=sys.stderr)
    checker = train_checker(fitting, t, args.epochs, args.seed)
    hand = exact(choosing, t, (checker, 0.0, 0.0))
    grid = {(a, b): exact(choosing, t, (checker, a, b)) for a in (0.1, 0.2, 0.3, 0.5, 1.0) for b in (0.0, 0.2)}
    (alpha, beta), best = max(grid.items(), key=lambda kv: (kv[1], -kv[0][0]))
    print(f"exact numbers on the {len(choosing)} choosing photos: hand-set costs alone {hand:.1%}, "
          f"with the checker (alpha {alpha}, beta {beta}) {best:.1%}", file=sys.stderr)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".safetensors.tmp")
    save_file({k: v.contiguous() for k, v in checker.state_dict().items()}, str(tmp))
    tmp.replace(out.with_suffix(".safetensors"))
    record = {"command": f"python -m digitlab.chain --model {args.model} --seed {args.seed} "
                         f"--per-length {args.per_length} --epochs {args.epochs}",
              "model": args.model, "seed": args.seed, "trained_on_photos": len(fitting),
              "choosing_photos": len(choosing), "exact_hand_set": round(hand, 4), "exact_with_checker": round(best, 4),
              "alpha": alpha, "beta": beta, "seconds": round(time.perf_counter() - start, 1),
              "features": list(FEATURES)}
    atomic_write_text(out.with_suffix(".json"), json.dumps(record, indent=2) + "\n")
    print(f"wrote {out}.safetensors and {out}.json", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
