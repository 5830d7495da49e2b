"""Find the digits in a picture of a number: where each one is, left to right.

    from digitlab.segment import segment
    layout = segment(picture)          # PIL image or array, any size, dark on light or the reverse
    for i, j in layout.candidates:     # runs of slices (left to right) that may each be one digit
        crop = layout.crop(layout.piece(i, j))   # -> digitlab.data.images.to_mnist

The ink comes from the same steps `to_mnist` uses (grey, polarity, uneven light, noise), on a copy scaled down to
at most WORK_SIDE pixels, and on the sheet alone where the photo shows the table around it, or on the field alone
inside a box printed around it (`digitlab.sheet`), and without the lines printed on the paper (ruled paper, an
underline, a comb's dividers: `digitlab.ruled`). Connected components of that ink (scipy.ndimage) are the
atoms: pieces of one digit (the detached top of a 5, a 4 or 7 in two strokes, a broken pencil line) are merged
when they lie above one another (horizontal overlap), and specks, shadows and the sheet's edge are dropped,
unless the picture is cut tight to its ink, whose edges the digit then touches; a picture whose only ink is as
faint as the paper's grain is blank. A blob wider than a 1 may be digits that touch, so it is cut at the columns
where its ink is thinnest: these slices are over-cut on purpose, and the candidates are the runs of neighbouring
slices that could be one digit. Which runs are the digits is decided by the model (`digitlab.read`), not by
shapes alone: a broad 0 and two touching digits can have the same width. Each slice remembers the height of its
blob and of the number's digits, so a fragment is told from a digit however big the digits are or however the
baseline drifts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image
from scipy import ndimage

from digitlab.data.images import _ink_on_black, _to_gray
from digitlab.ruled import erase_rules
from digitlab.sheet import locate_field

WORK_SIDE = 1024  # segmentation runs at most this size: plenty for a number, fast on a 12-megapixel photo
ONE_DIGIT_MAX = 1.15  # pieces merged into one digit are at most this wide for their height
SPLITTABLE = 0.45  # a blob wider than this for its height may be touching digits (two 1s): find cuts
MAX_ASPECT = 1.6  # no digit is wider than this for its height (MNIST's widest 0.1% are 1.67)
MAX_RUN = 5  # a digit is made of at most this many slices
MAX_GAP = 0.15  # blobs further apart than this (relative to height) are never one digit
MAX_CUTS = 30  # per blob: a line or a scribble gets no more, however long
# Grey between ink and the paper around it. Every one of 6,600 development number photos has a digit of 0.08 or
# more (stop 45); the grain at a shadow's edge on a blank sheet is 0.02-0.05 (stop 44).
MIN_CONTRAST = 0.05


@dataclass
class Piece:
    """One digit's ink: a box (x0, y0, x1, y1) in work pixels and which pixels in it belong to the digit."""

    box: tuple[int, int, int, int]
    mask: np.ndarray  # bool (y1 - y0, x1 - x0)

    @property
    def width(self) -> int:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> int:
        return self.box[3] - self.box[1]


