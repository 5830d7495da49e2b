"""digitlab.read and `digitlab read`: the number in a picture, with the shipped model on real MNIST digits."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from digitlab.data.images import to_mnist
from digitlab.engine import TorchEngine, load_engine
from digitlab.models import shipped_weights
from digitlab.read import Reading, read_picture, read_pictures
from tests.test_data import as_jpeg
from tests.test_segment import number_picture, strokes

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(not shipped_weights().is_file(), reason="run `make weights`")


@pytest.fixture(scope="module")
def engine() -> TorchEngine:
    return load_engine(None, "torch")  # the shipped model with its temperature, as `digitlab read` loads it


def digits_of(mnist: tuple[torch.Tensor, torch.Tensor], text: str, seed: int = 0) -> list[np.ndarray]:
    """One MNIST test image for each character of `text`, chosen at random among that digit's images."""
    pixels, labels = mnist
    g = np.random.default_rng(seed)
    return [pixels[g.choice(np.flatnonzero(labels.numpy() == int(c)))].numpy() for c in text]


@pytest.mark.mnist
def test_reads_numbers_left_to_right(engine: TorchEngine, mnist_test: tuple[torch.Tensor, torch.Tensor]) -> None:
    g = np.random.default_rng(1)
    texts = ["".join(map(str, g.integers(0, 10, g.integers(2, 5)))) for _ in range(24)]
    pictures = [number_picture(digits_of(mnist_test, t, k), [int(g.integers(3, 10)) for _ in t[1:]],
                               drift=float(g.uniform(-0.1, 0.1)), sizes=list(g.uniform(0.85, 1.15, len(t))), seed=k)
                for k, t in enumerate(texts)]
    readings = read_pictures(engine, pictures)
    right = sum(r.number == t for r, t in zip(readings, texts, strict=True))
    # 21-23 of these 24 are read right (the benchmark measures accuracy; this catches a broken reader).
    assert right >= 20, [(r.number, t) for r, t in zip(readings, texts, strict=True) if r.number != t]
    # The batch reads each picture as it would be read alone.
    assert read_picture(engine, pictures[0]).number == readings[0].number


@pytest.mark.mnist
def test_leading_zeros_are_kept(engine: TorchEngine, mnist_test: tuple[torch.Tensor, torch.Tensor]) -> None:
    reading = read_picture(engine, number_picture(digits_of(mnist_test, "007"), [6, 6]))
    assert reading.number == "007" and reading.reason is None
    assert [d.label for d in reading.digits] == [0, 0, 7]
    boxes = [d.box for d in reading.digits]
    assert boxes == sorted(boxes) and all(a[2] <= b[0] for a, b in zip(boxes, boxes[1:], strict=False))


@pytest.mark.mnist
def test_a_reading_can_be_judged_at_another_operating_point(engine: TorchEngine,
                                                            mnist_test: tuple[torch.Tensor, torch.Tensor]) -> None:
    """What benchmarks/read_development.py --quantiles does: one reading, judged at other verdict thresholds."""
    from digitlab.read import _reading, found
    from digitlab.verdict import shipped

    f = found(engine, [number_picture(digits_of(mnist_test, "27"), [6])])[0]
    weights, thresholds = shipped()
    assert _reading(f, False).number == _reading(f, False, (weights, thresholds)).number == "27"
    refused = _reading(f, False, (weights, thresholds + 1e3))
    assert refused.number == "" and refused.reason == "not a digit"
    assert _reading(f, True, (weights, thresholds + 1e3)).number == "27"  # --accept-all never asks


@pytest.mark.mnist
def test_touching_digits_are_split(engine: TorchEngine, mnist_test: tuple[torch.Tensor, torch.Tensor]) -> None:
    # Twenty pairs of consecutive test digits pressed together (their ink boxes overlap by a pixel): a single
    # pair depends on the model's reading of one cut, so the check is on the share read right (20/20 with
    # the shipped strong model when written).
    pixels, labels = mnist_test[0].numpy(), mnist_test[1].numpy()
    wrong = []
    for a in range(0, 40, 2):
        reading = read_picture(engine, number_picture([pixels[a], pixels[a + 1]], [-1]))
        if reading.number != f"{labels[a]}{labels[a + 1]}":
            wrong.append((f"{labels[a]}{labels[a + 1]}", reading.number))
    assert len(wrong) <= 2, wrong


