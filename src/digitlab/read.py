"""Read the number written in a picture: segment it into digits, classify them all in one batch.

    from digitlab.engine import load_engine
    from digitlab.read import read_picture
    reading = read_picture(load_engine("strong"), Image.open("house-number.jpg"))
    reading.number        # '2026' -- a string: leading zeros kept; '' when nothing readable
    reading.reason        # None, or why the number is empty: 'blank', 'not a digit'
    reading.to_json()     # {'number', 'confidence', 'reason', 'digits': [{'box', 'label', ...}]}

Command line: `digitlab read photo.jpg scans/ [--json] [--output FILE] [--accept-all]`.

`digitlab.segment` cuts the ink into slices and lists the runs of slices that may each be a digit; every
candidate of every picture goes through the shared `to_mnist` and then the model together, in one
`engine.logits` call. The digits are the chain of candidates, covering all the ink left to right, that
the model recognises best (`_best_chain`). A picture with no ink reads as "" ("blank"); one where a digit
is not recognised reads as "" ("not a digit"); `accept_all=True` turns refusing off.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from PIL import Image

from digitlab.data.images import open_image, to_mnist
from digitlab.engine import Engine
from digitlab.refuse import refusals
from digitlab.segment import Layout, Piece, segment

# Below this top probability a digit is refused as not recognised: a second opinion beside digitlab.refuse's
# check, which lets through some non-digits the classifier is unsure of. Chosen on calibrated probabilities
# (engine.probabilities) and data neither model was tuned on: of the strong model's own 2,000 held-out
# validation digits 0.05% more are refused at 0.6 (0.10% of the same digits photographed), of
# digitlab.refuse_negatives' validation set 6%. (`read_pictures` here passes the raw softmax, which is less
# sure than the calibrated one: 0.74% of MNIST test digits refused instead of 0.38%.)
UNSURE = 0.6
MIN_STROKES = 2.5  # a digit is at least this many stroke widths tall
DIGIT_COST = 0.9  # each digit costs this fraction of the picture's best top logit (see _best_chain)
CUT_COST = 0.2  # and a cut through ink (touching digits) this fraction more


@dataclass
class Digit:
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 in the input picture's pixels
    label: int | None
    confidence: float
    probabilities: list[float]
    reason: str | None = None


@dataclass
class Reading:
    number: str
    confidence: float
    digits: list[Digit] = field(default_factory=list)
    reason: str | None = None

    def to_json(self) -> dict:
        return {"number": self.number, "confidence": self.confidence, "reason": self.reason,
                "digits": [{**asdict(d), "box": list(d.box)} for d in self.digits]}


def read_picture(engine: Engine, image: Image.Image | np.ndarray, *, accept_all: bool = False) -> Reading:
    """The number in one picture."""
    return read_pictures(engine, [image], accept_all=accept_all)[0]


def read_pictures(engine: Engine, images: list, *, accept_all: bool = False) -> list[Reading]:
    """The numbers in several pictures; all their digits go through the model as one batch."""
    pictures = [open_image(p) if isinstance(p, (str, bytes)) or hasattr(p, "__fspath__") else p for p in images]
    layouts = [segment(p) for p in pictures]
    crops: list[np.ndarray] = []
    for picture, layout in zip(pictures, layouts, strict=True):
        # A 28x28 picture is read exactly as `predict` reads it.
        whole = _size(picture) == (28, 28)
        crops += [to_mnist(picture) if whole else to_mnist(layout.crop(layout.piece(i, j)))
                  for i, j in layout.candidates]
    batch = np.stack(crops) if crops else np.zeros((0, 28, 28), dtype=np.uint8)
    logits = engine.logits(torch.from_numpy(batch)).float() if crops else torch.zeros(0, 10)
    probs = logits.softmax(1).numpy()
    top = logits.max(1).values.numpy()
    readings, start = [], 0
    for layout in layouts:
        at = slice(start, start + len(layout.candidates))
        readings.append(_reading(layout, batch[at], probs[at], top[at], accept_all))
        start += len(layout.candidates)
    return readings


def _size(picture: Image.Image | np.ndarray) -> tuple[int, int]:
    return picture.shape[:2] if isinstance(picture, np.ndarray) else (picture.height, picture.width)


def _reading(layout: Layout, crops: np.ndarray, probs: np.ndarray, top: np.ndarray, accept_all: bool
             ) -> Reading:
    if not layout.candidates:
        return Reading("", 0.0, [], "blank")
    chain = _best_chain(layout, top)
    digits = [_digit(layout, layout.piece(*layout.candidates[k]), crops[k], probs[k], accept_all) for k in chain]
    reasons = [d.reason for d in digits if d.reason]
    if reasons and not accept_all:
        return Reading("", 0.0, digits, "blank" if all(r == "blank" for r in reasons) else "not a digit")
    confidence = float(np.prod([d.confidence for d in digits]))
    return Reading("".join(str(d.label) for d in digits), confidence, digits, None)


def _best_chain(layout: Layout, top: np.ndarray) -> list[int]:
    """The candidates that cover every slice once, left to right, that the model recognises best.

    A candidate scores its top logit less DIGIT_COST times the best top logit in the picture: a clean
    digit scores well above zero, a half digit or two digits squeezed into one crop score near or below
    it (softmax probabilities cannot tell these apart: a label-smoothed model gives ~0.9 to all of them).
    Relative to the picture's best, so that models with larger or smaller logits are judged alike.
    """
    n = len(layout.slices)
    cost = DIGIT_COST * max(float(top.max()), 1e-3)
    best = [0.0] + [-math.inf] * n
    back: list[int] = [-1] * (n + 1)
    for k, (i, j) in enumerate(layout.candidates):  # ordered by i, so best[i] is final when reached
        piece = layout.piece(i, j)
        ratio = piece.width / max(piece.height, 1)
        # Too wide for one digit, or a fragment much shorter than the digits beside it: unlikely.
        shortness = max(0.0, 0.65 - layout.height_ratio(i, j))
        score = best[i] + float(top[k]) - cost - cost * max(0.0, ratio - 1.2) - 4 * cost * shortness
        if layout.cuts_ink(i):  # a cut through ink needs the pieces to read clearly better than the whole
            score -= CUT_COST * cost
        if score > best[j]:
            best[j], back[j] = score, k
    chain, at = [], n
    while at > 0:
        k = back[at]
        chain.append(k)
        at = layout.candidates[k][0]
    return chain[::-1]


def _digit(layout: Layout, piece: Piece, crop: np.ndarray, p: np.ndarray, accept_all: bool) -> Digit:
    label = int(p.argmax())
    reason = None if accept_all else _refusal(crop, p, piece.height / layout.stroke)
    return Digit(layout.input_box(piece), None if reason else label, float(p.max()),
                 [round(float(v), 6) for v in p], reason)


def _refusal(crop: np.ndarray, p: np.ndarray, strokes_tall: float) -> str | None:
    """Why this crop is not read as a digit, or None.

    The rules that need no model first (no ink; too flat), then digitlab.refuse's check, which judges the
    same 28x28 crop the classifier read: letters, symbols, scribbles and drawings get high probabilities
    for some digit, so the classifier's own confidence cannot tell them apart.
    """
    if not crop.any():
        return "blank"
    # Scaled to 20 px, a dash or a dot becomes a fat blob that any classifier calls 0 or 8; a digit is
    # several strokes tall (MNIST's ~7), a dash about one.
    if strokes_tall < MIN_STROKES or p.max() < UNSURE:
        return "not a digit"
    return refusals(crop[None])[0]