@dataclass
class Layout:
    """A picture's ink, cut into slices left to right, and the runs of slices that may each be one digit.

    Every digit is a run `slices[i:j]` from `candidates`; a reading of the picture is a chain of runs that
    covers every slice once (`digitlab.read` picks the chain the model reads best).
    """

    ink: np.ndarray  # float32 (H, W) in [0, 1], white ink on black, at work scale
    gray: np.ndarray  # float32 (H, W) in [0, 1], the picture as it is (the sheet alone, if found), at work scale
    scale: float  # work pixels per input pixel
    size: tuple[int, int]  # the input's (width, height)
    slices: list[Piece]
    candidates: list[tuple[int, int]]
    heights: list[int] = field(default_factory=list)  # per slice: how tall a digit around it is
    blobs: list[int] = field(default_factory=list)  # per slice: which group of ink it was cut from
    stroke: float = 1.0  # typical stroke width, work pixels: a digit is several strokes tall, a dash is one
    origin: tuple[int, int] = (0, 0)  # where `gray` starts in the picture, work pixels (digitlab.sheet)

    def cuts_ink(self, i: int) -> bool:
        """Whether starting a digit at slice i cuts through ink (i and the slice before it touch)."""
        return 0 < i < len(self.slices) and self.blobs[i] == self.blobs[i - 1]

    def height_ratio(self, i: int, j: int) -> float:
        """How tall the run slices[i:j] is next to the digits around it (1: as tall; a fragment: ~0.3)."""
        return self.piece(i, j).height / max(max(self.heights[i:j]), 1)

    def piece(self, i: int, j: int) -> Piece:
        return _join(self.slices[i:j])

    def crop(self, piece: Piece) -> np.ndarray:
        """The picture around the piece, everything but the piece's own ink (and its soft edge) painted over
        with the paper around it: what `to_mnist` gets, as if the digit had been photographed alone."""
        x0, y0, x1, y1 = piece.box
        pad = max(4, round(0.15 * max(piece.width, piece.height)))
        H, W = self.gray.shape
        a0, b0, a1, b1 = max(0, x0 - pad), max(0, y0 - pad), min(W, x1 + pad), min(H, y1 + pad)
        own = np.zeros((b1 - b0, a1 - a0), dtype=bool)
        own[y0 - b0 : y1 - b0, x0 - a0 : x1 - a0] = piece.mask
        own = ndimage.binary_dilation(own, iterations=2)
        gray = self.gray[b0:b1, a0:a1]
        paper = self.ink[b0:b1, a0:a1] == 0
        fill = float(np.median(gray[paper & ~own])) if (paper & ~own).any() else float(np.median(gray))
        # A wide margin of paper: to_mnist estimates uneven light from tiles of 1/8 of the picture, and on a
        # tight crop a thick stroke fills whole tiles and would be taken for the background (hollow strokes).
        out = np.pad(np.where(own, gray, fill), round(0.5 * max(piece.width, piece.height)), constant_values=fill)
        if out.shape == (28, 28):  # to_mnist takes exactly 28x28 to be MNIST already; this one is not
            out = np.pad(out, ((0, 1), (0, 0)), mode="edge")
        return np.clip(np.rint(out * 255), 0, 255).astype(np.uint8)

    def input_box(self, piece: Piece) -> tuple[int, int, int, int]:
        """The piece's box in the input picture's pixels."""
        w, h = self.size
        x0, y0, x1, y1 = np.add(piece.box, self.origin * 2)
        s = self.scale
        return (max(0, int(np.floor(x0 / s))), max(0, int(np.floor(y0 / s))),
                min(w, int(np.ceil(x1 / s))), min(h, int(np.ceil(y1 / s))))


def gray_of(image: Image.Image | np.ndarray) -> tuple[np.ndarray, float, tuple[int, int]]:
    """Picture -> (grey in [0, 1] at work scale, work pixels per input pixel, input (width, height))."""
    if isinstance(image, np.ndarray):
        gray = image.astype(np.float32)
        if gray.ndim == 3:
            gray = gray[..., :3].mean(axis=2)
        if gray.ndim != 2 or gray.size == 0:
            raise ValueError(f"expected a 2-D (grey) or 3-D (colour) picture, got shape {image.shape}")
        if gray.max() > 1.0:
            gray = gray / 255.0
    else:
        gray = _to_gray(image)
    h, w = gray.shape
    scale = min(1.0, WORK_SIDE / max(h, w))
    if scale < 1.0:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        gray = np.asarray(Image.fromarray(gray, mode="F").resize(size, Image.Resampling.BOX), dtype=np.float32)
    return gray, scale, (w, h)


