"""digitlab.sheet: the sheet of paper in a photo taken with the table around it."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from digitlab.segment import segment
from digitlab.sheet import find_sheet
from tests.test_segment import runs_covering


def on_table(sheet: np.ndarray, box: tuple[int, int, int, int], tone: float, seed: int = 0) -> np.ndarray:
    """`sheet` (grey 0-255) laid at `box` on a grainy table of brightness `tone`, the table as wide on the right
    and below as on the left and above."""
    g = np.random.default_rng(seed)
    x0, y0, x1, y1 = box
    picture = tone + g.normal(0, 5, (y1 + y0, x1 + x0))
    picture[y0:y1, x0:x1] = sheet
    return np.clip(picture, 0, 255).astype(np.uint8)


def seven(size: tuple[int, int] = (300, 220)) -> np.ndarray:
    paper = Image.new("L", size, 225)
    ImageDraw.Draw(paper).line([(120, 60), (180, 60), (140, 170)], fill=25, width=9)
    return np.asarray(paper, np.float32)


def test_the_sheet_on_a_dark_table_is_found() -> None:
    picture = on_table(seven(), (30, 24, 330, 244), tone=60)
    box = find_sheet(picture.astype(np.float32) / 255)
    assert box is not None
    assert all(abs(a - b) <= 8 for a, b in zip(box, (30, 24, 330, 244), strict=True)), box


def test_pictures_without_a_table_have_no_sheet() -> None:
    g = np.random.default_rng(1)
    plain = seven()
    shadowed = plain * np.linspace(1.0, 0.6, plain.shape[1])[None]  # light falling off across the sheet
    chalk = Image.new("L", (300, 220), 40)  # chalk on a blackboard: bright only in strokes
    ImageDraw.Draw(chalk).ellipse([90, 40, 210, 180], outline=230, width=10)
    canvas = Image.new("L", (280, 280), 0)  # a bold, boxy 0 drawn white on black: it encloses a dark region
    ImageDraw.Draw(canvas).rounded_rectangle([42, 28, 238, 252], 30, outline=255, width=40)
    noise = np.clip(128 + g.normal(0, 40, (200, 200)), 0, 255)
    for picture in (plain, shadowed, np.asarray(chalk, np.float32), np.asarray(canvas, np.float32), noise):
        assert find_sheet(picture.astype(np.float32) / 255) is None


def test_a_digit_on_a_sheet_on_a_table_is_found_alone() -> None:
    """Until stop 44 the table all around made the bright paper read as ink: `read` said "not a digit"."""
    picture = on_table(seven(), (30, 24, 330, 244), tone=60)
    layout = segment(Image.fromarray(picture))
    assert runs_covering(layout, 30 + 125, 30 + 175), [layout.input_box(s) for s in layout.slices]
    # Boxes are in the photo's pixels, the table included; nothing is found on the table.
    assert all(layout.input_box(s)[0] >= 30 + 110 and layout.input_box(s)[2] <= 30 + 190 for s in layout.slices)
