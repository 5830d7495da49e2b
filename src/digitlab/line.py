"""A second reader that looks at the whole line of ink at once: a small CTC line recogniser.

    python -m digitlab.line           # refit the shipped reader (make weights-line, ~30 min on 2 cores)

`digitlab.read` cuts a number into runs of slices and reads each run as one digit; where the cut is wrong
(a 6 cut into `10`, two touching 1s read as a 4) every run can look like a fine digit. `LineNet` reads the
same ink without cutting it: four conv blocks turn a 32-px-tall strip into columns, a bidirectional GRU reads
the columns left to right and back, and each column says which digit (or none, CTC's blank) it sees. It does
not replace the chain, it gives it a second opinion: where its own greedy reading differs from the chain's,
`digitlab.combine` decides which to believe.

It is trained on made-up photos of numbers (`digitlab.synth`) written with MNIST's training digits, less the
2,000 the strong model held out, which digitlab.combine and digitlab.verdict are fitted on instead. The
benchmark's photos are written with MNIST's test digits and stay unseen.
"""

from __future__ import annotations

import argparse
import functools
import io
import json
import multiprocessing
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load_file
from scipy import ndimage
from torch import nn

from digitlab.engine import one_torch_thread
from digitlab.fileio import atomic_save_weights, atomic_write_text
from digitlab.segment import Layout

HEIGHT = 32  # the strip's height; each of the net's columns is 4 px of it wide
MIN_WIDTH, MAX_WIDTH = 16, 400
BLANK = 10


class LineNet(nn.Module):
    """32-px strip -> per 4-px column, log-probabilities of the ten digits and the blank (index 10)."""

    def __init__(self) -> None:
        super().__init__()
        blocks, channels = [], 1
        for out, pool in ((16, (2, 2)), (32, (2, 2)), (48, (2, 1)), (64, (2, 1))):
            blocks += [nn.Conv2d(channels, out, 3, padding=1), nn.BatchNorm2d(out), nn.ReLU(), nn.MaxPool2d(pool)]
            channels = out
        self.conv = nn.Sequential(*blocks)
        self.rnn = nn.GRU(64 * 2, 96, batch_first=True, bidirectional=True)
        self.out = nn.Linear(192, 11)

    def forward(self, strips: torch.Tensor) -> torch.Tensor:
        """(B, 32, W) uint8 -> (B, W // 4, 11) log-probabilities."""
        x = self.conv(strips.float().div(255).unsqueeze(1))
        x = x.flatten(1, 2).transpose(1, 2)
        return F.log_softmax(self.out(self.rnn(x)[0]), -1)


def line_image(layout: Layout) -> np.ndarray:
    """The layout's ink as one uint8 strip, HEIGHT tall: only the slices' own ink (not the paper's marks that
    segment left out), scaled so the tallest ink fills the strip less a margin."""
    H, W = layout.ink.shape
    mask = np.zeros((H, W), bool)
    for s in layout.slices:
        x0, y0, x1, y1 = s.box
        mask[y0:y1, x0:x1] |= s.mask
    if not mask.any():
        return np.zeros((HEIGHT, MIN_WIDTH), np.uint8)
    # The slices' masks are thresholded ink; a strip dilated a little keeps the stroke's soft edge.
    mask = ndimage.binary_dilation(mask, iterations=2)
    ys, xs = np.nonzero(mask)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    ink = np.where(mask, layout.ink, 0)[y0:y1, x0:x1]
    ink = ink / max(float(ink.max()), 1e-3)
    pad = max(1, round(0.12 * (y1 - y0)))
    ink = np.pad(ink, pad)
    scale = HEIGHT / ink.shape[0]
    width = int(np.clip(round(ink.shape[1] * scale), MIN_WIDTH, MAX_WIDTH))
    strip = Image.fromarray((ink * 255).astype(np.uint8)).resize((width, HEIGHT), Image.Resampling.BILINEAR)
    return np.asarray(strip, np.uint8)