def segment(image: Image.Image | np.ndarray) -> Layout:
    """The slices of a picture's ink and the runs of them that may be digits (none: a blank picture)."""
    gray, scale, size = gray_of(image)
    # A sheet photographed with the table around it, a form's field with its printed box: only the sheet, or
    # the field, is read (digitlab.sheet).
    (field, boxed, empty), origin = locate_field(gray), (0, 0)
    if field is not None:
        origin, gray = field[:2], gray[field[1] : field[3], field[0] : field[2]]
    ink = np.zeros_like(gray) if empty else _ink_on_black(gray)
    if ink.shape != (28, 28):
        # Lines printed on the paper (ruled paper, an underline, a comb's dividers) are no digits' ink.
        ink, gray, _ = erase_rules(ink, gray, boxed=boxed)
    layout = Layout(ink, gray, scale, size, [], [], origin=origin)
    if ink.shape == (28, 28) or min(ink.shape) < 8:
        # An MNIST-sized picture is one digit, as `predict` reads it.
        if (ink > 0).any():
            layout.slices = [_trim(Piece((0, 0, ink.shape[1], ink.shape[0]), ink > 0))]
            layout.candidates = [(0, 1)]
            layout.heights, layout.blobs = [layout.slices[0].height], [0]
        return layout
    layout.stroke = _stroke_width(ink > 0)
    atoms, subject = _atoms(ink, layout.stroke)
    # Grainy paper breaks a shadow along the border into specks, each too short for _atoms to see it lies along
    # the side; merged, they do (a blank sheet with a shadow at its edge was read as a 1). In a picture cut to
    # its ink, ink on the border is the digit's, as in _atoms.
    joined = [(g, _join(g)) for g in _merge(atoms)]
    groups = [(g, whole) for g, whole in joined if subject or not _along_border(whole, *ink.shape)]
    # Ink no darker than the paper's grain (a shadow's edge on grainy paper) is no writing; a picture with
    # nothing else is blank. One group of real ink keeps them all, so a number's faint stroke is never lost.
    if all(_faint(whole, gray, ink) for _, whole in groups):
        groups = []
    typical = float(np.median([whole.height for _, whole in groups])) if groups else 0.0
    for blob, (group, whole) in enumerate(groups):
        slices = _slices(group, ink)
        layout.blobs += [blob] * len(slices)
        layout.slices += slices
        # A digit is about as tall as its blob, and not much smaller than the other digits of the number.
        layout.heights += [max(whole.height, round(0.8 * typical))] * len(slices)
    layout.candidates = _candidates(layout.slices, layout.heights)
    return layout


# ----------------------------------------------------------------------------------- atoms and merging


def _atoms(ink: np.ndarray, stroke: float) -> tuple[list[Piece], bool]:
    """Connected components of the ink, specks and dust dropped; and whether the picture is cut to its ink."""
    mask = ink > 0
    labels, n = ndimage.label(mask, structure=np.ones((3, 3), dtype=bool))
    if n == 0:
        return [], False
    areas = np.bincount(labels.ravel(), minlength=n + 1)
    pieces = []
    for index, found in enumerate(ndimage.find_objects(labels), start=1):
        if found is None or areas[index] == 0:
            continue
        ys, xs = found
        box = (xs.start, ys.start, xs.stop, ys.stop)
        pieces.append(Piece(box, labels[found] == index))
    # A shadow or the edge of the sheet: ink along a good part of the picture's border, or a solid patch on
    # it (a shadow's corner: as thick as it is wide), not a digit.
    H, W = ink.shape
    subject = _cut_to_subject(pieces, mask, stroke)
    if not subject:
        pieces = [p for p in pieces if not _along_border(p, H, W) and not (_on_border(p, H, W) and _solid(p))]
    if not pieces:
        return [], False
    # The corner of a shadow or of the sheet: a small piece on the border, beside bigger ones inside.
    inside = [p.height for p in pieces if not _on_border(p, H, W)]
    if inside:
        pieces = [p for p in pieces if not _on_border(p, H, W) or max(p.height, p.width) >= 0.75 * max(inside)]
    tallest = max(p.height for p in pieces)
    biggest = max(int(p.mask.sum()) for p in pieces)
    # Dust and paper grain: tiny both in extent and in ink next to the rest. A short piece with real ink
    # (the top bar of a 5) stays.
    keep = [p for p in pieces
            if max(p.height, p.width) >= 0.2 * tallest or p.mask.sum() >= 0.08 * biggest]
    return sorted(keep, key=lambda p: (p.box[0] + p.box[2]) / 2), subject


