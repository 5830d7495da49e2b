"""A number's minus sign: "-5", not "5".

    from digitlab.sign import find_minus
    box = find_minus(layout, pieces)   # the minus before the digits `read` found (input pixels), or None

Stop 50: "-5" was read as "5" at 0.999, the minus left out of the chain as a dash: the digits were read right and
the number was still wrong, silently. The minus is looked for after the digits are read, in the ink none of them
covers: a short, flat bar (at least a quarter of the digits' height long, twice as long as it is thick, a few
strokes thick at most) at the first digit's mid-height, ending within a digit's height before it. Paper grain is
fainter than the pen and is no mark. The digits, their probabilities and whether the number is refused do not
change. A decimal point or comma is not read (stop 50, development: the end of a broken stroke beside its digit is
as round, as small and as near the baseline as a pen's point; reading points put one into 1.3% of numbers that
had none); their digits are read as before.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from digitlab.segment import Layout, Piece

BAR = 0.25  # a minus is at least this share of the digits' height long, and twice as long as it is thick
THICK = 3.0  # ... and at most this many strokes thick
NEAR = 1.0  # ... and ends within this many digit heights before the first digit
INKED = 0.5  # a mark's ink is at least this share as strong as the digits' (grain is fainter than the pen)


def find_minus(layout: Layout, pieces: list[Piece]) -> tuple[int, int, int, int] | None:
    """The box (x0, y0, x1, y1, input pixels) of the minus before `pieces` (the digits read, left to right, in work
    pixels), among the ink they leave over; None if there is none."""
    if not pieces:
        return None
    stroke = max(layout.stroke, 1.0)
    bars = [layout.input_box(mark) for mark in marks_left(layout, pieces) if _minus(mark.box, pieces, stroke)]
    return bars[0] if len(bars) == 1 else None  # two bars before a number: no reading of them


def covered(layout: Layout, pieces: list[Piece]) -> np.ndarray:
    """The pixels of `layout.ink` that the digits `pieces` cover."""
    mask = np.zeros(layout.ink.shape, bool)
    for p in pieces:
        x0, y0, x1, y1 = p.box
        mask[y0:y1, x0:x1] |= p.mask
    return mask


def strength(layout: Layout, pieces: list[Piece]) -> float:
    """How strong the digits' ink is, on average: a mark written with the same pen is about as strong."""
    return float(np.mean([layout.ink[p.box[1] : p.box[3], p.box[0] : p.box[2]][p.mask].mean() for p in pieces]))


def marks_left(layout: Layout, pieces: list[Piece]) -> list[Piece]:
    """The pieces of ink the digits `pieces` leave over (not touching them), written as dark as the digits
    (`inked`): where a minus may be."""
    left = (layout.ink > 0) & ~ndimage.binary_dilation(covered(layout, pieces), iterations=1)
    labels, _ = ndimage.label(left, structure=np.ones((3, 3), bool))
    pen = strength(layout, pieces)
    out = []
    for index, (ys, xs) in enumerate(ndimage.find_objects(labels), start=1):
        piece = Piece((xs.start, ys.start, xs.stop, ys.stop), labels[ys, xs] == index)
        if inked(layout, piece, pen):
            out.append(piece)
    return out


def inked(layout: Layout, piece: Piece, pen: float) -> bool:
    """Whether the piece is written about as strongly as the digits (`pen`: their `strength`): paper grain is
    fainter than the pen and is no mark."""
    x0, y0, x1, y1 = piece.box
    return float(layout.ink[y0:y1, x0:x1][piece.mask].mean()) >= INKED * pen


def _minus(box: tuple[int, int, int, int], pieces: list[Piece], stroke: float) -> bool:
    """Whether the piece at `box` is a minus: a flat bar just before the first digit, about its middle."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    first = pieces[0]
    height = float(np.median([p.height for p in pieces]))
    return (first.box[0] - NEAR * height <= x1 <= first.box[0] + 0.1 * height and BAR * height <= w <= 1.2 * height
            and w >= 2 * h and h <= THICK * stroke
            and first.box[1] + 0.25 * first.height <= (y0 + y1) / 2 <= first.box[1] + 0.75 * first.height)
