"""Dotted paper (`digitlab.dots`): its dots are found as a lattice and erased; specks and dotted lines are not."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw
from scipy import ndimage

from digitlab.data.images import to_mnist
from digitlab.dots import lattice_dots
from digitlab.engine import TorchEngine, load_engine
from digitlab.models import shipped_weights
from digitlab.predict import predict_proba
from digitlab.read import read_picture
from digitlab.ruled import find_rules


def dotted(shape: tuple[int, int], step: int, *, turn: float = 0.0, size: int = 3, skip: float = 0.0,
           seed: int = 0) -> np.ndarray:
    """A mask of dotted paper: `size`-px dots every `step` px, the lattice turned by `turn` radians, a share `skip`
    of its dots left out (where a photo's light lost them)."""
    H, W = shape
    mask = np.zeros(shape, bool)
    g = np.random.default_rng(seed)
    c, s = np.cos(turn), np.sin(turn)
    for i in range(-H // step - 2, 2 * H // step + 2):
        for j in range(-W // step - 2, 2 * W // step + 2):
            y, x = 5 + i * step * c + j * step * s, 5 + j * step * c - i * step * s
            if 0 <= y < H - size and 0 <= x < W - size and g.random() >= skip:
                mask[round(y) : round(y) + size, round(x) : round(x) + size] = True
    return mask


def seven(shape: tuple[int, int]) -> np.ndarray:
    """A 7, 4 px strokes, across the middle of the picture."""
    mask = np.zeros(shape, bool)
    H, W = shape
    top, bottom, left, right = H // 4, 3 * H // 4, W // 2 - H // 5, W // 2 + H // 5
    mask[top : top + 4, left:right] = True
    for y in range(top, bottom):
        x = right - round((right - left) * 0.6 * (y - top) / (bottom - top))
        mask[y, x - 2 : x + 2] = True
    return mask


@pytest.mark.parametrize(("turn", "skip"), [(0.0, 0.0), (0.06, 0.0), (-0.04, 0.2)])
def test_dots_are_found_and_erased_and_the_digit_stays(turn: float, skip: float) -> None:
    """Square to the picture, turned by 3.4 degrees, or turned with a fifth of the dots lost."""
    shape = (110, 160)
    dots, digit = dotted(shape, 18, turn=turn, skip=skip), seven(shape)
    found = lattice_dots(dots | digit, 8)
    assert found is not None
    assert not (found & digit).any()
    # Every dot apart from the 7 goes; those the 7 runs over or touches are part of its strokes.
    pieces, _ = ndimage.label(dots | digit, structure=np.ones((3, 3), bool))
    apart = dots & ~np.isin(pieces, np.unique(pieces[digit]))
    assert (found & apart).sum() == apart.sum()
    erase = find_rules(dots | digit)
    assert erase is not None and not (erase & digit).any() and (erase & apart).sum() == apart.sum()


def test_specks_a_dotted_line_or_a_few_dots_are_no_lattice() -> None:
    """Grain (specks anywhere), one row of dots (an ellipsis, a dotted line to write on) and five dots in a row and a
    column are not dotted paper; nor is a texture of dots as big as their gaps."""
    g = np.random.default_rng(1)
    grain = g.random((120, 160)) > 0.995
    assert lattice_dots(grain | seven((120, 160)), 8) is None
    row = np.zeros((60, 200), bool)
    for x in range(10, 190, 12):
        row[40:43, x : x + 3] = True
    assert lattice_dots(row, 8) is None
    few = np.zeros((80, 80), bool)
    for y, x in ((10, 10), (10, 30), (10, 50), (30, 10), (50, 10)):
        few[y : y + 3, x : x + 3] = True
    assert lattice_dots(few, 8) is None
    assert lattice_dots(dotted((100, 100), 6, size=3), 8) is None


def dotted_picture(digits: list[np.ndarray], cell: int = 60, step: int = 16, level: float = 0.5) -> Image.Image:
    """MNIST digits written one to a 60-px cell on dotted paper (3-px dots `level` as dark as the ink), dark on
    light, with paper around them."""
    n, margin = len(digits), 30
    W, H = cell * n + 2 * margin, cell + 2 * margin
    picture = Image.new("L", (W, H), 0)
    for i, digit in enumerate(digits):
        written = Image.fromarray(digit).resize((cell, cell), Image.Resampling.BILINEAR)
        picture.paste(written, (margin + i * cell, margin))
    ink = np.asarray(picture, np.float32)
    dots = Image.new("L", (W, H), 0)
    draw = ImageDraw.Draw(dots)
    for y in range(4, H, step):
        for x in range(4, W, step):
            draw.ellipse([x - 1, y - 1, x + 1, y + 1], fill=255)
    ink = np.maximum(ink, np.asarray(dots, np.float32) * level)
    return Image.fromarray((235 - 0.8 * ink).astype(np.uint8))


@pytest.fixture(scope="module")
def engine() -> TorchEngine:
    return load_engine(None, "torch")


@pytest.mark.mnist
@pytest.mark.skipif(not shipped_weights().is_file(), reason="run `make weights`")
def test_one_digit_on_dotted_paper_is_predicted_and_a_number_read(
        engine: TorchEngine, mnist_test: tuple[torch.Tensor, torch.Tensor]) -> None:
    """Until stop 50 `to_mnist` grew the digit with the dots around it, one after another, and shrank it inside a box
    of dots: `predict` read 30 of 50 development photos of one digit on dotted paper right."""
    pixels, labels = mnist_test
    picks = {d: int(np.flatnonzero(labels.numpy() == d)[3]) for d in range(10)}
    pictures = [dotted_picture([pixels[picks[d]].numpy()]) for d in range(10)]
    crops = torch.from_numpy(np.stack([to_mnist(p) for p in pictures]))
    assert predict_proba(engine, crops).argmax(1).tolist() == list(range(10))
    reading = read_picture(engine, dotted_picture([pixels[picks[d]].numpy() for d in (3, 0, 8)]))
    assert reading.number == "308", (reading.number, reading.reason)
