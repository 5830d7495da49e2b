"""Find where the writing is in a photo: the sheet on the table, and the box printed around a form's field.

    from digitlab.sheet import find_field, locate_field
    box = find_field(gray)     # grey in [0, 1] -> (x0, y0, x1, y1) to read, or None: read it all
    box, boxed, empty = locate_field(gray)   # ... and whether a box is printed around it, and empty

A photo of a sheet on a darker table has dark all around its border. `segment` and `to_mnist` decide which of
ink and paper is dark partly from the border, so there the bright paper reads as ink and the digits are lost
(stop 44: a 7 on such a sheet read as "not a digit"). The sheet is the one bright, nearly rectangular region,
holes (the writing) filled, covering a good part of the picture, with the darker rest around it on almost all
of the border. Strokes are thin, so on a copy reduced to about 96 pixels and median-filtered they are gone;
chalk on a blackboard or a screen in dark mode is bright only in strokes, never a filled rectangle.

A box printed around a form's field, and the picture cut at or just outside it, does the same on a smaller scale
(stop 45: `read` misread or refused 84-94% of development number photos so framed, `predict` 92% of single
digits): the dark lines on the border look like the paper, or the box is taken for the heaviest stroke of the
digit. The box is thin straight lines near all four sides with paper inside them (`find_box`); the field is what
they enclose. A box with nothing written in it is blank (`locate_field`, since stop 46).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from PIL import Image
from scipy import ndimage

SIDE = 96  # the reduced copy the sheet is looked for on: strokes a few pixels wide vanish, a sheet does not
MIN_AREA = 0.25  # the sheet covers at least this share of the picture
MIN_FILL = 0.85  # ... and this share of its own box (a sheet photographed square-on or a little turned)
MAX_HOLE = 0.1  # no dark region it encloses is bigger than this share of it: writing is thin strokes, but a
# 0 drawn light on dark (a canvas, chalk) encloses a dark region much of its own size
MAX_BRIGHT_BORDER = 0.2  # at most this share of the picture's border is as bright as the sheet
MIN_CONTRAST = 0.2  # the paper (the picture's brightest 5%) is this much brighter (grey, 0-1) than the border


def border(a: np.ndarray) -> np.ndarray:
    """A picture's outermost rows and columns, in one array: where the paper shows, whatever is written."""
    return np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])


class Field(NamedTuple):
    """Where the writing is: `box` (x0, y0, x1, y1), None for the whole picture; `boxed`, inside a box printed
    around it (where `digitlab.ruled` looks for a comb's dividers); `empty`, that box has nothing written in it."""

    box: tuple[int, int, int, int] | None
    boxed: bool = False
    empty: bool = False


def find_field(gray: np.ndarray) -> tuple[int, int, int, int] | None:
    """The box (x0, y0, x1, y1) in `gray`'s pixels that holds the writing: the sheet, if the table shows around
    it, and inside it the field, if a box is printed around that; None when the whole picture is the field."""
    return locate_field(gray).box


def locate_field(gray: np.ndarray) -> Field:
    """`find_field`'s box, whether a box is printed around it, and whether that box is empty.

    An empty printed box (a form's field left blank) is blank. Read whole, its lines were ink, or set the polarity
    so that the paper inside was (stop 46: `predict` read 5 and 7 of 60 development photos of empty boxes, one
    cell and wide, as a digit; 13 and 19 once `digitlab.ruled` erased the lines it then found). Its emptiness is
    judged against the box's own lines, nothing inside half as dark as they are (a shadow or the grain is fainter),
    and then, since stop 47, no faint stroke in it either (`faint_writing`: pencil in a box printed black).
    """
    # The box first: a thick printed line along the border also looks like a thin table around a sheet. A bold
    # line (stop 48) only where no sheet is seen: a table's margin is as thick, as straight and as unbroken.
    box = find_box(gray)
    if box is not None:
        return Field(box[0], True, box[1])
    sheet = find_sheet(gray)
    if sheet is None:
        box = find_box(gray, bold=True)
        return Field(None) if box is None else Field(box[0], True, box[1])
    x0, y0, x1, y1 = sheet
    box = find_box(gray[y0:y1, x0:x1], bold=True)
    if box is None:
        return Field(sheet)
    (a0, b0, a1, b1), empty = box
    return Field((x0 + a0, y0 + b0, x0 + a1, y0 + b1), True, empty)


