"""Squared paper (`digitlab.grid`) and a notebook's margin line (`digitlab.ruled._margins`)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw
from scipy import ndimage

from digitlab.engine import TorchEngine, load_engine
from digitlab.grid import grid_lines
from digitlab.models import shipped_weights
from digitlab.read import read_picture
from digitlab.ruled import find_rules


def lattice(shape: tuple[int, int], step: int, *, turn: float = 0.0, cover: float = 1.0, seed: int = 0,
            across: bool = True, down: bool = True) -> np.ndarray:
    """A mask of squared paper's lines, 1 px wide, every `step` px, turned by `turn` (slope), each pixel kept with
    probability `cover` (a faint line is dots)."""
    H, W = shape
    mask = np.zeros(shape, bool)
    ys, xs = np.mgrid[0:H, 0:W]
    if down:
        mask |= np.round(xs - turn * (ys - H / 2)) % step == 5
    if across:
        mask |= np.round(ys + turn * (xs - W / 2)) % step == 7
    return mask & (np.random.default_rng(seed).random(shape) < cover)


def ring(shape: tuple[int, int], centre: tuple[int, int], radii: tuple[int, int]) -> np.ndarray:
    """A 0 written as a ring 3-4 px wide."""
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    r = ((yy - centre[0]) / radii[0]) ** 2 + ((xx - centre[1]) / radii[1]) ** 2
    return (r > 0.75) & (r < 1.0)


@pytest.mark.parametrize(("turn", "cover"), [(0.0, 1.0), (0.03, 1.0), (-0.02, 0.45)])
def test_squared_paper_is_found_and_erased_and_the_digit_on_it_stays(turn: float, cover: float) -> None:
    """Solid, turned by about 2 degrees, or faint (dots, 45% of each line in the ink mask)."""
    shape = (120, 220)
    grid = lattice(shape, 30, turn=turn, cover=cover)
    zero = ring(shape, (60, 110), (30, 20))  # across a vertical and a horizontal line
    found = grid_lines(grid | zero, 10)
    assert found is not None
    rows, cols = found
    assert len(rows) >= 3 and len(cols) >= 6, (len(rows), len(cols))
    erase = find_rules(grid | zero)
    assert erase is not None
    away = grid & ~ndimage.binary_dilation(zero, iterations=6)
    assert (erase & away).sum() == away.sum()  # all of the lines but where the 0 crosses them
    # The 0 keeps its strokes where they cross a line or run along it (a few pixels where it runs inside a turned
    # line's band and no wider than the line go).
    assert (erase & zero).sum() <= 0.03 * zero.sum()


def test_lines_one_way_or_two_steps_are_no_grid() -> None:
    """Ruled paper (lines one way), lines both ways at different steps (a table), or a row of 1s cut tight between
    two ruled lines (they cross neither) is no grid."""
    shape = (120, 220)
    assert grid_lines(lattice(shape, 30, down=False), 10) is None
    assert grid_lines(lattice(shape, 30, across=False), 10) is None
    assert grid_lines(lattice(shape, 30, down=False) | lattice(shape, 55, across=False), 10) is None
    ones = np.zeros((100, 160), bool)
    ones[[3, 4, 95, 96], :] = True  # the ruled lines, at the picture's top and bottom
    for x in (20, 60, 100, 140):
        ones[5:95, x : x + 4] = True  # 1s as tall as the space between the lines
    assert grid_lines(ones, 8) is None


def test_a_square_or_a_bold_0_cut_tight_is_no_grid() -> None:
    """Their sides are two lines each way at one step, but they meet at the corners along the picture's edges
    instead of crossing inside it, and a bold stroke is wider than a printed line (stop 49: the grid fired on 31 of
    1,800 development photos of one digit cut tight before these two checks)."""
    square = np.zeros((60, 60), bool)
    square[:2] = square[-2:] = True
    square[:, :2] = square[:, -2:] = True
    assert grid_lines(square, 5) is None
    bold = np.zeros((40, 40), bool)
    bold[:6] = bold[-6:] = True
    bold[:, :6] = bold[:, -6:] = True
    assert grid_lines(bold, 5) is None
    yy, xx = np.mgrid[0:44, 0:40]
    r = ((yy - 22) / 22) ** 2 + ((xx - 20) / 20) ** 2
    assert grid_lines((r > 0.45) & (r <= 1.0), 5) is None


def test_dotted_paper_is_no_grid() -> None:
    """A sheet of dots passed for a lattice (each row of dots covers a third of its line), and a 7's bar lying along a
    row of dots, no thicker than they are, went with it (stop 49, found writing a test for dotted paper)."""
    mask = np.zeros((150, 150), bool)
    for y in range(6, 150, 16):
        for x in range(6, 150, 16):
            mask[y - 2 : y + 3, x - 2 : x + 3] = True
    seven = np.zeros_like(mask)
    seven[36:41, 50:100] = True  # the bar, on the row of dots at y = 38
    for y in range(41, 120):
        x = 95 - round(25 * (y - 41) / 79)
        seven[y, x - 2 : x + 3] = True
    assert grid_lines(mask | seven, 10) is None
    erase = find_rules(mask | seven)
    assert erase is None or not (erase & seven).any()


def test_a_margin_line_beside_the_writing_is_erased_a_lone_1_is_not() -> None:
    """A vertical line from edge to edge, more than 1.5 times taller than the writing (a notebook's margin, the one
    line of big squares a photo of one digit shows), is printed; a 1 cut tight alone, or beside digits as tall, is
    writing."""
    mask = np.zeros((150, 200), bool)
    mask[:, 40:42] = True  # the margin
    zero = ring(mask.shape, (75, 120), (30, 20))
    erase = find_rules(mask | zero)
    assert erase is not None and erase[:, 40:42].all() and not (erase & zero).any()
    one = np.zeros((90, 30), bool)
    one[:, 13:17] = True
    assert find_rules(one) is None
    beside = np.zeros((90, 120), bool)
    beside[:, 13:17] = True
    beside |= ring(beside.shape, (45, 70), (40, 22))  # a 0 about as tall as the 1
    assert find_rules(beside) is None


@pytest.fixture(scope="module")
def engine() -> TorchEngine:
    return load_engine(None, "torch")


def squared(digits: list[np.ndarray], square: int = 40, margin: int = 25, level: float = 0.5) -> Image.Image:
    """MNIST digits written one to a square of squared paper (lines `level` as dark as the ink), dark on light."""
    n = len(digits)
    W, H = square * n + 2 * margin, square + 2 * margin
    picture = Image.new("L", (W, H), 0)
    for i, digit in enumerate(digits):
        size = int(square * 1.1)
        picture.paste(Image.fromarray(digit).resize((size, size), Image.Resampling.BILINEAR),
                      (margin + i * square - 2, margin - 2))
    ink = np.asarray(picture, np.float32)
    lines = Image.new("L", (W, H), 0)
    d = ImageDraw.Draw(lines)
    for x in range(margin % square, W, square):
        d.line([(x, 0), (x, H - 1)], fill=255)
    for y in range(margin % square, H, square):
        d.line([(0, y), (W - 1, y)], fill=255)
    ink = np.maximum(ink, np.asarray(lines, np.float32) * level)
    return Image.fromarray((235 - 0.8 * ink).astype(np.uint8))


@pytest.mark.mnist
@pytest.mark.skipif(not shipped_weights().is_file(), reason="run `make weights`")
def test_a_number_written_on_squared_paper_is_read(
        engine: TorchEngine, mnist_test: tuple[torch.Tensor, torch.Tensor]) -> None:
    """Until stop 49 the grid's vertical lines were read as 1s and its rows joined the digits."""
    pixels, labels = mnist_test
    picks = [int(np.flatnonzero(labels.numpy() == d)[5]) for d in (2, 0, 6)]
    reading = read_picture(engine, squared([pixels[k].numpy() for k in picks]))
    assert reading.number == "206", (reading.number, reading.reason)
