"""Squared (graph) paper: the lattice of lines printed under a number written in a maths exercise book.

    from digitlab.grid import grid_lines
    found = grid_lines(mask, thick)   # (horizontal, vertical) masks of the lattice's lines in an ink mask, or None

Stop 49: of 500 development photos of numbers written on squared paper, `read` read 273 right: the lines were
ink, a vertical one a 1, and a faint grid left rows of dots that joined the digits. `digitlab.ruled` finds a
printed line as an unbroken run of ink, but a light grey or blue grid is dashes and dots in the ink mask. Here a
line is looked for as a whole: the share of a straight line's length that thin ink covers (runs across it no wider
than a printed line), for lines turned up to about 3 degrees, found at once for all lines of one direction (the
shear, strip by strip, that makes them sharpest). The lines are a grid only as a lattice: in both directions at
least two lines spanning the picture, evenly spaced (a line under the writing may be missed), most of the
lattice's places taken, with one step both ways, and crossing inside the picture. Writing is no lattice both ways:
a row of 1s cut tight may look like one set of lines, never the other, and a 0 or a box cut tight has its four
sides along the picture's edges. Each line is then put where the lattice fitted to all of them puts it, as wide as
most of them, so that a stroke beside a line is not taken with it. Dotted paper, whose ink lies where the lattice's
lines would cross, is no grid: its rows of dots are no thicker than a stroke lying along them.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

COVER = 0.15  # a line: the ink mask covers at least this share of its length (a faint line is dots)
REACH = 0.9  # ... from end to end of at least this share of the picture
TURN = 0.05  # lines turned by up to this slope (about 3 degrees) are looked for
STEP = 0.15  # the lines' gaps are whole steps to within this share of a step, and the steps both ways agree so
TAKEN = 0.6  # at least this share of the lattice's places inside the picture hold a line
BAND = 16  # the search sums the mask over strips at most this many rows tall (a turned line moves < 1 px along
# one), and at least STRIPS of them (a tight 0's curved side spans both halves of a picture cut in two)
STRIPS = 8
INSIDE = 0.1  # the two sets cross: one line each way lies at least this share of the picture from its sides
WIDE = 5  # a printed line's ink is at most this many pixels across it; a pen's stroke cut tight is often wider
DOTS = 0.5  # a lattice with more than this share of its ink where its lines cross is dotted paper


def grid_lines(mask: np.ndarray, thick: int) -> tuple[list[np.ndarray], list[np.ndarray]] | None:
    """The pixels of `mask` (ink, True) on squared paper's horizontal and vertical lines, one mask per line, or
    None if the picture shows no grid. Lines thicker than `thick` pixels are no grid's."""
    down = _family(mask, thick)
    if down is None:
        return None
    across = _family(mask.T, thick)
    if across is None or abs(across[0] - down[0]) > STEP * max(across[0], down[0]):
        return None
    # A lattice's lines cross each other; a 0 cut tight has two sides and a top and a bottom that meet at its
    # corners, all four along the picture's edges.
    for (_, _, lines), size in ((down, mask.shape[1]), (across, mask.shape[0])):
        if not any(INSIDE * size <= centre <= (1 - INSIDE) * size for centre, _ in lines):
            return None
    rows, cols = [band.T for band in _bands(mask.T, across)], _bands(mask, down)
    # Dotted paper: the lattice's ink lies where its lines cross, dots at its points. Its "lines" are no thicker
    # than a written stroke along them (a 7's bar along a row of dots went with it), and they are left alone.
    horizontal, vertical = np.any(rows, axis=0), np.any(cols, axis=0)
    if np.count_nonzero(horizontal & vertical) > DOTS * np.count_nonzero(horizontal | vertical):
        return None
    return rows, cols


def spans(mask: np.ndarray, rows: int, lines: int) -> bool:
    """Whether `lines` or more columns of `mask` could hold a line from top to bottom, turned up to `TURN`: ink in
    its top and bottom `rows` rows, at most the turn apart. Most photos of a number have paper above and below
    it, and a search for lines stops here."""
    H = mask.shape[0]
    top, bottom = mask[:rows].any(axis=0), mask[max(0, H - rows) :].any(axis=0)
    drift = int(np.ceil(TURN * H)) + 2
    return int(np.count_nonzero(top & ndimage.maximum_filter1d(bottom, 2 * drift + 1))) >= lines


