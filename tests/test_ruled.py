"""digitlab.ruled: lines printed on the paper (ruled paper, an underline, a comb's dividers) are not ink to read."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from digitlab.engine import TorchEngine, load_engine
from digitlab.models import shipped_weights
from digitlab.read import read_picture
from digitlab.ruled import erase_rules
from digitlab.segment import segment


def ink_of(draw_on, size: tuple[int, int] = (300, 100)) -> tuple[np.ndarray, np.ndarray]:
    """A white-on-black ink picture drawn by `draw_on(draw)`, and its grey (dark ink on light paper)."""
    picture = Image.new("L", size, 0)
    draw_on(ImageDraw.Draw(picture))
    ink = np.asarray(picture, np.float32) / 255
    return ink, 0.9 - 0.8 * ink


def test_an_underline_is_erased_and_a_digit_standing_on_it_keeps_its_foot() -> None:
    def draw(d: ImageDraw.ImageDraw) -> None:
        d.line([(0, 90), (299, 91)], fill=255, width=2)  # the printed line, turned a little
        d.line([(100, 20), (100, 89)], fill=255, width=5)  # a 1 standing on it
        d.ellipse([180, 25, 220, 85], outline=255, width=5)  # a 0 above it

    ink, gray = ink_of(draw)
    out, paper, found = erase_rules(ink, gray)
    assert found
    assert out[90, :60].max() == 0 and out[90, 240:].max() == 0  # the line is gone where nothing touches it
    assert out[20:89, 98:103].min() > 0  # the 1 is whole
    assert (out[88:93, 96:105] > 0).any()  # ... down to its foot on the line
    assert paper[90, 20] == pytest.approx(0.9, abs=0.02)  # painted with the paper


def test_a_7_cut_tight_keeps_its_bar() -> None:
    """The bar of a 7 spans its picture too, but not far past the writing below it: it is a stroke."""
    def draw(d: ImageDraw.ImageDraw) -> None:
        d.line([(0, 3), (79, 3)], fill=255, width=6)
        d.line([(79, 3), (25, 99)], fill=255, width=6)

    ink, gray = ink_of(draw, (80, 100))
    assert not erase_rules(ink, gray)[2]


def test_a_wavy_stroke_across_the_picture_is_not_a_rule() -> None:
    xs = np.arange(300)
    ys = 50 + 12 * np.sin(xs / 25)

    def draw(d: ImageDraw.ImageDraw) -> None:
        d.line(list(zip(xs.tolist(), ys.tolist(), strict=True)), fill=255, width=3)

    ink, gray = ink_of(draw)
    assert not erase_rules(ink, gray)[2]


def test_dividers_are_erased_only_between_rules_or_in_a_box() -> None:
    def bars(d: ImageDraw.ImageDraw) -> None:
        for x in (75, 150, 225):
            d.line([(x, 0), (x, 99)], fill=255, width=2)
        for x in (30, 110, 190, 260):
            d.ellipse([x - 15, 30, x + 15, 70], outline=255, width=4)

    ink, gray = ink_of(bars)
    # Without a box, three straight bars the field's height are writing (1s cut tight), not a comb.
    assert not erase_rules(ink, gray)[2]
    out, _, found = erase_rules(ink, gray, boxed=True)
    assert found and out[:, 70:80].max() == 0 and out[:, 145:155].max() == 0
    assert out[40:60, 15:46].max() > 0  # the 0s stay

    def one_between_rules(d: ImageDraw.ImageDraw) -> None:
        d.line([(0, 5), (299, 5)], fill=255, width=2)
        d.line([(0, 94), (299, 94)], fill=255, width=2)
        d.line([(150, 6), (150, 93)], fill=255, width=4)  # a tall 1 on ruled paper, touching both lines

    ink, gray = ink_of(one_between_rules)
    out, _, found = erase_rules(ink, gray)
    assert found and out[30:70, 149:152].min() > 0  # the rules go; one straight 1 between them stays


def test_an_empty_ruled_field_is_blank() -> None:
    paper = Image.new("L", (400, 120), 230)
    for y in (30, 90):
        ImageDraw.Draw(paper).line([(0, y), (399, y)], fill=120, width=2)
    assert segment(paper).candidates == []
    from digitlab.data.images import to_mnist

    assert not to_mnist(paper).any()  # predict: blank too


@pytest.fixture(scope="module")
def engine() -> TorchEngine:
    return load_engine(None, "torch")


def form(digits: list[np.ndarray], kind: str, cell: int = 60) -> Image.Image:
    """MNIST digits written one to a cell of a comb field, or on a printed line; dark ink on light paper."""
    n = len(digits)
    picture = Image.new("L", (cell * n + 8, cell + 20), 0)
    for i, digit in enumerate(digits):
        picture.paste(Image.fromarray(digit).resize((cell - 6, cell - 6), Image.Resampling.BILINEAR),
                      (4 + i * cell + 3, 13))
    ink = np.asarray(picture, np.float32)
    lines = Image.new("L", picture.size, 0)
    d = ImageDraw.Draw(lines)
    if kind == "comb":
        d.rectangle([4, 10, 4 + cell * n, 10 + cell], outline=255, width=2)
        for i in range(1, n):
            d.line([(4 + i * cell, 10), (4 + i * cell, 10 + cell)], fill=255, width=2)
    else:
        d.line([(0, 10 + cell - 4), (picture.width - 1, 10 + cell - 4)], fill=255, width=2)
    ink = np.maximum(ink, np.asarray(lines, np.float32) * 0.7)
    return Image.fromarray((235 - 0.8 * ink).astype(np.uint8))


@pytest.mark.mnist
@pytest.mark.skipif(not shipped_weights().is_file(), reason="run `make weights`")
@pytest.mark.parametrize("kind", ["comb", "line"])
def test_a_number_written_in_a_comb_or_on_a_line_is_read(
        kind: str, engine: TorchEngine, mnist_test: tuple[torch.Tensor, torch.Tensor]) -> None:
    """Until stop 46 a comb's dividers were read as 1s ("127" as "11217") and an underline joined the digits."""
    pixels, labels = mnist_test
    picks = [int(np.flatnonzero(labels.numpy() == d)[3]) for d in (3, 8, 5)]
    reading = read_picture(engine, form([pixels[k].numpy() for k in picks], kind))
    assert reading.number == "385", (reading.number, reading.reason)