@pytest.mark.mnist
def test_numbers_under_a_shadow_keep_dark_ink(engine: TorchEngine, mnist_test: tuple[torch.Tensor, torch.Tensor]
                                              ) -> None:
    """A hand's shadow over much of the sheet puts two levels of paper on the border; their median can lie
    nearer the ink than the paper. These five photos (digitlab.synth, a development seed: all such among its
    600) were taken for light ink on dark paper and read 54, 28321, 189, 211918, 342111 (data/images.py's
    _Ink._dark_ink)."""
    from digitlab.synth import number_photo

    mnist = tuple(t.numpy() for t in mnist_test)
    wrong = []
    for key in ([7, 2, 37], [7, 3, 96], [7, 3, 51], [7, 5, 76], [7, 5, 83]):
        info: dict = {}
        photo, number = number_photo(mnist, np.random.default_rng(key), key[1], info=info)
        assert info["shadow"] and not info["inverted"]
        reading = read_picture(engine, Image.open(io.BytesIO(photo)), accept_all=True)
        if reading.number != number:
            wrong.append((number, reading.number))
    assert len(wrong) <= 1, wrong


def test_pieces_of_one_digit_are_merged(engine: TorchEngine) -> None:
    five = strokes([[(70, 40), (130, 40)],  # the top bar of a 5, drawn apart from the body
                    [(70, 55), (66, 95), (100, 88), (126, 105), (124, 140), (96, 158), (66, 148)]], width=10)
    assert read_picture(engine, five).number == "5"
    four = strokes([[(60, 40), (50, 110), (130, 110)], [(115, 50), (112, 170)]], width=10)  # a 4 in two strokes
    assert read_picture(engine, four).number == "4"