def batch(strips: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Strips padded with black to the widest: (B, 32, W) uint8, and each one's number of columns."""
    width = max(s.shape[1] for s in strips)
    out = torch.zeros(len(strips), HEIGHT, width, dtype=torch.uint8)
    for k, s in enumerate(strips):
        out[k, :, :s.shape[1]] = torch.tensor(s)
    return out, torch.tensor([s.shape[1] // 4 for s in strips])


def greedy(columns: np.ndarray) -> str:
    """CTC best path: each column's top symbol, repeats merged, blanks dropped."""
    best = columns.argmax(1)
    return "".join(str(int(c)) for k, c in enumerate(best) if c != BLANK and (k == 0 or c != best[k - 1]))


def log_likelihood(columns: list[np.ndarray], texts: list[str]) -> np.ndarray:
    """log p(text | strip) under CTC, per (strip's columns, text) pair; -inf where the text cannot fit."""
    out = np.full(len(texts), -np.inf)
    for k, (c, text) in enumerate(zip(columns, texts, strict=True)):
        if not text.isdigit() and text != "":
            raise ValueError(f"a reading is digits only, got {text!r}")
        with one_torch_thread():
            loss = F.ctc_loss(torch.from_numpy(c).unsqueeze(1), torch.tensor([[int(d) for d in text]] if text else [[]],
                              dtype=torch.long), torch.tensor([len(c)]), torch.tensor([len(text)]),
                              blank=BLANK, reduction="sum")
        out[k] = -float(loss)
    return out


class LineReader:
    """Reads layouts' strips: (greedy texts, per strip its columns' log-probabilities)."""

    def __init__(self, net: LineNet) -> None:
        self.net = net.eval()

    def __call__(self, layouts: list[Layout]) -> tuple[list[str], list[np.ndarray]]:
        # One strip at a time: padded to a batch's widest, a strip's last columns would see the padding through
        # the convolutions and the backward GRU, and a picture would read differently beside wider ones.
        columns = []
        with one_torch_thread(), torch.inference_mode():
            for layout in layouts:
                strip = line_image(layout)
                columns.append(self.net(torch.tensor(strip)[None]).numpy()[0, : strip.shape[1] // 4])
        return [greedy(c) for c in columns], columns


@functools.cache
def shipped() -> LineReader | None:
    """The shipped reader (digitlab/weights/line.safetensors), or None without one."""
    from digitlab.models import shipped_weights

    weights = shipped_weights("line")
    if not weights.is_file():
        return None
    net = LineNet()
    net.load_state_dict(load_file(str(weights)))
    return LineReader(net)


# ------------------------------------------------------------------------------------------ fitting


def strong_split(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of MNIST's n training digits the strong model trained on, and of the 2,000 it held out."""
    from digitlab.data import split_validation

    train, held = split_validation(n, 2000, 0)  # strong.json: val_size 2000, seed 0
    return train.numpy(), held.numpy()


def training_digits(held_out: bool) -> tuple[np.ndarray, np.ndarray]:
    """MNIST's training digits less the strong model's 2,000 held-out ones, or (held_out) only those: what
    the line reader trains on, and what digitlab.combine and digitlab.verdict are fitted on."""
    from digitlab.data.idx import load_idx_split

    images, labels = (t.numpy() for t in load_idx_split("data/mnist", "train"))
    train, held = strong_split(len(images))
    at = held if held_out else train
    return images[at], labels[at]


_MNIST: tuple[np.ndarray, np.ndarray] | None = None
_HANDS: list[tuple[np.ndarray, np.ndarray]] | None = None


def _strips_of(job: tuple[int, int, int, int, bool]) -> list[tuple[np.ndarray, str]]:
    global _MNIST, _HANDS
    from digitlab.segment import segment
    from digitlab.synth import number_photo

    seed, length, start, stop, other_hands = job
    if other_hands and _HANDS is None:
        from digitlab.data import hands

        _HANDS = hands.pools("train", 8, seed=seed)
    if not other_hands and _MNIST is None:
        _MNIST = training_digits(held_out=False)
    out = []
    for k in range(start, stop):
        if other_hands:  # one training font per number
            g = np.random.default_rng([2000 + seed, length, k])
            photo, number = number_photo(_HANDS[int(g.integers(len(_HANDS)))], g, length)
        else:
            photo, number = number_photo(_MNIST, np.random.default_rng([1000 + seed, length, k]), length)
        out.append((line_image(segment(Image.open(io.BytesIO(photo)))), number))
    return out


def strips(seed: int, per_length: int, lengths: range = range(1, 9), hands: int = 0
           ) -> list[tuple[np.ndarray, str]]:
    """(strip, number) of made-up photos, generated on two processes: `per_length` per length written with
    MNIST's digits, then `hands` per length written with the training fonts' (digitlab.data.hands)."""
    jobs = [(seed, n, a, min(a + 250, count), other)
            for count, other in ((per_length, False), (hands, True))
            for n in lengths for a in range(0, count, 250)]
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        return [s for part in pool.imap(_strips_of, jobs) for s in part]


def _jitter(strip: np.ndarray, g: np.random.Generator) -> np.ndarray:
    width = int(np.clip(round(strip.shape[1] * g.uniform(0.8, 1.2)), MIN_WIDTH, MAX_WIDTH))
    return np.asarray(Image.fromarray(strip).resize((width, HEIGHT), Image.Resampling.BILINEAR))


def train(examples: list[tuple[np.ndarray, str]], epochs: int, seed: int, batch_size: int = 64) -> LineNet:
    """CTC training; batches of strips of similar width, each strip stretched or squeezed by up to 20%."""
    torch.manual_seed(seed)
    g = np.random.default_rng(seed)
    net = LineNet()
    order = np.argsort([s.shape[1] for s, _ in examples], kind="stable")
    groups = [order[a:a + batch_size] for a in range(0, len(order), batch_size)]
    opt = torch.optim.AdamW(net.parameters(), 2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 2e-3, total_steps=epochs * len(groups))
    for epoch in range(epochs):
        net.train()
        total = 0.0
        for n in g.permutation(len(groups)):
            picked = [examples[k] for k in groups[n]]
            x, lengths = batch([_jitter(s, g) for s, _ in picked])
            texts = [t for _, t in picked]
            targets = torch.tensor([int(d) for t in texts for d in t])
            logp = net(x).transpose(0, 1)
            loss = F.ctc_loss(logp, targets, lengths, torch.tensor([len(t) for t in texts]), blank=BLANK,
                              zero_infinity=True)
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(net.parameters(), 5.0)
            opt.step()
            sched.step()
            total += loss.item()
        print(f"line epoch {epoch + 1}/{epochs}: CTC loss {total / len(groups):.3f}", file=sys.stderr)
    return net.eval()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m digitlab.line", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="src/digitlab/weights/line")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--per-length", type=int, default=6000, help="photos per number length (1-8) to train on")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--hands", type=int, default=0,
                        help="photos per length written with the handwriting fonts' digits, added to those")
    args = parser.parse_args(argv)
    began = time.perf_counter()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    examples = strips(args.seed, args.per_length, hands=args.hands)
    print(f"{len(examples)} strips in {time.perf_counter() - began:.0f} s", file=sys.stderr)
    net = train(examples, args.epochs, args.seed)
    atomic_save_weights(out.with_suffix(".safetensors"), net)
    record = {"command": f"python -m digitlab.line --seed {args.seed} --per-length {args.per_length} "
                         f"--epochs {args.epochs}" + (f" --hands {args.hands}" if args.hands else ""),
              "reproduce": "make weights-line", "seed": args.seed, "strips": len(examples),
              "training_seconds": round(time.perf_counter() - began, 1)}
    atomic_write_text(out.with_suffix(".json"), json.dumps(record, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