def test_predict_reads_a_digit_written_on_a_line() -> None:
    """`to_mnist` takes the heaviest piece of ink for the digit: until stop 46, the line under it."""
    from digitlab.data.images import to_mnist

    def picture(line: bool) -> np.ndarray:
        paper = Image.new("L", (160, 200), 225)
        d = ImageDraw.Draw(paper)
        d.line([(90, 40), (70, 160)], fill=30, width=5)  # a 1, a little slanted
        if line:
            d.line([(0, 175), (159, 176)], fill=60, width=4)
        return np.asarray(paper, np.float32) / 255

    diff = np.abs(to_mnist(picture(True)).astype(int) - to_mnist(picture(False)).astype(int))
    assert diff.mean() < 3, diff.mean()


def test_a_shadow_along_a_wide_blank_sheet_is_no_rule() -> None:
    """A band 27 px thick along a 123 x 347 picture was thin for its longer side: its erasure cut a sliver off the
    shadow and that was read as a 1 (stop 46, development blanks). Thickness is judged against the shorter side."""
    from digitlab.ruled import find_rules

    mask = np.zeros((123, 347), bool)
    mask[96:123, :] = True
    assert find_rules(mask) is None
    mask[96:99, :] = True  # a printed line 3 px thick is still a rule
    mask[99:, :] = False
    assert find_rules(mask) is not None


def test_the_bar_of_a_4_cut_tight_is_no_rule() -> None:
    """The bar of a 4 cut tight spans its picture and reaches past the arm and the stem; the stem it crosses is
    cut in two by it. Judged against the tallest half, it passed for a rule and the 4 was read blank or as 11
    (stop 46: 4 of 1,800 development photos cut tight); the writing is as tall as all of it together."""
    from digitlab.ruled import find_rules

    mask = np.zeros((60, 48), bool)
    mask[35:38, :] = True  # the bar
    for y in range(35):
        x = 14 - round(6 * y / 35)
        mask[y, x : x + 3] = True  # the arm, leaning
    mask[:, 34:37] = True  # the stem
    assert find_rules(mask) is None


def test_one_digit_on_ruled_paper_cut_to_its_cell() -> None:
    """Ruled paper cut to one digit: the lines span only the digit's cell. The line above it was never a rule, and
    the line below was kept too, for the blurred specks another line leaves at the picture's edge (stop 47:
    development photos of one digit on ruled paper, 39 of 50 read)."""
    from digitlab.ruled import find_rules

    mask = np.zeros((150, 60), bool)
    mask[20:22, 1:] = True  # the line above
    mask[110:112, 1:] = True  # the line below
    mask[20, 0] = mask[111, 0] = mask[146, 0] = True  # a line's blurred end at the edge; the next line's
    yy, xx = np.mgrid[0:150, 0:60]
    ring = ((yy - 70) / 30) ** 2 + ((xx - 30) / 25) ** 2
    mask |= (ring > 0.7) & (ring < 1.0)  # a 0 between them, nearly as wide as the cell
    rules = find_rules(mask)
    assert rules is not None
    assert rules[20:22, 5:55].all() and rules[110:112, 5:55].all()
    assert not rules[40:100].any()  # the 0 stays whole


def test_the_detached_bar_of_a_7_cut_tight_stays() -> None:
    """A run above the writing, apart from it, from edge to edge is a ruled line when there is paper above it; the
    detached bar of a 7 cut tight to its ink lies at the picture's top."""
    from digitlab.ruled import find_rules

    mask = np.zeros((80, 50), bool)
    mask[0:5, :] = True
    for y in range(12, 80):
        x = 46 - round(30 * (y - 12) / 68)
        mask[y, x : x + 4] = True
    assert find_rules(mask) is None