def _family(mask: np.ndarray, thick: float) -> tuple[float, float, list[tuple[float, float]]] | None:
    """The vertical lines of a lattice in `mask`: (step, slope, [(centre at mid-height, half-width)]), or None."""
    H, W = mask.shape
    band = min(BAND, H // STRIPS)
    if band < 1 or W < 8:
        return None
    n = H // band
    # A line reaching over REACH of the strips has ink in the first strips and in the last (the rows past the last
    # whole strip are not looked at).
    if not spans(mask[: n * band], (n - int(np.ceil(REACH * n)) + 1) * band, 2):
        return None
    # The share of each strip's rows with thin ink at each column (a line wobbles by a pixel where it is
    # photographed): shifting the strips against each other turns the search, strip by strip instead of row by row.
    # Only ink in runs across no wider than a printed line counts: the strokes of a bold digit cut tight made
    # lattices of their edges (stop 49, development photos cut tight).
    wide = ndimage.maximum_filter1d(mask & (_across(mask) <= WIDE), 3, axis=1)
    strips = wide[: n * band].reshape(n, band, W).mean(axis=1)
    middle = (np.arange(n) + 0.5) * band - H / 2
    best = None
    for slope in np.linspace(-TURN, TURN, 21):
        cols = np.arange(W)[None, :] + np.round(slope * middle).astype(int)[:, None]
        inside = (cols >= 0) & (cols < W)
        seen = np.where(inside, strips[np.arange(n)[:, None], np.clip(cols, 0, W - 1)], 0.0)
        cover = seen.sum(axis=0) / np.maximum(inside.sum(axis=0), 1)
        sharp = float(np.square(cover).sum())
        if best is None or sharp > best[0]:
            best = (sharp, slope, cover, seen > 0)
    _, slope, cover, hit = best
    lines = []
    # A line stands out of what is around it: the rows of writing cover much of their columns too, and a line
    # running through them would otherwise merge with them. Around it: the lowest quarter of a window that holds
    # at most two lines' widths at the smallest step.
    around = ndimage.percentile_filter(cover, 25, size=int(2 * thick) + 9, mode="nearest")
    contrast = cover - around
    labels, _ = ndimage.label(contrast >= COVER)
    for run in ndimage.find_objects(labels):
        xs = np.arange(run[0].start, run[0].stop)
        rows = np.nonzero(hit[:, xs].any(axis=1))[0]
        # A line spans the picture; the stroke of a digit, however straight, spans its digit.
        if rows[-1] - rows[0] + 1 < REACH * n:
            continue
        width = xs.size - 2  # the 3-px tolerance widened the run by a pixel each side
        if width > thick:
            continue
        centre = float((xs * cover[xs]).sum() / cover[xs].sum())
        lines.append((centre, max(width, 1) / 2))
    lattice = _lattice([c for c, _ in lines], W)
    if lattice is None:
        return None
    step, anchor = lattice
    on = [(round((c - anchor) / step), c, half) for c, half in lines
          if abs((c - anchor) / step - round((c - anchor) / step)) <= STEP]
    # A lattice's lines are evenly spaced and alike: each is where the lattice fitted to them all puts it, as wide
    # as most of them. A stroke beside a line widens its run and pulls its centre; erased at that width and place
    # it went with the line.
    places, centres = np.array([p for p, _, _ in on], float), np.array([c for _, c, _ in on])
    step, anchor = (float(v) for v in np.polyfit(places, centres, 1))
    half = float(np.median([h for _, _, h in on]))
    return step, float(slope), [(anchor + p * step, half) for p in places]


def _across(mask: np.ndarray) -> np.ndarray:
    """For each pixel of `mask`, the length of the run of ink along its row that it belongs to (0 off the ink)."""
    starts = mask & ~np.pad(mask, ((0, 0), (1, 0)))[:, :-1]
    run = np.cumsum(starts.ravel()).reshape(mask.shape) * mask
    return np.bincount(run.ravel())[run] * mask


def _lattice(centres: list[float], size: int) -> tuple[float, float] | None:
    """The step and one place of the evenly spaced lines among `centres` (in a picture `size` wide), or None if
    fewer than two, or fewer than `TAKEN` of the lattice's places inside the picture, hold one."""
    best = None
    for i, a in enumerate(centres):
        for b in centres[i + 1 :]:
            step = abs(b - a)
            if step < 4:
                continue
            places = (np.asarray(centres) - a) / step
            members = int((np.abs(places - np.round(places)) <= STEP).sum())
            inside = int(np.floor((size - 1 - a) / step)) + int(np.floor(a / step)) + 1
            if members < max(2, TAKEN * inside):
                continue
            if best is None or (members, step) > (best[0], best[1]):
                best = (members, step, a)
    return None if best is None else (best[1], best[2])


def _bands(mask: np.ndarray, family: tuple[float, float, list[tuple[float, float]]]) -> list[np.ndarray]:
    """Each of `family`'s lines as the pixels of `mask` it covers."""
    H, W = mask.shape
    _, slope, lines = family
    ys, xs = np.arange(H)[:, None], np.arange(W)[None, :]
    bands = []
    for centre, half in lines:
        at = centre + slope * (ys - H / 2)
        bands.append(mask & (np.abs(xs - at) <= half + 1))
    return bands
