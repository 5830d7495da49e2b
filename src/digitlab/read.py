"""Read the number written in a picture: segment it into digits, classify them all in one batch.

    from digitlab.engine import load_engine
    from digitlab.read import read_picture
    reading = read_picture(load_engine("strong"), Image.open("house-number.jpg"))
    reading.number        # '2026' -- a string: leading zeros kept, a minus, a point or a comma as written ('-5',
                          # '3.14'); '' when nothing readable
    reading.minus         # the minus sign's box, or None: digitlab.sign
    reading.marks         # the points and commas: [Mark(mark='.', before=1, box=..., probability=...)]
    reading.reason        # None, or why the number is empty: 'blank', 'not a digit'
    reading.to_json()     # {'number', 'confidence', 'reason', 'digits': [{'box', 'label', ...}], 'minus', 'marks'}

Command line: `digitlab read photo.jpg scans/ [--json] [--output FILE] [--accept-all]`.

`digitlab.segment` cuts the ink into slices and lists the runs of slices that may each be a digit; every
candidate of every picture goes through the shared `to_mnist` and then the model together, in one
`engine.logits` call, and through digitlab.refuse's not-a-digit check. The digits are the chain of
candidates, covering all the ink left to right (specks may be left out), that scores best: how well the model
reads each, a small checker of "exactly one whole digit?", and the not-a-digit check (`digitlab.chain`).
A second reader that reads the whole line without cutting it (`digitlab.line`) may overrule that chain with
another one that spells its own reading, when `digitlab.combine`'s regression believes it.
Whether the chain is a number at all is `digitlab.verdict`'s call, one learned score over all its digits; decimal
points and commas between its digits (`digitlab.point`) and a minus before it (`digitlab.sign`) are looked for
last. A picture with no ink reads as "" ("blank"); one where a digit is not recognised reads as "" ("not a
digit"); `accept_all=True` turns refusing off.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from PIL import Image

from digitlab.chain import best_chain, chain_scores
from digitlab.combine import Combiner, second_opinion
from digitlab.combine import shipped as shipped_combiner
from digitlab.data.images import open_image, to_mnist
from digitlab.engine import Engine
from digitlab.line import LineReader
from digitlab.line import shipped as shipped_line
from digitlab.point import Mark, apply, find_marks, spelled
from digitlab.refuse import margins
from digitlab.segment import Layout, Piece, segment
from digitlab.sign import find_minus
from digitlab.verdict import judged, summary

# Below this top probability a digit is refused as not recognised: a second opinion beside digitlab.refuse's
# check, which lets through some non-digits the classifier is unsure of. Chosen on calibrated probabilities
# (engine.probabilities) and data neither model was tuned on: of the strong model's own 2,000 held-out
# validation digits 0.05% more are refused at 0.6 (0.10% of the same digits photographed), of
# digitlab.refuse_negatives' validation set 6%. Only for a digit alone: in a number of several digits
# digitlab.verdict weighs the weakest probability together with the line reader's opinion of the whole
# reading, and on development photos (synth seeds 7 and 8) this rule then refused 3 of 1,200 numbers read
# right (a 0.52 between two sure digits) and no non-digit the verdict let through.
UNSURE = 0.6
MIN_STROKES = 2.5  # a digit is at least this many stroke widths tall


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
    minus: tuple[int, int, int, int] | None = None  # the minus sign's box, when one is written (digitlab.sign)
    marks: list[Mark] = field(default_factory=list)  # decimal points and commas (digitlab.point)

    def to_json(self) -> dict:
        return {"number": self.number, "confidence": self.confidence, "reason": self.reason,
                "digits": [{**asdict(d), "box": list(d.box)} for d in self.digits],
                "minus": None if self.minus is None else list(self.minus),
                "marks": [m.to_json() for m in self.marks]}


def read_picture(engine: Engine, image: Image.Image | np.ndarray, *, accept_all: bool = False,
                 line: LineReader | str | None = "shipped") -> Reading:
    """The number in one picture."""
    return read_pictures(engine, [image], accept_all=accept_all, line=line)[0]


def read_pictures(engine: Engine, images: list, *, accept_all: bool = False,
                  line: LineReader | str | None = "shipped") -> list[Reading]:
    """The numbers in several pictures; all their digits go through the model as one batch. `line` is the
    second reader (digitlab.line): the shipped one, another, or None for the chain alone."""
    return [_reading(f, accept_all) for f in found(engine, images, line)]


@dataclass
class Found:
    """One picture's candidates, what was measured about each, and the best chain of them: what `read`
    decides from (digitlab.verdict is fitted on the same)."""

    layout: Layout
    chain: list[int]  # the best chain's candidates, left to right
    crops: np.ndarray  # uint8 (k, 28, 28): each candidate as the model read it
    probs: np.ndarray  # (k, 10) calibrated probabilities
    digitness: np.ndarray  # (k,) digitlab.refuse's margin: its logit less its threshold
    scores: np.ndarray  # (k,) each candidate's score in the chain
    skips: np.ndarray  # (slices,) each slice's score for being left out (-inf: never)
    labels: list[int] = field(default_factory=list)  # the digit each of the chain's candidates is read as
    line: tuple[float, bool] | None = None  # the line reader's log p of the reading, whether it reads otherwise
    whole: float | None = None  # a digit alone: the whole-picture check's margin (digitlab.refuse)

    @property
    def number(self) -> str:
        return "".join(str(d) for d in self.labels)

    @property
    def confidences(self) -> np.ndarray:
        """Each digit's calibrated probability of the label it is read as."""
        return self.probs[self.chain, self.labels] if self.chain else np.zeros(0)

    def summary(self) -> np.ndarray:
        """The chain's row of digitlab.verdict's SUMMARY: what `read` judges it by and the verdict is fitted on."""
        return summary(self.digitness[self.chain], self.scores[self.chain], self.confidences, self.line,
                       self.whole)