def test_a_faint_line_broken_into_dashes_is_a_rule() -> None:
    """A light ruled line is dashes in the ink mask, each shorter than the run the search opened the mask with."""
    from digitlab.ruled import find_rules

    mask = np.zeros((100, 300), bool)
    for x in range(0, 300, 6):
        mask[90:92, x : x + 3] = True  # 3 px of line, 3 px of paper
    mask[20:85, 100:104] = True  # a 1 above it
    yy, xx = np.mgrid[0:100, 0:300]
    ring = ((yy - 52) / 32) ** 2 + ((xx - 200) / 20) ** 2
    mask |= (ring > 0.75) & (ring < 1.0)  # a 0
    rules = find_rules(mask)
    assert rules is not None and rules[90:92].sum() >= 0.9 * mask[90:92].sum()
    assert not rules[:88].any()


def test_the_bracket_under_one_digit_is_erased() -> None:
    """One digit's cell on a form: a line under it and a tick rising at each end, the ticks taller than TICK allows
    between digits. Until stop 47 the ticks were writing that reached the line, so nothing was erased."""
    from digitlab.ruled import find_rules

    mask = np.zeros((100, 90), bool)
    mask[90:93, 5:85] = True  # the line
    mask[58:93, 5:8] = True  # the ticks, 35 px: 0.7 of the digit
    mask[58:93, 82:85] = True
    yy, xx = np.mgrid[0:100, 0:90]
    ring = ((yy - 58) / 25) ** 2 + ((xx - 45) / 16) ** 2
    mask |= (ring > 0.7) & (ring < 1.0)  # a 0, 50 px tall, apart from the line
    rules = find_rules(mask)
    assert rules is not None
    assert rules[90:93, 20:70].all() and rules[60:88, 5:8].all() and rules[60:88, 82:85].all()
    assert not rules[:, 25:65][:85].any()


def stroke(mask: np.ndarray, points: list[tuple[int, int]], width: int = 3) -> None:
    """Ink `mask` (True) along the polyline `points` (row, column), `width` px square."""
    for (y0, x0), (y1, x1) in zip(points, points[1:], strict=False):
        for t in np.linspace(0, 1, 4 * max(abs(y1 - y0), abs(x1 - x0), 1)):
            y, x = round(y0 + t * (y1 - y0)), round(x0 + t * (x1 - x0))
            mask[y : y + width, x : x + width] = True


def test_a_line_one_pixel_under_the_digit_is_a_rule() -> None:
    """`to_mnist` looks for rules on a copy reduced to 96 px: a digit written 2 px above the line there ends 1 px
    above it, and the line's pixels under its foot counted as writing below the digit (stop 48: `predict` on one
    digit on ruled paper, 39 of 50 development photos)."""
    from digitlab.ruled import find_rules

    mask = np.zeros((69, 22), bool)
    mask[22:24] = mask[68] = True  # the lines above and far below
    stroke(mask, [(28, 11), (30, 16), (34, 12), (40, 17), (41, 6)])  # a 3
    mask[45] = True  # the line it is written on, its second row broken under the 3's foot
    mask[46, :6] = mask[46, 11:] = True
    rules = find_rules(mask)
    assert rules is not None and rules[45, :3].all() and rules[45, 20:].all()  # kept only under the 3's foot
    assert not rules[26:44].any()  # the 3 stays whole


def test_a_line_a_digit_stands_on_is_a_rule_in_step_with_the_others() -> None:
    """Ruled paper cut to one cell, the digit as wide as the cell and standing on its line: that line is no longer
    than the digit is wide, nor reaches past it, but it is evenly spaced with the lines above and below."""
    from digitlab.ruled import find_rules

    mask = np.zeros((90, 30), bool)
    mask[27] = mask[88] = True
    mask[57:59, 1:] = True
    stroke(mask, [(39, 8), (39, 25), (55, 16)])  # a 7, its stem down to the line
    rules = find_rules(mask)
    assert rules is not None and rules[57, 2:14].all() and rules[57, 22:29].all()  # kept under the stem
    assert not rules[38:56].any()
    # Not in step (the line below 12 px under it, the one above 30 px over it), it stays writing.
    close = np.zeros((90, 30), bool)
    close[27] = close[70] = True
    close[57:59, 1:] = True
    stroke(close, [(39, 8), (39, 25), (55, 16)])
    found = find_rules(close)
    assert found is None or not found[57:59].any()


def test_a_faint_line_with_3_px_gaps_on_a_narrow_mask_is_a_rule() -> None:
    """On `to_mnist`'s reduced copy of a narrow strip, a faint line breaks with gaps of 3 px; the search for dashed
    lines closed gaps of 1 px there (stop 48)."""
    from digitlab.ruled import find_rules

    mask = np.zeros((60, 21), bool)
    mask[18] = mask[57] = True
    stroke(mask, [(25, 14), (35, 3)])  # a 1
    mask[38, :5] = mask[38, 8:] = True
    rules = find_rules(mask)
    assert rules is not None and rules[38, 9:].all()
    assert not rules[24:37].any()
