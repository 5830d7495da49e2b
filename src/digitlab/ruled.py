"""Lines printed on the paper, not written: ruled paper, a form's underline, the dividers of a comb field, squared
paper's grid (found by `digitlab.grid`), a notebook's margin; and dotted paper's dots (`digitlab.dots`).

    from digitlab.ruled import erase_rules, find_rules
    ink, gray, found = erase_rules(ink, gray, boxed=True)   # `segment`: rules painted over with the paper
    rules = find_rules(mask)                                # `to_mnist`: their pixels on an ink mask, or None

A number is often written on a line or in a row of boxes, one per digit (bank forms, postcodes). Those lines are
ink to `segment` and `to_mnist`: a comb's dividers were read as 1s (stop 46: "127" in a comb read as "11217", 1 of
40 three-digit development photos right), an underline joined the digits above it into one blob that lay along the
picture's border and was dropped, and `predict` took the line under a digit for the digit. A printed rule is a
long, thin, straight run of ink: it spans the field from edge to edge, where a digit's longest stroke (the bar of
a 7, the base of a 2) spans one digit. It is found on the ink mask opened along its direction, checked for
straightness and thickness, and erased, except where a written stroke crosses or meets it, so a digit standing on
the line keeps its foot. A faint line, dashes in the ink mask, is found with its gaps closed (inside the picture,
not along its edge). A run is a rule only if it is 1.5 times longer than the writing is tall (the writing as it
stays once the run is erased: the stem of a 4 through its bar stays whole), reaches past the writing on both ends,
lies apart below it, or lies apart above it from edge to edge with paper above (ruled paper cut to one digit's
cell); otherwise it is a stroke and stays. Vertical rules are looked for only where they divide a field: inside a
printed box (a comb), from its top line to its bottom line; between two rules, when there are two or more such
dividers (one straight 1 touching two ruled lines stays a 1); or as short ticks rising from an erased underline,
joined to nothing written (taller at its ends: the bracket of one digit's cell); or, since stop 49, as a margin: a
line from edge to edge beside the writing, joined to none of it and twice as tall. A tall 1 cut tight is never one.
Dotted paper is looked for first, as a lattice of small dots (`digitlab.dots`, since stop 50): its dots are erased,
and rules looked for in what is left. Then squared paper, as a lattice of lines both ways (`digitlab.grid`); where
one is seen, all of its lines are erased, except where a written stroke crosses one or runs along it.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from digitlab.dots import lattice_dots
from digitlab.grid import grid_lines, spans

SPAN = 0.8  # a horizontal rule spans at least this share of the field's width
TALL = 0.9  # a divider is unbroken over at least this share of its length
THIN = 0.08  # a rule is at most this thick, as a share of the field's shorter side (a shadow's band is thicker),
# or 5 px: a printed line photographed small and blurred
LONGER = 1.5  # a rule is this many times longer than the writing beside it is tall, or reaches past its ends
PAST = 0.2  # ... by this share of the writing's height on both sides (an underline under one digit)
TICK = 0.6  # a tick rising from an erased underline is shorter than this share of the writing's height
TICK_END = 0.9  # ... or, at either end of the underline, than this share
MARGIN = 2.0  # a vertical line from edge to edge is printed if this many times taller than the writing beside it


def erase_rules(ink: np.ndarray, gray: np.ndarray, *, boxed: bool = False) -> tuple[np.ndarray, np.ndarray, bool]:
    """`ink` (white on black, [0, 1]) and `gray` with printed rules painted over; and whether any were found.

    `boxed`: the field is the inside of a box printed around it (`digitlab.sheet.locate_field`), where dividers
    that run from its top line to its bottom line make a comb.
    """
    mask = ink > 0
    erase = find_rules(mask, boxed=boxed)
    if erase is None:
        return ink, gray, False
    ink = np.where(erase, 0.0, ink).astype(np.float32)
    # The paper around the rules: where nothing is written near them.
    near = ndimage.binary_dilation(erase, iterations=3) & ~ndimage.binary_dilation(mask, iterations=1)
    paper = float(np.median(gray[near])) if near.any() else float(np.median(gray[~mask]))
    gray = np.where(ndimage.binary_dilation(erase, iterations=1) & ~(mask & ~erase), paper, gray).astype(np.float32)
    return ink, gray, True


def find_rules(mask: np.ndarray, *, boxed: bool = False) -> np.ndarray | None:
    """The pixels of `mask` (ink) that belong to printed rules and no written stroke, or None if there are none."""
    H, W = mask.shape
    if min(H, W) < 16 or not mask.any():
        return None
    thick = max(5, int(np.ceil(THIN * min(H, W))))
    # Dotted paper before squared paper: turned a little, its rows of dots passed for a grid's faint lines and a
    # stroke along one went with it.
    dots = lattice_dots(mask, thick)
    if dots is not None:
        # A form printed on dotted paper still has its lines: they are looked for without the dots.
        rules = find_rules(mask & ~dots, boxed=boxed)
        return dots if rules is None else dots | rules
    grid = grid_lines(mask, thick)
    if grid is not None:
        return _erase_grid(mask, *grid)
    rows = _rules(mask, thick, SPAN * W)
    margins = _margins(mask, rows, thick)
    dividers = _dividers(mask, rows, thick, boxed) + margins
    # What is left is the writing; a rule must be long next to it, reach past it on both ends, or lie apart
    # below it. An empty field (a box or a comb with nothing written in it) leaves nothing: all of it is rules.
    rest = mask & ~np.any(rows + dividers, axis=0) if rows or dividers else mask
    free = [_free(mask, band) for band in rows]
    keep = [_not_writing(band, f, rest) for band, f in zip(rows, free, strict=True)]
    if 2 <= sum(keep) < len(rows):
        ruled = [band for band, k in zip(rows, keep, strict=True) if k]
        keep = [k or _in_step(band, ruled, rest) for band, k in zip(rows, keep, strict=True)]
    if not all(keep):
        rows = [band for band, k in zip(rows, keep, strict=True) if k]
        free = [f for f, k in zip(free, keep, strict=True) if k]
        dividers = _dividers(mask, rows, thick, boxed) + margins
    erase = np.any(free, axis=0) if free else np.zeros_like(mask)
    for band in dividers:
        erase |= _free(mask.T, band.T).T  # a stroke written across a divider keeps its pixels
    if rows:
        remaining = mask & ~erase
        pieces, _ = ndimage.label(remaining, structure=np.ones((3, 3), bool))
        for band in _rules(remaining.T, thick, 0.15 * H):
            if _tick(band.T, remaining, pieces, erase, rest):
                erase |= band.T
    return _with_specks(mask, erase)


def _with_specks(mask: np.ndarray, erase: np.ndarray) -> np.ndarray | None:
    """`erase` and the rules' blurred edges outside their bands: specks left along them, joined to nothing
    written; None if there is nothing to erase."""
    if not erase.any():
        return None
    left = mask & ~erase
    labels, _ = ndimage.label(left, structure=np.ones((3, 3), bool))
    beside = ndimage.binary_dilation(erase, structure=np.ones((5, 5), bool))
    outside = np.unique(labels[left & ~beside])
    return erase | (left & ~np.isin(labels, outside))


def _erase_grid(mask: np.ndarray, rows: list[np.ndarray], cols: list[np.ndarray]) -> np.ndarray | None:
    """The pixels of squared paper's lines no written stroke crosses or runs along. Where the lines cross each
    other, neither counts as a stroke crossing the other."""
    erase = np.zeros_like(mask)
    for lines, other, flip in ((rows, np.any(cols, axis=0), False), (cols, np.any(rows, axis=0), True)):
        for band in lines:
            b, m, o, e = (a.T if flip else a for a in (band, mask, other, erase))
            # `_free` looks 3 rows either side of the band: only those rows are worked on (a grid has many lines).
            ys = np.nonzero(b.any(axis=1))[0]
            if ys.size == 0:
                continue
            near = slice(max(0, ys[0] - 3), ys[-1] + 4)
            b, o = b[near], o[near]
            e[near] |= _free(m[near] & ~(o & ~b), b) & ~_along(b & ~o)[None]
    return _with_specks(mask, erase)


def _along(band: np.ndarray) -> np.ndarray:
    """The columns where a horizontal line's band holds more ink than the line: a stroke running along it inside
    the band (a 0's side beside a grid line), and a column each side."""
    counts = band.sum(axis=0)
    if not counts.any():
        return counts > 0
    return ndimage.maximum_filter1d(counts > np.median(counts[counts > 0]) + 1, 3)


def _margins(mask: np.ndarray, rows: list[np.ndarray], thick: int) -> list[np.ndarray]:
    """Vertical lines from edge to edge, joined to no writing, at least `MARGIN` times taller than it and beside
    it, not among it: a notebook's margin, the lines of big squares around a photo of one digit (stop 49). A 1 as
    tall as the picture stands beside digits about as tall; a lone one is never a margin."""
    H, W = mask.shape
    if not spans(mask, int(0.05 * H) + 2, 1):
        return []
    found = []
    for band in _rules(mask.T, thick, SPAN * H):
        ys = np.nonzero(band.any(axis=0))[0]
        if ys.min() <= 0.05 * H and ys.max() >= 0.95 * H - 1:
            found.append(band.T)
    if not found:
        return []
    # The writing: what is left without the lines and the rules across them, specks aside. The lines are alone:
    # what joins them is only specks (a rule's blurred edge), no stroke.
    lines = np.any(found, axis=0)
    labels, _ = ndimage.label(mask & ~np.any(rows, axis=0) if rows else mask, structure=np.ones((3, 3), bool))
    own = np.unique(labels[lines])
    joined = np.isin(labels, own[own > 0]) & ~ndimage.binary_dilation(lines, structure=np.ones((5, 5), bool))
    pieces = [b for b in ndimage.find_objects(np.where(np.isin(labels, own), 0, labels)) if b is not None]
    tall = max((b[0].stop - b[0].start for b in pieces), default=0)
    written = [b for b in pieces if b[0].stop - b[0].start >= 0.25 * tall]
    reach = np.nonzero(joined.any(axis=1))[0]
    # Twice as tall as the writing: the arm of a 4 cut tight is half its stem, or more.
    if not written or MARGIN * tall > H or (reach.size and reach[-1] - reach[0] + 1 >= 0.25 * tall):
        return []
    # Beside the writing, not among it: bars with writing on both sides are 1s (or a comb's dividers, which need
    # the comb's box or rules).
    sides = []
    for band in found:
        xs = np.nonzero(band.any(axis=0))[0]
        if all(b[1].stop <= xs.min() for b in written) or all(b[1].start > xs.max() for b in written):
            sides.append(band)
    return sides


def _dividers(mask: np.ndarray, rows: list[np.ndarray], thick: int, boxed: bool) -> list[np.ndarray]:
    """A comb's dividers: from the box's top line to its bottom line (`boxed`), or from one of `rows` to the next,
    where there are two or more of them (one tall straight 1 touching two ruled lines stays a 1)."""
    if not boxed and len(rows) < 2:
        return []
    ends = np.any(rows, axis=0) if rows else np.zeros_like(mask)
    found = [band.T for band in _rules((mask & ~ends).T, thick, 0.3 * mask.shape[0])]
    found = [band for band in found if _divides(band, ends, boxed)]
    return found if boxed or len(found) >= 2 else []


def _rules(mask: np.ndarray, thick: int, span: float) -> list[np.ndarray]:
    """Masks of the straight, thin, horizontal runs of ink in `mask` at least `span` pixels long."""
    H, W = mask.shape
    # An opening along the rows keeps runs at least L long: a rule turned by 2 degrees and 1 pixel thick still
    # has runs of about 28 pixels; a digit's strokes are short or curved and mostly go.
    L = int(max(8, min(28, span // 4)))
    runs = _runs(mask, L)
    found = _lines(mask, runs, L, thick, span)
    # A faint line (ruled paper's light blue or grey) is dashes in the ink mask, too short for the opening: gaps
    # of a few pixels along the row are closed first (stop 47). Only dashes: a solid line the search above let go
    # stays let go (the base of a drawn house's roof); and only inside the picture: along its edge, the closing
    # joins a grainy shadow's specks into a line.
    # Gaps of up to 3 px at least (a filter 4 wide): on `to_mnist`'s reduced copy of a narrow strip of ruled paper a
    # faint line breaks with 3-px gaps (stop 48).
    gap = max(4, L // 3)
    closed = ndimage.minimum_filter1d(ndimage.maximum_filter1d(mask, gap, axis=1), gap, axis=1) | mask
    seen = np.any(found, axis=0) if found else np.zeros_like(mask)
    for band in _lines(mask, _runs(closed, L), L, thick, span):
        rows, cols = np.nonzero(band.any(axis=1))[0], np.nonzero(band.any(axis=0))[0]
        dashes = (band & runs).any(axis=0)[cols].mean() < 0.8
        if dashes and rows.min() > 1 and rows.max() < H - 2 and not (band & seen).any():
            found.append(band)
    return found


def _lines(mask: np.ndarray, runs: np.ndarray, L: int, thick: int, span: float) -> list[np.ndarray]:
    """`_rules`' search on `runs`, the pixels in long runs along the rows."""
    # A faint or thin printed line breaks in the ink mask here and there (stop 46: a comb's 1-px dividers in two
    # or three pieces): gaps up to 2 L long are bridged before the pieces are joined into one run.
    labels, _ = ndimage.label(ndimage.maximum_filter1d(runs, 2 * L, axis=1), structure=np.ones((3, 3), bool))
    found = []
    for index, box in enumerate(ndimage.find_objects(labels), start=1):
        if box is None:
            continue
        part = (labels[box] == index) & runs[box]
        cols = np.nonzero(part.any(axis=0))[0]
        if cols.size == 0 or cols[-1] - cols[0] + 1 < span:
            continue
        box = (box[0], slice(box[1].start + cols[0], box[1].start + cols[-1] + 1))
        part = part[:, cols[0] : cols[-1] + 1]
        band = _straight(part, thick)
        if band is None:
            continue
        full = np.zeros_like(mask)
        full[box] = band
        found.append(full & mask)
    return found


def _runs(mask: np.ndarray, L: int) -> np.ndarray:
    """The pixels of `mask` in unbroken runs along its rows at least `L` long."""
    runs = ndimage.uniform_filter1d(mask.astype(np.float32), L, axis=1, mode="constant") > 1 - 0.5 / L
    return ndimage.maximum_filter1d(runs, L, axis=1) & mask


def _straight(part: np.ndarray, thick: int) -> np.ndarray | None:
    """The band (mask of `part`'s shape) a straight line through `part` covers, or None if it is no line."""
    h, w = part.shape
    counts = part.sum(axis=0)
    present = counts > 0
    if present.mean() < 0.8:
        return None  # a rule is nearly unbroken (a faint one loses a few pixels); writing joins here and there
    ys = np.arange(h)[:, None]
    centre = (part * ys).sum(axis=0) / np.maximum(counts, 1)
    # Columns where only the line is (a stroke that meets it makes the column thicker there).
    width = float(np.median(counts[present]))
    if width > thick:
        return None
    pure = present & (counts <= width + 1)
    if pure.sum() < 0.6 * w:
        return None
    xs = np.arange(w)
    slope, offset = np.polyfit(xs[pure], centre[pure], 1)
    if abs(slope) > 0.05:  # about 3 degrees: a rule is photographed square-on, or nearly
        return None
    fit = slope * xs + offset
    if np.abs(centre[pure] - fit[pure]).max() > max(1.5, 0.01 * w):
        return None  # not straight: a long stroke of handwriting
    half = width / 2 + 1
    return (ys >= fit[None] - half) & (ys <= fit[None] + half)


def _free(mask: np.ndarray, band: np.ndarray) -> np.ndarray:
    """The rule's pixels no written stroke crosses or meets: ink just outside the band, above or below it, in
    a column (or one beside it) keeps the band's pixels there."""
    outside = mask & ~ndimage.binary_dilation(band, structure=np.ones((3, 1), bool), iterations=1)
    touching = ndimage.binary_dilation(band, structure=np.ones((5, 1), bool), iterations=1) & outside
    columns = ndimage.maximum_filter1d(touching.any(axis=0), 3)
    return band & ~columns[None]


def _not_writing(band: np.ndarray, free: np.ndarray, rest: np.ndarray) -> bool:
    """A rule spans far more than the writing is tall, reaches past it on both ends, or lies apart under it; an
    empty field's rule (no writing at all) is a rule too. `free`: the band's pixels no stroke crosses (`_free`)."""
    if not rest.any():
        return True
    cols = np.nonzero(band.any(axis=0))[0]
    # The writing as it stays when the run is erased: a stroke that crosses the run keeps its pixels in it, so the
    # stem of a 4 is not cut in two by its bar (judged by the taller half, the bar passed for a rule).
    writing = rest | (band & ~free)
    boxes = [b for b in ndimage.find_objects(ndimage.label(writing, structure=np.ones((3, 3), bool))[0])
             if b is not None]
    rows = np.nonzero(band.any(axis=1))[0]
    # A tick standing on (or hanging from) either end of the run is the run's own: a one-digit field's bracket.
    # Each piece is judged against the tallest other one, found from the two tallest (grainy paper leaves
    # hundreds of specks: no search per piece).
    heights = sorted((b[0].stop - b[0].start for b in boxes), reverse=True) + [0]
    ends = [b for b in boxes
            if _end_tick(b, rows, cols, heights[1] if b[0].stop - b[0].start == heights[0] else heights[0])]
    if len(ends) < len(boxes):
        boxes = [b for b in boxes if b not in ends]
    tall = max(b[0].stop - b[0].start for b in boxes)
    # The writing's ends, specks left beside the rule's band not counted.
    written = [b for b in boxes if max(b[0].stop - b[0].start, b[1].stop - b[1].start) >= 0.25 * tall]
    if cols.size >= LONGER * tall:
        return True
    start, stop = min(b[1].start for b in written), max(b[1].stop for b in written)
    if start - cols.min() >= PAST * tall and cols.max() + 1 - stop >= PAST * tall:
        return True
    # Under all the writing and apart from it: the line a digit is written above, however wide the digit (the
    # detached bar of a 7 lies above its stroke). Specks (another rule's blurred end) are no writing, nor is a
    # piece of the band itself that a stroke ending just above it kept (a reduced picture leaves a 1-px gap).
    above = [b[0].stop for b in written if b[0].start < rows.min() or b[0].stop > rows.max() + 1]
    if above and rows.min() > max(above):
        return True
    # Above all the writing, apart from it, from edge to edge with paper above it: ruled paper cut to one digit.
    # A 7's detached bar cut tight to the ink lies at the picture's top.
    H, W = band.shape
    return bool(rows.max() < min(b[0].start for b in written) and rows.min() >= 2 and cols.min() <= 2
                and cols.max() >= W - 3)


def _in_step(band: np.ndarray, rules: list[np.ndarray], rest: np.ndarray) -> bool:
    """`band` runs from edge to edge in step with the ruled lines `rules`: all of them evenly spaced, further apart
    than the writing is tall. Ruled paper cut to one cell, a digit standing on its line: at `to_mnist`'s reduced
    size the line is no longer than the digit is wide (stop 48)."""
    H, W = band.shape
    cols = np.nonzero(band.any(axis=0))[0]
    if cols.min() > 2 or cols.max() < W - 3:
        return False
    centres = np.sort([np.nonzero(b.any(axis=1))[0].mean() for b in [*rules, band]])
    gaps = np.diff(centres)
    pieces = ndimage.find_objects(ndimage.label(rest, structure=np.ones((3, 3), bool))[0])
    tall = max(b[0].stop - b[0].start for b in pieces if b is not None)
    return bool(gaps.min() >= tall and gaps.max() - gaps.min() <= max(2.0, 0.1 * gaps.mean()))


def _end_tick(box: tuple[slice, slice], rows: np.ndarray, cols: np.ndarray, tallest: int) -> bool:
    """The piece in `box` is a short stroke as thin as the run (rows `rows`, columns `cols`), standing on it or
    hanging from it, at one of its ends, and shorter than the tallest other piece (`tallest`): a 7's stem cut
    tight stands at the end of its bar too, taller than the rest."""
    ys, xs = box
    thin = xs.stop - xs.start <= rows.size + 2
    touches = rows.min() - 2 <= ys.stop <= rows.max() + 3 or rows.min() - 2 <= ys.start <= rows.max() + 3
    at_end = xs.start <= cols.min() + rows.size + 2 or xs.stop >= cols.max() - rows.size - 1
    return bool(thin and touches and at_end and ys.stop - ys.start < TICK_END * tallest)


def _divides(band: np.ndarray, rules: np.ndarray, boxed: bool) -> bool:
    """The vertical rule runs from a box's top line (the field's top, when `boxed`) or a rule above to its
    bottom line or a rule below: the divider of a comb."""
    H = band.shape[0]
    rows = np.nonzero(band.any(axis=1))[0]
    if rows.size < 0.3 * H:
        return False
    cols = np.nonzero(band.any(axis=0))[0]
    near = rules[:, max(0, cols.min() - 2) : cols.max() + 3].any(axis=1)
    reach = int(0.05 * H) + 2
    top = (boxed and rows.min() <= reach) or near[max(0, rows.min() - reach) : rows.min() + 2].any()
    bottom = (boxed and rows.max() >= H - 1 - reach) or near[rows.max() - 1 : rows.max() + reach + 1].any()
    return bool(top and bottom and rows.size >= TALL * (rows.max() - rows.min() + 1))


def _tick(band: np.ndarray, remaining: np.ndarray, labels: np.ndarray, erased: np.ndarray,
          rest: np.ndarray) -> bool:
    """A short divider rising from (or hanging from) an erased underline, with no writing joined to it. `labels`:
    the connected pieces of `remaining`, the ink left once the underlines are erased."""
    rows = np.nonzero(band.any(axis=1))[0]
    if rows.size == 0:
        return False
    near = ndimage.binary_dilation(band, iterations=2)
    if not (near & erased).any():
        return False
    own = np.unique(labels[band & remaining])
    piece = np.isin(labels, own[own > 0])
    if (piece & ~ndimage.binary_dilation(band, iterations=1)).sum() > 0.1 * band.sum():
        return False  # a digit's stroke ending on the line: more ink is joined to it
    heights = [s[0].stop - s[0].start for s in ndimage.find_objects(ndimage.label(rest & ~piece,
                                                                                  np.ones((3, 3), bool))[0])]
    # At an end of the erased line (the bracket around one digit's cell) a tick may be taller: a digit standing
    # there would stand at the very end of its underline.
    cols = np.nonzero(band.any(axis=0))[0]
    foot = np.nonzero(erased[max(0, rows.min() - 3) : rows.max() + 4].any(axis=0))[0]
    end = foot.size > 0 and (cols.min() <= foot.min() + 2 or cols.max() >= foot.max() - 2)
    return bool(heights) and rows.size < (TICK_END if end else TICK) * max(heights)