def found(engine: Engine, images: list, line: LineReader | str | None = "shipped",
          combiner: Combiner | None = None) -> list[Found]:
    """Segment the pictures, read every candidate of all of them in one batch, find each best chain, and ask
    the line reader (`line`; see read_pictures) for its second opinion, weighed by `combiner` (None: the
    shipped one, digitlab.combine)."""
    pictures = [open_image(p) if isinstance(p, (str, bytes)) or hasattr(p, "__fspath__") else p for p in images]
    layouts = [segment(p) for p in pictures]
    crops: list[np.ndarray] = []
    for picture, layout in zip(pictures, layouts, strict=True):
        # A 28x28 picture is read exactly as `predict` reads it.
        whole = _size(picture) == (28, 28)
        crops += [to_mnist(picture) if whole else to_mnist(layout.crop(layout.piece(i, j)), look_for_field=False)
                  for i, j in layout.candidates]
    batch = np.stack(crops) if crops else np.zeros((0, 28, 28), dtype=np.uint8)
    logits = engine.logits(torch.from_numpy(batch)).float().numpy() if crops else np.zeros((0, 10), np.float32)
    # Calibrated, as every probability shown. In numpy: a torch op right after ONNX Runtime's call wakes
    # torch's thread pool against it (7 ms for a softmax; see engine.one_torch_thread).
    scaled = logits / engine.temperature
    probs = np.exp(scaled - scaled.max(1, keepdims=True)) if len(scaled) else scaled
    probs /= np.maximum(probs.sum(1, keepdims=True), 1e-30)
    # The not-a-digit check scores every candidate, even with accept_all: it also helps choose the chain.
    digitness = margins(batch, pieces=True)
    out, start = [], 0
    for layout, score in zip(layouts, chain_scores(layouts, batch, logits, engine.temperature, digitness),
                             strict=True):
        at = slice(start, start + len(layout.candidates))
        chain = best_chain(layout, score) if layout.candidates else []
        out.append(Found(layout, chain, batch[at], probs[at], digitness[at], score.runs, score.skips,
                         [int(probs[at][k].argmax()) for k in chain]))
        start += len(layout.candidates)
    reader = shipped_line() if line == "shipped" else line
    # A 28x28 picture is one digit as `predict` reads it: nothing for a line reader to add.
    asked = [f for f, p in zip(out, pictures, strict=True) if f.chain and _size(p) != (28, 28)]
    if reader is not None and asked:
        combiner = combiner or shipped_combiner()
        texts, columns = reader([f.layout for f in asked])
        for f, text, c in zip(asked, texts, columns, strict=True):
            f.chain, f.labels, logp, differs = second_opinion(f, text, c, combiner)
            f.line = (logp, differs)
    # A digit alone is also judged as a whole picture (digitlab.verdict), all of them in one call.
    alone = [f for f in out if len(f.chain) == 1]
    if alone:
        for f, m in zip(alone, margins(np.stack([f.crops[f.chain[0]] for f in alone])), strict=True):
            f.whole = float(m)
    return out


