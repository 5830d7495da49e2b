"""A number's minus sign (`digitlab.sign`): "-5" is read as -5; a 7's bar, grain, a bar after the number or two bars
are no minus; in the API the sign has its box."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image, ImageDraw

from digitlab.engine import TorchEngine, load_engine
from digitlab.models import shipped_weights
from digitlab.read import read_picture
from digitlab.segment import Layout, Piece
from digitlab.serve.app import create_app
from digitlab.sign import find_minus

DIGITS = [(20, 40, 60, 100), (80, 40, 120, 100)]  # two digits 60 px tall, strokes 8 px


def layout_with(*bars: tuple[tuple[int, int, int, int], float]) -> tuple[Layout, list[Piece]]:
    """Two solid digit blocks and `bars` ((box, ink strength)) on a 140x160 picture, as `segment` lays it out."""
    ink = np.zeros((140, 160), np.float32)
    pieces = []
    for x0, y0, x1, y1 in DIGITS:
        ink[y0:y1, x0:x1] = 1.0
        pieces.append(Piece((x0, y0, x1, y1), np.ones((y1 - y0, x1 - x0), bool)))
    for (x0, y0, x1, y1), strength in bars:
        ink[y0:y1, x0:x1] = strength
    return Layout(ink, 1.0 - ink, 1.0, (160, 140), [], [], stroke=8.0), pieces


def test_a_bar_before_the_number_at_its_middle_is_a_minus() -> None:
    minus = (0, 66, 17, 73)
    assert find_minus(*layout_with((minus, 1.0))) == minus
    assert find_minus(*layout_with()) is None
    assert find_minus(*layout_with((minus, 0.3))) is None  # as faint as the paper's grain
    assert find_minus(*layout_with(((0, 40, 17, 47), 1.0))) is None  # at the top: a 7's bar not joined to its stem
    assert find_minus(*layout_with(((130, 66, 150, 73), 1.0))) is None  # after the number
    assert find_minus(*layout_with(((0, 66, 17, 73), 1.0), ((0, 80, 17, 87), 1.0))) is None  # two bars: an "="
    assert find_minus(*layout_with(((14, 66, 18, 73), 1.0))) is None  # a speck, no bar


@pytest.fixture(scope="module")
def engine() -> TorchEngine:
    return load_engine(None, "torch")


def written(mnist: tuple[torch.Tensor, torch.Tensor], text: str, scale: int = 4) -> Image.Image:
    """`text` ("-" and digits) written with the first MNIST test image of each digit, 8 px apart, the minus a bar
    with the same pen (3 px at MNIST's size) at the digits' mid-height. Dark ink on light paper, `scale` times
    MNIST's size."""
    pixels, labels = mnist
    first = {d: pixels[int((labels == d).nonzero()[0])].numpy() for d in range(10)}
    ink = np.zeros((28 + 16, 8 + sum(28 + 8 if c.isdigit() else 20 for c in text)), np.float32)
    canvas = Image.new("L", ink.shape[::-1], 0)
    x = 8
    for c in text:
        if c == "-":
            ImageDraw.Draw(canvas).line([(x - 2, 22), (x + 12, 22)], fill=255, width=3)
            x += 20
        else:
            ink[8:36, x : x + 28] = first[int(c)] / 255.0
            x += 28 + 8
    ink = np.maximum(ink, np.asarray(canvas, np.float32) / 255.0)
    image = Image.fromarray((235 - 200 * ink).astype(np.uint8))
    return image.resize((image.width * scale, image.height * scale), Image.Resampling.BICUBIC)


@pytest.mark.mnist
@pytest.mark.skipif(not shipped_weights().is_file(), reason="run `make weights`")
@pytest.mark.parametrize("text", ["-5", "-42", "-907", "42"])
def test_a_negative_number_is_read_with_its_sign(engine: TorchEngine, text: str,
                                                 mnist_test: tuple[torch.Tensor, torch.Tensor]) -> None:
    """Until stop 50 "-5" was read as "5" at 0.999."""
    reading = read_picture(engine, written(mnist_test, text))
    assert (reading.number, reading.reason) == (text, None)
    assert [d.label for d in reading.digits] == [int(c) for c in text if c.isdigit()]
    assert (reading.minus is not None) == text.startswith("-")
    if reading.minus is not None:
        _, y0, x1, y1 = reading.minus
        left, top, _, bottom = reading.digits[0].box
        assert x1 <= left and top < y0 < y1 < bottom  # before the first digit, inside its height


@pytest.mark.mnist
@pytest.mark.skipif(not shipped_weights().is_file(), reason="run `make weights`")
def test_the_api_answers_the_sign_with_its_box(real_model: Path, mnist_test: tuple[torch.Tensor, torch.Tensor]
                                               ) -> None:
    buffer = io.BytesIO()
    written(mnist_test, "-42").save(buffer, format="PNG")
    with TestClient(create_app(real_model)) as client:
        body = client.post("/api/read", files={"file": ("n.png", buffer.getvalue(), "image/png")}).json()
    assert body["number"] == "-42" and [d["label"] for d in body["digits"]] == [4, 2]
    assert len(body["minus"]) == 4 and body["minus"][2] <= body["digits"][0]["box"][0]