def find_sheet(gray: np.ndarray) -> tuple[int, int, int, int] | None:
    """The box (x0, y0, x1, y1) in `gray`'s pixels of a bright sheet with a darker table around it, or None."""
    H, W = gray.shape
    if min(H, W) < 32:
        return None
    f = -(-max(H, W) // SIDE)
    small = np.asarray(Image.fromarray(gray, mode="F").reduce(f), np.float32) if f > 1 else gray
    # Most photos are paper to their border: that is seen without the median filter, which costs more than the
    # rest of segment's first steps.
    table, paper = float(np.median(border(small))), float(np.percentile(small, 95))
    if paper - table < MIN_CONTRAST / 2:
        return None
    # A sheet covering a quarter of the picture is bright before any filter too; a drawing light on dark (the web
    # page's canvas) is bright only in its strokes, and is let go here, before the filter.
    if np.count_nonzero(small > table + 0.3 * (paper - table)) < 0.8 * MIN_AREA * small.size:
        return None
    small = ndimage.median_filter(small, size=5, mode="nearest")
    table, paper = float(np.median(border(small))), float(np.percentile(small, 95))
    if paper - table < MIN_CONTRAST:
        return None
    # Nearer the table than the paper: the light falls off across a sheet, and its far side must stay paper.
    bright = small > table + 0.3 * (paper - table)
    if border(bright).mean() > MAX_BRIGHT_BORDER:
        return None
    labels, n = ndimage.label(ndimage.binary_fill_holes(bright))
    if n == 0:
        return None
    sheet = labels == int(np.argmax(np.bincount(labels.ravel())[1:])) + 1
    rows, cols = np.nonzero(sheet)
    box = (int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1)
    if sheet.mean() < MIN_AREA or sheet.sum() < MIN_FILL * (box[2] - box[0]) * (box[3] - box[1]):
        return None
    holes, n = ndimage.label(sheet & ~bright)
    if n and np.bincount(holes.ravel())[1:].max() > MAX_HOLE * sheet.sum():
        return None
    # One reduced pixel inside the box: the median filter blurs the sheet's edge over about that much.
    x0, y0, x1, y1 = ((box[0] + 1) * f, (box[1] + 1) * f, (box[2] - 1) * f, (box[3] - 1) * f)
    return (x0, y0, min(x1, W), min(y1, H)) if x1 - x0 >= 16 and y1 - y0 >= 16 else None


BOX_REACH = 0.12  # a printed box's lines lie within this share of the picture's shorter side from each side
BOX_COVER = 0.5  # ... along at least this share of every side (a crop may cut through a line that is turned)
BOX_LINE = 0.05  # a line is at most this thick (share of the longer side), with paper inside it: a printed line is
# thin next to its field, while the strokes of a 0 that fills a low-resolution scan are 10-20% of it
BOX_FULL = 0.9  # ... or up to twice as thick, straight, along this share of the side away from its corners: a bold
# box on a small picture (stop 48)
BOX_CONTRAST = 0.2  # the picture's darkest ink is this much darker than its paper (or lighter, light on dark)


def find_box(gray: np.ndarray, bold: bool = False) -> tuple[tuple[int, int, int, int], bool] | None:
    """The box (x0, y0, x1, y1) inside a box printed around the picture (a form's field), and whether nothing is
    written in it; or None. `bold`: its lines may also be up to twice as thick, if unbroken (`BOX_FULL`), and are
    looked for dark on light.

    On each side, every column (row) of a band along it is looked along from the outside in: a printed line is
    the first run of ink in it, thin, with paper after it, at about the same depth all along the side. A digit
    near the edge is ink there in a few columns only, or goes deeper; a shadow or a table is no thin line; the
    round 0 of a canvas drawing curves away from the side, where a printed line keeps its depth; the strokes of
    a 0 that fills its picture are thicker than a printed line. A field with no writing in it is an empty box
    (`locate_field` reads it blank).
    """
    H, W = gray.shape
    if min(H, W) < 32:
        return None
    # The paper and the ink's levels from a copy of at most ~128 px; the lines in about 256 columns of each side:
    # enough for the shares below, and `to_mnist` stays fast on a canvas or a full-size photo.
    coarse = max(1, max(H, W) // 128)
    low, paper, high = (float(v) for v in np.percentile(gray[::coarse, ::coarse], [0.5, 50, 99.5]))
    # A bold box is looked for dark on light only, whatever the levels say: a 0 so fat that its stroke is most of
    # the picture tips them the other way (its paper at the edges is then a thick light "line"), and so does a
    # bright patch of uneven light on a box printed dark.
    dark = bold or paper - low >= high - paper
    contrast = paper - low if dark else high - paper
    if contrast < BOX_CONTRAST:
        return None
    step = max(1, max(H, W) // 256)
    thick = max(2, int(np.ceil(BOX_LINE * max(H, W))))
    reach = int(np.ceil(BOX_REACH * min(H, W))) + thick
    inside = []
    for band in (gray[:reach, ::step], gray[::-1][:reach, ::step], gray.T[:reach, ::step],
                 gray.T[::-1][:reach, ::step]):
        depth, n = band.shape
        # No column holds anything darker than its own paper by the threshold below: no line (a canvas, most
        # photos), seen before the filters.
        if np.count_nonzero(np.ptp(band, axis=0) >= max(0.06, 0.25 * contrast)) < BOX_COVER * n:
            return None
        band = band if dark else 1.0 - band  # lines dark
        # Along the line: the paper's grain fades, a line stays (a box turned by 1.5 degrees drifts 0.1 px in 5).
        band = ndimage.uniform_filter1d(band, 5, axis=1, mode="nearest")
        # The paper in each column: a line covers under half of the band; the light may change along the side.
        level = ndimage.median_filter(np.percentile(band, 75, axis=0), size=max(3, n // 10), mode="nearest")
        ink = band < level[None] - max(0.06, 0.25 * contrast)
        first = np.argmax(ink, axis=0)
        paper_after = (np.arange(depth)[:, None] >= first[None]) & ~ink
        end = np.where(paper_after.any(axis=0), np.argmax(paper_after, axis=0), depth)
        line = ink.any(axis=0) & (end < depth) & (end - first <= thick)
        if line.mean() < BOX_COVER:
            if not bold:
                return None
            # A bold line on a small picture is as thick as a digit's stroke, but unbroken along its side, where a
            # digit touches a side for a short way only. The lines across it fill the band's ends (no paper after
            # them): only the columns between count.
            line = ink.any(axis=0) & (end < depth) & (end - first <= 2 * thick)
            corner = -(-reach // step)
            mid = slice(corner, n - corner)
            between = line[mid]
            if between.size == 0 or between.mean() < BOX_FULL:
                return None
            if np.ptp(first[mid][between]) > 0.03 * n * step + 1:
                return None  # a printed line is straight; the side of a fat 0 cut tight curves a little
        if np.ptp(np.percentile(first[line], [5, 95])) > 0.05 * n * step + 2:
            return None  # not straight: a curve (a drawn 0) or ink scattered at many depths
        inside.append(int(np.percentile(end[line], 95)) + 1)
    top, bottom, left, right = inside
    if min(W - right - left, H - bottom - top) < 16:
        return None
    # Something written in the field: ink at least half as dark (against the paper) as the box's lines, or a
    # faint stroke (a pencil in a box printed black).
    m = thick // 2 + 2
    field = gray[top + m : H - bottom - m, left + m : W - right - m]
    written = np.count_nonzero(field < paper - 0.5 * contrast if dark else field > paper + 0.5 * contrast) >= 10
    return (left, top, W - right, H - bottom), not (written or faint_writing(field if dark else 1.0 - field))


FAINT_DEPTH = 0.07  # a stroke is this much darker (grey, 0-1) than the paper around it
FAINT_SPAN = 0.2  # ... and spans this share of the field's shorter side


def faint_writing(field: np.ndarray) -> bool:
    """Whether `field` (dark on light) holds a stroke too faint for the box's own contrast: pencil in a box printed
    black was read blank (stop 47: 17 of 50 development photos of one digit).

    A stroke is narrow and darker than the paper on both sides, so it stands out of the field's black top-hat
    (closed over a third of its shorter side, wider than any stroke of a digit that fits); a shadow's edge or the
    light's slope is no narrow dip and stays out, the grain is averaged away first. The piece must span a fifth of
    the field and not touch its edge, where a turned box's corner or a line's blur is left after the margin.
    """
    if min(field.shape) < 8:
        return False
    smooth = ndimage.uniform_filter(field, 3, mode="nearest")
    side = max(7, min(field.shape) // 3)
    hat = ndimage.grey_closing(smooth, size=(side, side), mode="nearest") - smooth
    labels, _ = ndimage.label(hat > FAINT_DEPTH)
    h, w = field.shape
    for ys, xs in ndimage.find_objects(labels):
        inner = ys.start > 0 and xs.start > 0 and ys.stop < h and xs.stop < w
        if inner and max(ys.stop - ys.start, xs.stop - xs.start) >= FAINT_SPAN * min(h, w):
            return True
    return False