def _size(picture: Image.Image | np.ndarray) -> tuple[int, int]:
    return picture.shape[:2] if isinstance(picture, np.ndarray) else (picture.height, picture.width)


def _reading(f: Found, accept_all: bool, fitted: tuple[np.ndarray, np.ndarray] | None = None) -> Reading:
    """The reading `read` shows for what `found` found. `fitted`: the verdict's weights and thresholds (None:
    the shipped ones; digitlab.verdict.operating_points gives others)."""
    layout, chain = f.layout, f.chain
    if not layout.candidates:
        return Reading("", 0.0, [], "blank")
    if not chain:  # every slice left out as a speck: ink, but nothing a digit could be made of
        return Reading("", 0.0, [], None if accept_all else "not a digit")
    verdict = judged(f.summary(), fitted)
    pieces = [layout.piece(*layout.candidates[k]) for k in chain]
    digits = [_digit(layout, piece, f.crops[k], f.probs[k], label, None if verdict.number else "not a digit",
                     accept_all, alone=len(chain) == 1)
              for piece, k, label in zip(pieces, chain, f.labels, strict=True)]
    reasons = [d.reason for d in digits if d.reason]
    if reasons and not accept_all:
        return Reading("", 0.0, digits, "blank" if all(r == "blank" for r in reasons) else "not a digit")
    digits, marks = apply(digits, find_marks(layout, pieces))
    confidence = float(np.prod([d.confidence for d in digits]) * np.prod([m.probability for m in marks]))
    minus = find_minus(layout, pieces)
    number = spelled("".join(str(d.label) for d in digits), marks)
    return Reading(number if minus is None else "-" + number, confidence, digits, None, minus, marks)


def _digit(layout: Layout, piece: Piece, crop: np.ndarray, p: np.ndarray, label: int, checked: str | None,
           accept_all: bool, alone: bool = True) -> Digit:
    reason = None if accept_all else _refusal(crop, alone and p.max() < UNSURE, piece.height / layout.stroke,
                                              checked)
    return Digit(layout.input_box(piece), None if reason else label, float(p[label]),
                 [round(float(v), 6) for v in p], reason)


def _refusal(crop: np.ndarray, unsure: bool, strokes_tall: float, checked: str | None) -> str | None:
    """Why this crop is not read as a digit, or None.

    The rules that need no model first (no ink; too flat; `unsure`: a digit alone whose top probability is
    under UNSURE, the top one, not that of the label, which the line reader may have chosen from the
    runner-ups), then `checked`:
    digitlab.verdict's answer for the whole reading, the same for each of its digits. Letters, symbols,
    scribbles and drawings get high probabilities for some digit, so the classifier's own confidence cannot
    tell them apart.
    """
    if not crop.any():
        return "blank"
    # Scaled to 20 px, a dash or a dot becomes a fat blob that any classifier calls 0 or 8; a digit is
    # several strokes tall (MNIST's ~7), a dash about one.
    if strokes_tall < MIN_STROKES or unsure:
        return "not a digit"
    return checked
