"""digitlab.sheet: the sheet of paper in a photo taken with the table around it, the box printed around a field."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from digitlab.data.images import to_mnist
from digitlab.segment import segment
from digitlab.sheet import find_field, find_sheet
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


def boxed(size: tuple[int, int], width: int, outside: int = 0) -> np.ndarray:
    """A 7 in a form's field: a box of `width` px printed `outside` px in from the picture's edges."""
    w, h = size
    field = Image.new("L", size, 235)
    draw = ImageDraw.Draw(field)
    draw.rectangle([outside, outside, w - 1 - outside, h - 1 - outside], outline=30, width=width)
    draw.line([(0.43 * w, 0.25 * h), (0.63 * w, 0.25 * h), (0.5 * w, 0.8 * h)], fill=20, width=max(3, w // 30))
    return np.asarray(field, np.float32)


@pytest.mark.parametrize(("size", "width", "outside"), [((300, 200), 2, 0), ((200, 200), 2, 0), ((200, 200), 6, 0),
                                                        ((120, 120), 3, 0), ((300, 200), 3, 12), ((640, 160), 4, 5)])
def test_a_box_printed_around_the_field_is_found(size: tuple[int, int], width: int, outside: int) -> None:
    box = find_field(boxed(size, width, outside) / 255)
    inside = (outside + width, outside + width, size[0] - outside - width, size[1] - outside - width)
    assert box is not None
    assert all(0 <= (b - i) * sign <= 3 for b, i, sign in zip(box, inside, (1, 1, -1, -1), strict=True)), (box, inside)


def test_pictures_without_a_printed_box_have_none() -> None:
    """A digit cut tight, a big round 0 drawn on a canvas, ruled notebook lines, a shadow: no box."""
    tight = Image.new("L", (120, 200), 235)  # a 7 whose bar runs along the top and whose stem reaches the bottom
    ImageDraw.Draw(tight).line([(0, 4), (119, 4), (40, 199)], fill=20, width=9)
    canvas = Image.new("L", (280, 280), 0)
    ImageDraw.Draw(canvas).ellipse([8, 8, 272, 272], outline=255, width=14)
    ruled = Image.new("L", (300, 200), 235)
    for y in (10, 60, 110, 160, 190):
        ImageDraw.Draw(ruled).line([(0, y), (299, y)], fill=120, width=2)
    ImageDraw.Draw(ruled).line([(130, 50), (190, 50), (150, 160)], fill=20, width=9)
    shadowed = seven() * np.linspace(1.0, 0.4, 300)[None]
    for picture in (tight, canvas, ruled, shadowed, seven()):
        assert find_field(np.asarray(picture, np.float32) / 255) is None


@pytest.mark.parametrize(("size", "width"), [((300, 200), 2), ((200, 200), 2), ((200, 200), 6)])
def test_a_digit_in_a_printed_box_is_read_and_predicted_alone(size: tuple[int, int], width: int) -> None:
    """Until stop 45 the box was the heaviest stroke for `to_mnist`, or turned the polarity for `segment`."""
    picture = boxed(size, width)
    plain = np.array(picture)
    plain[np.abs(plain - 30) < 1] = 235  # the same field without its box
    w = size[0]
    layout = segment(Image.fromarray(picture.astype(np.uint8)))
    assert runs_covering(layout, round(0.43 * w), round(0.63 * w)), [layout.input_box(s) for s in layout.slices]
    assert all(layout.input_box(s)[0] >= 0.4 * w and layout.input_box(s)[2] <= 0.67 * w for s in layout.slices)
    diff = np.abs(to_mnist(picture / 255).astype(int) - to_mnist(plain / 255).astype(int))
    assert diff.mean() < 3, diff.mean()


def test_predict_reads_a_digit_on_a_sheet_on_a_table() -> None:
    """Until stop 45 only `read` looked for the sheet: `to_mnist` took the bright paper for ink."""
    picture = on_table(seven(), (30, 24, 330, 244), tone=60)
    diff = np.abs(to_mnist(picture.astype(np.float32) / 255).astype(int) - to_mnist(seven() / 255).astype(int))
    assert diff.mean() < 3, diff.mean()


@pytest.mark.mnist
def test_a_frame_filling_0_is_not_a_printed_box(mnist_test: tuple[torch.Tensor, torch.Tensor]) -> None:
    """A 0 scanned at low resolution (robustness' low_resolution, MNIST test digit 25) fills its picture with
    blocky, nearly straight sides: a first form of find_box took them for a printed box. Its lines are thick
    for the picture; a printed box's are thin."""
    from digitlab.data.images import _to_gray, open_image
    from digitlab.robustness_families import picture

    zero = _to_gray(open_image(picture("low_resolution", 1, mnist_test[0][25].numpy(), 0, 25)))
    assert int(mnist_test[1][25]) == 0
    assert find_field(zero) is None
    assert find_field(boxed((200, 200), 3) / 255) is not None


@pytest.mark.parametrize(("size", "width", "shadow"), [((300, 200), 2, False), ((120, 120), 3, True),
                                                         ((640, 160), 4, True)])
def test_an_empty_printed_box_is_blank(size: tuple[int, int], width: int, shadow: bool) -> None:
    """Until stop 46 an empty box was read whole: `predict` took its lines, or the paper inside, for a digit."""
    from digitlab.sheet import locate_field

    w, h = size
    field = Image.new("L", size, 235)
    ImageDraw.Draw(field).rectangle([0, 0, w - 1, h - 1], outline=30, width=width)
    picture = np.asarray(field, np.float32)
    if shadow:  # a soft shadow across a corner of the field, fainter than the printed lines
        ys, xs = np.mgrid[0:h, 0:w]
        picture = picture - 60 * np.clip(1.2 - (xs / w + ys / h), 0, 1)
    assert locate_field(picture / 255).empty
    assert not to_mnist(picture / 255).any()
    assert segment(Image.fromarray(np.clip(picture, 0, 255).astype(np.uint8))).candidates == []
    assert not locate_field(boxed(size, width) / 255).empty  # with a 7 written in it


@pytest.mark.parametrize(("size", "width", "pencil"), [((300, 200), 2, 170), ((120, 120), 3, 190),
                                                         ((640, 160), 4, 180)])
def test_a_pencil_digit_in_a_box_printed_black_is_not_empty(size: tuple[int, int], width: int, pencil: int) -> None:
    """Until stop 47 a field was empty unless something in it was half as dark as the box's lines: a pencil 7 in a
    box printed black was read blank."""
    from digitlab.sheet import locate_field

    w, h = size
    g = np.random.default_rng(3)
    field = Image.new("L", size, 235)
    draw = ImageDraw.Draw(field)
    draw.rectangle([0, 0, w - 1, h - 1], outline=30, width=width)
    picture = np.asarray(field, np.float32) + g.normal(0, 4, (h, w))  # the paper's grain
    empty = np.clip(picture, 0, 255) / 255
    draw.line([(0.43 * w, 0.25 * h), (0.63 * w, 0.25 * h), (0.5 * w, 0.8 * h)], fill=pencil, width=max(3, w // 40))
    written = np.clip(np.asarray(field, np.float32) + g.normal(0, 4, (h, w)), 0, 255) / 255
    assert locate_field(empty).empty
    assert not locate_field(written).empty
    assert to_mnist(written).astype(bool).sum() > 40
    layout = segment(Image.fromarray(np.rint(written * 255).astype(np.uint8)))
    assert runs_covering(layout, round(0.43 * w), round(0.63 * w)), [layout.input_box(s) for s in layout.slices]


@pytest.mark.parametrize(("size", "width", "outside"), [((58, 64), 6, 3), ((80, 69), 6, 3), ((52, 48), 4, 2)])
def test_a_bold_box_on_a_small_picture_is_found(size: tuple[int, int], width: int, outside: int) -> None:
    """Until stop 48 a printed line had to be under 5% of the picture's longer side: a box printed 6 px wide around
    a 60 px field was ink, and `predict` read 141 of 306 such development photos as a digit."""
    from PIL import ImageFilter

    from digitlab.sheet import locate_field

    w, h = size
    field = Image.new("L", size, 225)
    ImageDraw.Draw(field).rectangle([outside, outside, w - 1 - outside, h - 1 - outside], outline=40, width=width)
    empty = np.asarray(field.filter(ImageFilter.GaussianBlur(0.8)), np.float32) / 255
    assert locate_field(empty).boxed and locate_field(empty).empty
    assert not to_mnist(empty).any()
    assert segment(Image.fromarray(np.rint(empty * 255).astype(np.uint8))).candidates == []
    ImageDraw.Draw(field).line([(0.4 * w, 0.3 * h), (0.6 * w, 0.3 * h), (0.48 * w, 0.75 * h)], fill=30,
                               width=max(3, min(w, h) // 12))
    written = np.asarray(field.filter(ImageFilter.GaussianBlur(0.8)), np.float32) / 255
    found = locate_field(written)
    assert found.boxed and not found.empty
    assert found.box[0] >= outside + width and found.box[2] <= w - outside - width, found.box


def test_a_fat_0_cut_tight_and_a_sheet_on_a_table_are_no_bold_box() -> None:
    """The bold line of stop 48 is looked for only dark on light and where no sheet is seen: a 0 whose stroke is
    most of its picture turns the polarity (its paper at the edges is then a thick "line"), and a table's margin
    is as thick, straight and unbroken as a bold line."""
    from PIL import ImageFilter

    from digitlab.sheet import locate_field

    zero = Image.new("L", (48, 57), 225)
    ImageDraw.Draw(zero).ellipse([1, 1, 46, 55], outline=30, width=14)
    zero = np.asarray(zero.filter(ImageFilter.GaussianBlur(1.0)), np.float32) / 255
    assert np.median(zero) < 0.5  # more stroke than paper
    assert not locate_field(zero).boxed
    picture = on_table(seven(), (24, 18, 324, 238), tone=60)
    found = locate_field(picture.astype(np.float32) / 255)
    assert not found.boxed and found.box is not None


@pytest.mark.parametrize("seed", [91, 266])
def test_a_bold_box_photographed_in_uneven_light_is_found(seed: int) -> None:
    """A bright patch of light on a photographed field can tip the picture's levels to "light on dark"; the bold
    look is made dark on light whatever they say (stop 48: predict took 61 -> 37 of 4,000 development empty boxes
    for a digit)."""
    from digitlab import synth
    from digitlab.data.images import open_image
    from digitlab.segment import gray_of
    from digitlab.sheet import locate_field

    frame = Image.new("L", (64, 60), 0)
    ImageDraw.Draw(frame).rectangle([0, 0, 63, 59], outline=204, width=5)
    photo = open_image(synth.photo_of(np.asarray(frame, np.float32) / 255, np.random.default_rng(seed)))
    found = locate_field(gray_of(photo)[0])
    assert found.boxed and found.empty
    assert not to_mnist(photo).any()