def _cut_to_subject(pieces: list[Piece], mask: np.ndarray, stroke: float) -> bool:
    """The picture is cut to its ink, as a user crops a photo to the digit: the pieces that span half the
    picture (a digit of it, not a blot of paper grain) reach all four sides, but the border is mostly paper.
    Their ink then touches the edges because it is the subject, not a shadow or the sheet's edge (a digit cut
    tight spans the picture's height, which the border rules would drop)."""
    H, W = mask.shape
    spans = [p.box for p in pieces if p.height >= 0.5 * H or p.width >= 0.5 * W]
    if not spans:
        return False
    # Faint edges of the strokes may fall short of the ink threshold: a stroke's width of slack.
    t = max(2.0, 0.03 * max(H, W), stroke)
    reaches = (min(b[0] for b in spans) <= t and min(b[1] for b in spans) <= t
               and max(b[2] for b in spans) >= W - t and max(b[3] for b in spans) >= H - t)
    # A box drawn around the picture (a form's field) reaches all four sides too, but covers the border; a
    # digit cut tight touches it in a few places (under half of it on every development crop).
    border = np.concatenate([mask[0], mask[-1], mask[1:-1, 0], mask[1:-1, -1]])
    return bool(reaches and border.mean() < 0.6)


def _faint(p: Piece, gray: np.ndarray, ink: np.ndarray) -> bool:
    """The piece's grey lies within MIN_CONTRAST of the paper around it (a written digit's stands 0.08 or more)."""
    x0, y0, x1, y1 = p.box
    H, W = gray.shape
    a0, b0, a1, b1 = max(0, x0 - 6), max(0, y0 - 6), min(W, x1 + 6), min(H, y1 + 6)
    paper = ~ndimage.binary_dilation(ink[b0:b1, a0:a1] > 0, iterations=2)
    if paper.mean() < 0.25:  # a patch with little paper beside it: the paper is the rest of the picture
        a0, b0, a1, b1 = 0, 0, W, H
        paper = ~ndimage.binary_dilation(ink > 0, iterations=2)
        if paper.mean() < 0.25:  # mostly ink (a stroke cut tight): too little paper to tell it from
            return False
    own = gray[y0:y1, x0:x1][p.mask]
    return abs(float(np.median(gray[b0:b1, a0:a1][paper])) - float(np.median(own))) < MIN_CONTRAST


def _along_border(p: Piece, H: int, W: int) -> bool:
    """Lies along half or more of a side of the picture: a shadow or the edge of the sheet."""
    return ((p.box[0] == 0 or p.box[2] == W) and p.height >= 0.5 * H
            or (p.box[1] == 0 or p.box[3] == H) and p.width >= 0.5 * W)


def _on_border(p: Piece, H: int, W: int) -> bool:
    return p.box[0] == 0 or p.box[1] == 0 or p.box[2] == W or p.box[3] == H


def _solid(p: Piece) -> bool:
    """A filled patch rather than strokes: its thickest part is half as thick as it is small."""
    if min(p.height, p.width) < 6:
        return False
    thickest = 2 * float(ndimage.distance_transform_edt(np.pad(p.mask, 1)).max())
    return thickest >= 0.5 * min(p.height, p.width)


def _stroke_width(mask: np.ndarray) -> float:
    """Typical stroke width: twice the mean distance to the background along the stroke's middle."""
    if not mask.any():
        return 1.0
    distance = ndimage.distance_transform_edt(mask)
    ridge = distance[(distance >= ndimage.maximum_filter(distance, size=3)) & mask]
    return float(max(1.0, 2 * np.median(ridge) - 1))


def _merge(atoms: list[Piece]) -> list[list[Piece]]:
    """Atoms -> groups of atoms that are one digit (or several touching ones), left to right."""
    groups = [[a] for a in atoms]
    changed = True
    while changed and len(groups) > 1:
        changed = False
        boxes = [_union_box(g) for g in groups]
        order = sorted(range(len(groups)), key=lambda i: boxes[i][0])
        groups = [groups[i] for i in order]
        boxes = [boxes[i] for i in order]
        for i in range(len(groups) - 1):
            for j in range(i + 1, min(i + 3, len(groups))):
                if _same_digit(boxes[i], boxes[j]):
                    groups[i] = groups[i] + groups[j]
                    del groups[j]
                    changed = True
                    break
            if changed:
                break
    return sorted(groups, key=lambda g: _union_box(g)[0])


