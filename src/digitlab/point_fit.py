"""Fit `digitlab.point`'s check: which small pieces of ink between two digits are a decimal point or a comma.

    python -m digitlab.point_fit             # make weights-point: src/digitlab/weights/point.{safetensors,json}

The candidates of 15,000 made-up photos (`digitlab.synth`) written with the strong model's 2,000 held-out training
digits: a sixth with a point, a sixth with a comma, two thirds with no mark, of which a third hold a digit shrunk to
half its size and a third have broken strokes (the hard negatives: no comma though as small, no point though an end
of a stroke lies where one would). A fifth of the photos is kept out of training; the threshold is chosen on them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from digitlab.point import MARKS, PointCheck, PointNet, candidates, features
from digitlab.segment import Layout, Piece


def mark_of(photo: int | np.ndarray) -> int | np.ndarray:
    """Which mark (an index into MARKS) the fitting photo `photo` is written with: two thirds none, so the check
    sees many broken strokes' ends, a sixth a point, a sixth a comma."""
    return np.maximum(np.asarray(photo) % 6 - 3, 0)


def examples(seed: int, photos: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every candidate in `photos` made-up photos (written with `mark_of` the photo's mark; 2-6 digits of the
    strong model's held-out training digits): windows, measurements, labels (an index into MARKS) and which photo
    each came from."""
    from digitlab.engine import load_engine
    from digitlab.line import training_digits
    from digitlab.read import found as find
    from digitlab.synth import number_photo

    engine, mnist = load_engine("strong"), training_digits(held_out=True)
    mixed = with_small_digits(mnist, np.random.default_rng([seed, 1]))
    windows, scalars, labels, source = [], [], [], []
    for start in range(0, photos, 20):
        made, infos = [], []
        for k in range(start, min(photos, start + 20)):
            g = np.random.default_rng([seed, k])
            # Of the photos without a mark, a third may hold a small digit (no comma, though as small) and a third
            # has broken strokes (their ends lie where a point would): the check's hard negatives.
            plain, third = mark_of(k) == 0, k // 6 % 3
            digits = mixed if plain and third == 0 else mnist
            for _ in range(100):
                info = {}
                photo = number_photo(digits, g, int(g.integers(2, 7)), mark=MARKS[mark_of(k)], info=info)[0]
                if not (plain and third == 1) or info["broken"]:
                    break
            made.append(photo)
            infos.append(info)
        for k, f, info in zip(range(start, start + len(made)), find(engine, made), infos, strict=True):
            if len(f.chain) < 2:
                continue
            layout = f.layout
            pieces = [layout.piece(*layout.candidates[j]) for j in f.chain]
            found = candidates(layout, pieces)
            if not found:
                continue
            w, s = features(layout, pieces, found)
            windows.append(w)
            scalars.append(s)
            for c in found:
                labels.append(int(mark_of(k)) if "mark_box" in info and _inside(layout, c.piece, info["mark_box"])
                              else 0)
                source.append(k)
        print(f"\r{min(photos, start + 20)} photos, {len(labels)} candidates", end="", file=sys.stderr)
    print(file=sys.stderr)
    return (np.concatenate(windows), np.concatenate(scalars), np.asarray(labels, np.int64),
            np.asarray(source, np.int64))


def with_small_digits(mnist: tuple[np.ndarray, np.ndarray], g: np.random.Generator, n: int = 300
                      ) -> tuple[np.ndarray, np.ndarray]:
    """`mnist` and `n` more of its digits shrunk to 0.4-0.65 of their size in their box (strokes as wide as
    before), between its middle and its foot: a digit written smaller than its neighbours."""
    images, labels = mnist
    picks = g.choice(len(images), n, replace=False)
    small = np.zeros((n, 28, 28), np.uint8)
    for i, k in enumerate(picks):
        f = g.uniform(0.4, 0.65)
        digit = ndimage.grey_dilation(ndimage.zoom(images[k].astype(np.float32), f, order=1), size=(2, 2))
        h, w = digit.shape
        y = int(round((28 - h) / 2 + g.uniform(0, 1) * (24 - h - (28 - h) / 2)))
        x = (28 - w) // 2
        small[i, y : y + h, x : x + w] = np.clip(digit, 0, 255).astype(np.uint8)
    return np.concatenate([images, small]), np.concatenate([labels, labels[picks]])


def _inside(layout: Layout, piece: Piece, box: list[int] | tuple[int, int, int, int]) -> bool:
    """Whether most of the piece's ink lies within `box` (input pixels, a pixel of slack)."""
    ys, xs = np.nonzero(piece.mask)
    # Each ink pixel's place in the input picture.
    px = (xs + piece.box[0] + layout.origin[0] + 0.5) / layout.scale
    py = (ys + piece.box[1] + layout.origin[1] + 0.5) / layout.scale
    inside = (px >= box[0] - 1) & (px <= box[2] + 1) & (py >= box[1] - 1) & (py <= box[3] + 1)
    return bool(inside.mean() >= 0.5)


def train(windows: np.ndarray, scalars: np.ndarray, labels: np.ndarray, epochs: int, seed: int) -> PointNet:
    torch.manual_seed(seed)
    net = PointNet()
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    w, s, y = torch.from_numpy(windows), torch.from_numpy(scalars), torch.from_numpy(labels)
    g = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        net.train()
        order = torch.randperm(len(y), generator=g)
        total = 0.0
        for at in range(0, len(y), 128):
            b = order[at : at + 128]
            loss = F.cross_entropy(net(w[b], s[b]), y[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(b)
        print(f"epoch {epoch + 1}: loss {total / len(y):.4f}", file=sys.stderr)
    net.eval()
    return net


def main(argv: list[str] | None = None) -> int:
    from digitlab.fileio import atomic_save_weights, atomic_write_text

    parser = argparse.ArgumentParser(prog="python -m digitlab.point_fit", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="src/digitlab/weights/point")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--photos", type=int, default=15000, help="made-up photos to take candidates from")
    parser.add_argument("--epochs", type=int, default=12)
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    began = time.perf_counter()
    windows, scalars, labels, source = examples(args.seed, args.photos)
    # A fifth of the photos is kept out of training: the threshold is chosen on their candidates.
    kept = source % 5 == 4
    net = train(windows[~kept], scalars[~kept], labels[~kept], args.epochs, args.seed)
    p = PointCheck(net, 1.0).probabilities(windows[kept], scalars[kept])
    plain = sum(1 for k in range(args.photos) if k % 5 == 4 and mark_of(k) == 0)
    threshold, report = choose(p, labels[kept], source[kept], plain)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_save_weights(out.with_suffix(".safetensors"), net)
    record = {"command": f"python -m digitlab.point_fit --seed {args.seed} --photos {args.photos} "
                         f"--epochs {args.epochs}",
              "reproduce": "make weights-point", "seed": args.seed, "threshold": threshold,
              "candidates": {"training": int((~kept).sum()), "kept out": int(kept.sum()),
                             "marks": {m or "none": int((labels == i).sum()) for i, m in enumerate(MARKS)}},
              "kept_out": report, "training_seconds": round(time.perf_counter() - began, 1)}
    atomic_write_text(out.with_suffix(".json"), json.dumps(record, indent=2) + "\n")
    print(json.dumps(report), file=sys.stderr)
    return 0


FALSE = 0.0005  # the threshold keeps false marks to at most this share of the kept-out photos without a mark


def choose(p: np.ndarray, labels: np.ndarray, source: np.ndarray, plain_photos: int) -> tuple[float, dict]:
    """The lowest threshold at which at most FALSE of the `plain_photos` kept-out photos without a mark get a
    false mark (none at all while FALSE * plain_photos < 1), and what it reads there. `p`, `labels`, `source`:
    the kept-out candidates' probabilities, labels and photos."""
    mark = p[:, 1:].sum(1)  # as find_marks sums them (PointCheck.probabilities: float64)
    plain = mark_of(source) == 0
    allowed = int(FALSE * plain_photos)
    # Per photo without a mark, its likeliest candidate: that photo gets a false mark at any threshold below it.
    worst = sorted((float(mark[source == s].max()) for s in set(source[plain])), reverse=True)
    threshold = min(0.99, float(np.nextafter(worst[allowed], 1)) if len(worst) > allowed else 0.5)
    threshold = max(threshold, 0.5)
    hit = mark >= threshold
    kinds = 1 + np.argmax(p[:, 1:], 1)
    report = {"threshold": round(threshold, 4), "photos without a mark": plain_photos,
              "their false marks": len(set(source[plain & hit]))}
    for i, name in ((1, "point"), (2, "comma")):
        theirs = mark_of(source) == i
        right = {s for s in set(source[theirs]) if np.any(hit & (labels == i) & (kinds == i) & (source == s))}
        n = len(set(source[theirs]))
        report[f"{name}s found (of the photos with a {name} and a candidate)"] = f"{len(right)} of {n}"
    return threshold, report


if __name__ == "__main__":
    raise SystemExit(main())
