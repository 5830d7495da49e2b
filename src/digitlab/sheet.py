"""Find the sheet of paper in a photo taken with the table around it, so that only the sheet is read.

    from digitlab.sheet import find_sheet
    box = find_sheet(gray)     # grey in [0, 1] -> (x0, y0, x1, y1) of the sheet, or None

A photo of a sheet on a darker table has dark all around its border. `segment` and `to_mnist` decide which of
ink and paper is dark partly from the border, so there the bright paper reads as ink and the digits are lost
(stop 44: a 7 on such a sheet read as "not a digit"). The sheet is the one bright, nearly rectangular region,
holes (the writing) filled, covering a good part of the picture, with the darker rest around it on almost all
of the border. Strokes are thin, so on a copy reduced to about 96 pixels and median-filtered they are gone;
chalk on a blackboard or a screen in dark mode is bright only in strokes, never a filled rectangle.
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from scipy import ndimage

from digitlab.data.images import _border

SIDE = 96  # the reduced copy the sheet is looked for on: strokes a few pixels wide vanish, a sheet does not
MIN_AREA = 0.25  # the sheet covers at least this share of the picture
MIN_FILL = 0.85  # ... and this share of its own box (a sheet photographed square-on or a little turned)
MAX_HOLE = 0.1  # no dark region it encloses is bigger than this share of it: writing is thin strokes, but a
# 0 drawn light on dark (a canvas, chalk) encloses a dark region much of its own size
MAX_BRIGHT_BORDER = 0.2  # at most this share of the picture's border is as bright as the sheet
MIN_CONTRAST = 0.2  # the paper (the picture's brightest 5%) is this much brighter (grey, 0-1) than the border


def find_sheet(gray: np.ndarray) -> tuple[int, int, int, int] | None:
    """The box (x0, y0, x1, y1) in `gray`'s pixels of a bright sheet with a darker table around it, or None."""
    H, W = gray.shape
    if min(H, W) < 32:
        return None
    f = -(-max(H, W) // SIDE)
    small = np.asarray(Image.fromarray(gray, mode="F").reduce(f), np.float32) if f > 1 else gray
    # Most photos are paper to their border: that is seen without the median filter, which costs more than the
    # rest of segment's first steps.
    if np.percentile(small, 95) - np.median(_border(small)) < MIN_CONTRAST / 2:
        return None
    small = ndimage.median_filter(small, size=5, mode="nearest")
    table, paper = float(np.median(_border(small))), float(np.percentile(small, 95))
    if paper - table < MIN_CONTRAST:
        return None
    # Nearer the table than the paper: the light falls off across a sheet, and its far side must stay paper.
    bright = small > table + 0.3 * (paper - table)
    if _border(bright).mean() > MAX_BRIGHT_BORDER:
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