def _same_digit(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    wa, ha = a[2] - a[0], a[3] - a[1]
    wb, hb = b[2] - b[0], b[3] - b[1]
    overlap = min(a[2], b[2]) - max(a[0], b[0])
    union = (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))
    uw, uh = union[2] - union[0], union[3] - union[1]
    vertical_gap = max(a[1], b[1]) - min(a[3], b[3])
    if vertical_gap > 0.6 * max(ha, hb):  # far above one another: not one digit
        return False
    # One above the other, mostly overlapping in x: the detached top of a 5, the tail of a broken 9. Side
    # by side over the same rows (a slanted 1 leaning into the next digit, a 4's second stroke) they are
    # left apart here: `read` joins them when the model reads the two as one digit better than as two.
    if overlap >= 0.5 * min(wa, wb) and uw <= ONE_DIGIT_MAX * uh and -vertical_gap <= 0.5 * min(ha, hb):
        return True
    # A small piece beside a bigger one (the bar of a 7, the end of a broken stroke): it overlaps it in x
    # a little, and the two together are no wider than a digit is tall.
    small, big = (a, b) if ha * wa < hb * wb else (b, a)
    return small[3] - small[1] < 0.45 * (big[3] - big[1]) and overlap > 0 and uw <= uh


def _union_box(atoms: list[Piece]) -> tuple[int, int, int, int]:
    return (min(a.box[0] for a in atoms), min(a.box[1] for a in atoms),
            max(a.box[2] for a in atoms), max(a.box[3] for a in atoms))


def _join(atoms: list[Piece]) -> Piece:
    box = _union_box(atoms)
    mask = np.zeros((box[3] - box[1], box[2] - box[0]), dtype=bool)
    for a in atoms:
        x0, y0 = a.box[0] - box[0], a.box[1] - box[1]
        mask[y0 : y0 + a.height, x0 : x0 + a.width] |= a.mask
    return Piece(box, mask)


def _trim(piece: Piece) -> Piece:
    rows, cols = np.nonzero(piece.mask)
    if rows.size == 0:
        return piece
    x0, y0 = piece.box[0], piece.box[1]
    return Piece((x0 + int(cols.min()), y0 + int(rows.min()), x0 + int(cols.max()) + 1, y0 + int(rows.max()) + 1),
                 piece.mask[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1])


# ------------------------------------------------------------------------------ slices and candidates


def _slices(atoms: list[Piece], ink: np.ndarray) -> list[Piece]:
    """A group cut at every column where two touching digits might meet; narrow groups stay whole."""
    whole = _join(atoms)
    if whole.width <= SPLITTABLE * whole.height:
        return [whole]
    x0, y0, x1, y1 = whole.box
    profile = ndimage.uniform_filter1d((ink[y0:y1, x0:x1] * whole.mask).sum(axis=0), size=max(1, whole.height // 25))
    h, w = whole.height, whole.width
    reach = max(2, h // 8)
    margin = max(2, round(0.12 * h))
    minima = [x for x in range(margin, w - margin)
              if profile[x] <= profile[max(0, x - reach) : x + reach + 1].min() + 1e-6]
    # Plateaus give runs of equal minima: keep one per run, then the deepest few (a cut per ~third of a digit).
    cuts: list[int] = []
    for x in sorted(minima, key=lambda x: profile[x]):
        if all(abs(x - c) > reach for c in cuts):
            cuts.append(x)
        if len(cuts) >= min(MAX_CUTS, max(1, round(3 * w / h))):
            break
    cuts = sorted(cuts)
    pieces = []
    for a, b in zip([0, *cuts], [*cuts, w], strict=True):
        mask = whole.mask[:, a:b]
        if mask.any():
            pieces.append(_trim(Piece((x0 + a, y0, x0 + b, y1), mask)))
    return pieces


def _candidates(slices: list[Piece], heights: list[int]) -> list[tuple[int, int]]:
    """Runs slices[i:j] that could be one digit: no wider than a digit of their height, no wide gap inside."""
    runs = []
    for i in range(len(slices)):
        for j in range(i + 1, min(i + MAX_RUN, len(slices)) + 1):
            if j > i + 1:
                box = _union_box(slices[i:j])
                h = max(heights[i:j])  # the digit's height, not the run's: a 7's bar alone is flat and wide
                gap = slices[j - 1].box[0] - max(s.box[2] for s in slices[i : j - 1])
                if box[2] - box[0] > MAX_ASPECT * h or gap > MAX_GAP * h:
                    break
            runs.append((i, j))
    return runs