@pytest.mark.mnist
def test_broken_pencil_line_is_one_digit(engine: TorchEngine, mnist_test: tuple[torch.Tensor, torch.Tensor]) -> None:
    right = 0
    digits = digits_of(mnist_test, "0235689", seed=3)
    for digit, text in zip(digits, "0235689", strict=True):
        broken = digit.copy()
        rows = np.flatnonzero(broken.max(1) > 0)
        middle = rows[len(rows) // 2]
        broken[middle : middle + 1] = 0  # a gap across the whole digit, a stroke's width at 3x
        right += read_picture(engine, number_picture([broken], [])).number == text
    assert right >= 6


def test_blank_photos_that_once_read_as_digits_read_as_nothing(engine: TorchEngine) -> None:
    """Two of benchmarks/read_numbers.py's blank photos (seed 101) that read "1" and "2": grainy, blotchy
    paper taken for a page of faint specks, and a shadow's corner taken for a digit."""
    from digitlab.synth import non_digit_photo

    for k in (22, 24):
        photo, _ = non_digit_photo(np.random.default_rng([101, 100, k]), "blank")
        reading = read_picture(engine, Image.open(io.BytesIO(photo)))
        assert reading.number == "" and reading.reason in ("blank", "not a digit"), (k, reading.number)


def test_blank_pictures_read_as_nothing(engine: TorchEngine) -> None:
    g = np.random.default_rng(0)
    paper = Image.fromarray(np.clip(190 + 30 * np.linspace(0, 1, 400)[None] + g.normal(0, 4, (300, 400)), 0, 255)
                            .astype(np.uint8))
    for picture in (Image.new("L", (280, 280), 255), paper, Image.open(io.BytesIO(as_jpeg(paper)))):
        for accept_all in (False, True):
            reading = read_picture(engine, picture, accept_all=accept_all)
            assert (reading.number, reading.reason, reading.digits) == ("", "blank", [])


@pytest.mark.mnist
def test_mnist_sized_picture_reads_as_predict_does(engine: TorchEngine,
                                                   mnist_test: tuple[torch.Tensor, torch.Tensor]) -> None:
    pixels, labels = mnist_test[0][:50].numpy(), mnist_test[1][:50].numpy()
    readings = read_pictures(engine, list(pixels), accept_all=True)
    predicted = engine.logits(np.stack([to_mnist(p) for p in pixels])).argmax(1).numpy()
    assert [r.number for r in readings] == [str(p) for p in predicted]
    assert np.mean([r.number == str(t) for r, t in zip(readings, labels, strict=True)]) >= 0.96


@pytest.mark.mnist
def test_a_digit_cut_tight_to_its_ink_reads_as_predict_reads_it(engine: TorchEngine,
                                                                mnist_test: tuple[torch.Tensor, torch.Tensor]
                                                                ) -> None:
    """MNIST digits cropped to their ink (it touches every side) and scaled up, as a user crops a photo. Until
    stop 44 `read` called nearly all of them blank (the rules for a shadow along the border took the digit for
    one), while `predict` read them."""
    pixels, labels = mnist_test[0][:40].numpy(), mnist_test[1][:40].numpy()
    pictures = []
    for digit in pixels:
        ys, xs = np.nonzero(digit > 30)
        crop = Image.fromarray(255 - digit[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1])
        pictures.append(crop.resize((crop.width * 4, crop.height * 4), Image.Resampling.BILINEAR))
    readings = read_pictures(engine, pictures)
    right = [r.number == str(t) for r, t in zip(readings, labels, strict=True)]
    predicted = engine.logits(np.stack([to_mnist(p) for p in pictures])).argmax(1).numpy()
    assert sum(right) >= sum(predicted == labels) - 2, [(r.number, r.reason, int(t)) for r, t in
                                                          zip(readings, labels, strict=True)]


@pytest.mark.mnist
def test_a_number_on_a_sheet_on_a_table_is_read(engine: TorchEngine,
                                               mnist_test: tuple[torch.Tensor, torch.Tensor]) -> None:
    """The table all around the sheet once made the paper read as ink ("not a digit"); only the sheet is read."""
    from tests.test_sheet import on_table

    sheet = np.asarray(number_picture(digits_of(mnist_test, "407"), [6, 8]), np.float32)
    h, w = sheet.shape
    for tone in (50, 110):
        picture = Image.fromarray(on_table(sheet, (w // 8, h // 6, w // 8 + w, h // 6 + h), tone))
        reading = read_picture(engine, picture)
        assert (reading.number, reading.reason) == ("407", None), (tone, reading.number, reading.reason)
        assert all(d.box[0] >= w // 8 for d in reading.digits)  # boxes in the photo's pixels


def test_reading_to_json(engine: TorchEngine) -> None:
    reading = read_picture(engine, strokes([[(100, 30), (100, 170)]]))
    assert isinstance(reading, Reading) and reading.number == "1"
    data = json.loads(json.dumps(reading.to_json()))
    assert set(data) == {"number", "confidence", "reason", "digits", "minus", "marks"} and data["minus"] is None
    digit = data["digits"][0]
    assert digit["label"] == 1 and len(digit["probabilities"]) == 10 and digit["reason"] is None
    x0, y0, x1, y1 = digit["box"]
    assert 90 <= x0 < 100 < x1 <= 110 and 20 <= y0 < 40 and 160 < y1 <= 180


# ------------------------------------------------------------------------------------ the command


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run([sys.executable, "-m", "digitlab", "read", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.mnist
def test_cli_reads_csv_and_json(tmp_path: Path, mnist_test: tuple[torch.Tensor, torch.Tensor],
                                monkeypatch: pytest.MonkeyPatch) -> None:
    number_picture(digits_of(mnist_test, "042"), [6, 6]).save(tmp_path / "a.png")
    Image.new("L", (200, 100), 255).save(tmp_path / "blank.jpg")
    done = run_cli("a.png", "blank.jpg", "--engine", "torch", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "file,number,confidence,reason"
    assert lines[1].startswith("a.png,042,") and lines[2].startswith("blank.jpg,,") and lines[2].endswith("blank")
    from digitlab.cli import main  # JSON in-process: one start of the interpreter per test is enough

    monkeypatch.chdir(tmp_path)
    assert main(["read", "a.png", "--json", "--output", "out.json", "--engine", "torch"]) == 0
    [entry] = json.loads((tmp_path / "out.json").read_text())
    assert entry["file"] == "a.png" and entry["number"] == "042"
    assert [d["label"] for d in entry["digits"]] == [0, 4, 2] and all(len(d["box"]) == 4 for d in entry["digits"])


def test_cli_bad_input_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    strokes([[(100, 30), (100, 170)]]).save(tmp_path / "one.png")
    (tmp_path / "text.png").write_text("not an image")
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "huge.png").write_bytes(as_png(Image.new("1", (8000, 6000))))
    done = run_cli("one.png", "text.png", "--output", "out.csv", cwd=tmp_path)  # once as a real process
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("error: ") and len(done.stderr.strip().splitlines()) == 1, done.stderr
    from digitlab.cli import main

    monkeypatch.chdir(tmp_path)
    for bad in ("empty.png", "huge.png", "missing.png", "text.png"):
        assert main(["read", "one.png", bad, "--output", "out.csv"]) == 2
        out, err = capsys.readouterr()
        assert out == "" and err.startswith(f"error: {bad}") and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out.csv").exists() and not list(tmp_path.glob(".out.csv*"))


def as_png(picture: Image.Image) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_dash_is_not_a_digit(engine: TorchEngine) -> None:
    """Scaled up to MNIST's 20 px, a dash is a blob the model calls 0 or 8: it is refused instead."""
    dash = strokes([[(40, 100), (160, 100)]])
    reading = read_picture(engine, dash)
    assert (reading.number, reading.reason) == ("", "not a digit")
    assert read_picture(engine, dash, accept_all=True).number != ""


# A thin pen's flagged or slanted 1 alone is refused today: both checks give it a margin of ~2 (a clean
# MNIST 1: 4-6) and the verdict asks more of a digit alone. Known, reported in the README (stop 32); strict,
# so that the day it is read this mark has to go.
THIN_ONES = pytest.mark.xfail(strict=True, reason="a thin pen's lone flagged or slanted 1 is refused (README)")


ONES = {"straight": [(100, 30), (100, 170)], "flag": [(85, 50), (100, 30), (100, 170)],
        "slanted": [(110, 30), (90, 170)], "short": [(100, 60), (100, 140)]}


@pytest.mark.parametrize(("kind", "width"), [
    pytest.param(kind, width, id=f"{kind}-{width}px",
                 marks=THIN_ONES if width == 4 and kind in ("flag", "slanted") else ())
    for kind in ONES for width in (4, 8, 14)])
def test_a_1_drawn_alone_is_read(engine: TorchEngine, kind: str, width: int) -> None:
    # The commonest 1 of all, one line, perhaps with a flag, alone on a 200x200 picture, pens 4-14 px wide
    # (the page's pen is ~1/12 of the pad's height). A not-a-digit check trained twice as long doubted the
    # straight one, and a verdict leaning on it refused it (stop 32, not shipped).
    assert read_picture(engine, strokes([ONES[kind]], width=width)).number == "1"


def test_numbers_drawn_with_a_ruler_straight_1_are_read(engine: TorchEngine) -> None:
    # A 1 drawn as one straight line beside other clean strokes, as on the page's canvas: the chain's checker,
    # trained without other pens, took such thin clean strokes for fragments and every reading was refused.
    one = [[(80, 30), (80, 170)]]
    zero = [[(160 + 35 * np.cos(t), 100 + 70 * np.sin(t)) for t in np.linspace(0, 2 * np.pi, 40)]]
    four = [[(175, 30), (140, 120), (220, 120)], [(200, 60), (200, 170)]]
    assert read_picture(engine, strokes(one + zero, size=(240, 200), width=16)).number == "10"
    assert read_picture(engine, strokes(one + four, size=(260, 200), width=16)).number == "14"
