"""Readers for IDX, Kaggle CSV and image files: round trips, and a clear DigitlabError for bad input."""

from __future__ import annotations

import gzip
import io
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image

from digitlab.data import Digits, idx, images, kaggle, load, load_labelled, resolve, split_validation
from digitlab.errors import DigitlabError
from tests.conftest import synthetic_digits

# -- IDX ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["x-images-idx3-ubyte", "x-images-idx3-ubyte.gz"])
def test_idx_round_trip_raw_and_gzip(tmp_path: Path, name: str) -> None:
    array = np.arange(3 * 28 * 28, dtype=np.uint32).astype(np.uint8).reshape(3, 28, 28)
    idx.write_idx(tmp_path / name, array)
    assert (idx.read_idx(tmp_path / name) == array).all()
    assert (tmp_path / name).read_bytes()[:2] == (b"\x1f\x8b" if name.endswith(".gz") else b"\x00\x00")


def test_idx_wrong_magic(tmp_path: Path) -> None:
    (tmp_path / "bad").write_bytes(b"\x12\x34\x56\x78" + bytes(100))
    with pytest.raises(DigitlabError, match="wrong magic"):
        idx.read_idx(tmp_path / "bad")


def test_idx_size_mismatch(tmp_path: Path) -> None:
    header = struct.pack(">HBBIII", 0, 8, 3, 10, 28, 28)
    (tmp_path / "short").write_bytes(header + bytes(28 * 28 * 9))
    with pytest.raises(DigitlabError, match="size mismatch"):
        idx.read_idx(tmp_path / "short")


def test_idx_truncated_gzip(tmp_path: Path) -> None:
    data = gzip.compress(struct.pack(">HBBI", 0, 8, 1, 1000) + bytes(1000))
    (tmp_path / "t.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(DigitlabError, match="corrupt or truncated"):
        idx.read_idx(tmp_path / "t.gz")


def test_idx_empty_and_missing(tmp_path: Path) -> None:
    (tmp_path / "empty").write_bytes(b"")
    with pytest.raises(DigitlabError, match="too short"):
        idx.read_idx(tmp_path / "empty")
    with pytest.raises(DigitlabError, match="no such file"):
        idx.read_idx(tmp_path / "missing")


def test_idx_split_checks_counts(tmp_path: Path) -> None:
    idx.write_idx(tmp_path / "train-images-idx3-ubyte.gz", np.zeros((5, 28, 28), np.uint8))
    idx.write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(4, np.uint8))
    with pytest.raises(DigitlabError, match="5 images but 4 labels"):
        idx.load_idx_split(tmp_path, "train")


@pytest.mark.mnist
def test_real_mnist_counts(mnist_dir: Path) -> None:
    train, test = load(mnist_dir, "train"), load(mnist_dir, "test")
    assert train.images.shape == (60000, 28, 28) and train.images.dtype == torch.uint8
    assert test.labels.bincount().tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


# -- Kaggle CSV --------------------------------------------------------------------------------------------


def write_csv(path: Path, rows: list[list[int]], labelled: bool = True) -> Path:
    header = kaggle.TRAIN_HEADER if labelled else kaggle.TEST_HEADER
    path.write_text(header + "\n" + "\n".join(",".join(map(str, r)) for r in rows) + "\n")
    return path


def test_kaggle_round_trip(tmp_path: Path) -> None:
    pixels, labels = synthetic_digits(50)
    kaggle.write_kaggle_csv(tmp_path / "train.csv", pixels, labels)
    kaggle.write_kaggle_csv(tmp_path / "test.csv", pixels, None)
    read_pixels, read_labels = kaggle.read_kaggle_csv(tmp_path / "train.csv")
    assert torch.equal(read_pixels, pixels) and torch.equal(read_labels, labels)
    test_pixels, none = kaggle.read_kaggle_csv(tmp_path / "test.csv")
    assert none is None and torch.equal(test_pixels, pixels)
    assert (tmp_path / "train.csv").read_text().startswith("label,pixel0,pixel1,")


@settings(max_examples=25, deadline=None)
@given(arrays(np.uint8, st.tuples(st.integers(1, 6), st.just(28), st.just(28))))
def test_kaggle_round_trip_property(tmp_path_factory: pytest.TempPathFactory, array: np.ndarray) -> None:
    path = tmp_path_factory.mktemp("csv") / "test.csv"
    kaggle.write_kaggle_csv(path, torch.from_numpy(array), None)
    assert (kaggle.read_kaggle_csv(path)[0].numpy() == array).all()


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ([1] + [0] * 783, "785"),                   # a column short
        ([1] + [0] * 783 + ["x"], "not a number"),   # non-numeric
        ([1] + [0] * 783 + [256], "0..255"),         # out of range
        ([1] + [0] * 783 + [-1], "0..255"),
        ([1] + [0] * 783 + [1.5], "0..255"),
        ([12] + [0] * 784, "not a digit"),
        ([1] + [0] * 783 + ["nan"], "not a number"),
    ],
)
def test_kaggle_bad_rows(tmp_path: Path, row: list, message: str) -> None:
    good = [3] + [0] * 784
    path = write_csv(tmp_path / "train.csv", [good, row])
    with pytest.raises(DigitlabError, match=message) as err:
        kaggle.read_kaggle_csv(path)
    assert "line 3" in str(err.value)


def test_kaggle_bad_files(tmp_path: Path) -> None:
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DigitlabError, match="empty file"):
        kaggle.read_kaggle_csv(tmp_path / "empty.csv")
    (tmp_path / "header.csv").write_text("a,b,c\n1,2,3\n")
    with pytest.raises(DigitlabError, match="header is not Kaggle's"):
        kaggle.read_kaggle_csv(tmp_path / "header.csv")
    (tmp_path / "norows.csv").write_text(kaggle.TEST_HEADER + "\n")
    with pytest.raises(DigitlabError, match="no data rows"):
        kaggle.read_kaggle_csv(tmp_path / "norows.csv")
    (tmp_path / "binary.csv").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(DigitlabError):
        kaggle.read_kaggle_csv(tmp_path / "binary.csv")


def test_truncated_kaggle_file(tmp_path: Path) -> None:
    pixels, labels = synthetic_digits(3)
    kaggle.write_kaggle_csv(tmp_path / "train.csv", pixels, labels)
    text = (tmp_path / "train.csv").read_text()
    (tmp_path / "cut.csv").write_text(text[: len(text) - 700])
    with pytest.raises(DigitlabError, match="columns, expected 785"):
        kaggle.read_kaggle_csv(tmp_path / "cut.csv")


def test_submission_format(tmp_path: Path) -> None:
    kaggle.write_submission(tmp_path / "s.csv", np.array([7, 2, 1]))
    assert (tmp_path / "s.csv").read_text() == "ImageId,Label\n1,7\n2,2\n3,1\n"


# -- images ------------------------------------------------------------------------------------------------


def photographed(digit: np.ndarray, seed: int, size: tuple[int, int] = (240, 320)) -> Image.Image:
    """An MNIST digit as a phone photo: dark ink on light, unevenly lit paper, small and off-centre."""
    g = np.random.default_rng(seed)
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w]
    paper = 200 + 40 * (xx / w) - 30 * (yy / h) + g.normal(0, 4, (h, w))
    scale = g.integers(3, 5)
    big = np.asarray(Image.fromarray(digit).resize((28 * scale, 28 * scale), Image.Resampling.BICUBIC), float)
    top, left = g.integers(5, h - 28 * scale - 5), g.integers(5, w - 28 * scale - 5)
    ink = np.zeros((h, w))
    ink[top : top + 28 * scale, left : left + 28 * scale] = big / 255
    photo = paper * (1 - 0.75 * ink)
    return Image.fromarray(np.clip(photo, 0, 255).astype(np.uint8)).convert("RGB")


def as_jpeg(image: Image.Image, quality: int = 80) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


@pytest.mark.mnist
def test_to_mnist_recovers_photographed_digits(mnist_test: tuple[torch.Tensor, torch.Tensor]) -> None:
    pixels = mnist_test[0][:40].numpy()
    correlations = []
    for i, digit in enumerate(pixels):
        recovered = images.to_mnist(images.open_image(as_jpeg(photographed(digit, i)))).astype(float)
        correlations.append(np.corrcoef(recovered.ravel(), digit.astype(float).ravel())[0, 1])
    # Re-cropping a photographed MNIST digit cannot give back its exact pixels, but it must come close.
    assert np.median(correlations) > 0.9 and min(correlations) > 0.5, np.round(correlations, 2)


def test_to_mnist_geometry() -> None:
    canvas = np.full((300, 200), 255, np.uint8)
    canvas[40:140, 20:60] = 0  # a dark bar, taller than wide, near the corner
    out = images.to_mnist(Image.fromarray(canvas))
    rows, cols = np.nonzero(out)
    assert rows.max() - rows.min() + 1 == 20  # longer side fitted to 20 px
    centre = np.array([(out.sum(1) * np.arange(28)).sum(), (out.sum(0) * np.arange(28)).sum()]) / out.sum()
    assert np.abs(centre - 13.5).max() <= 1.0
    assert out[0].max() == 0 and out.max() >= 240  # white ink on black


def test_to_mnist_transparent_strokes_and_blank() -> None:
    rgba = np.zeros((200, 200, 4), np.uint8)
    rgba[50:150, 95:105, 3] = 255  # black strokes on a transparent canvas
    out = images.to_mnist(Image.fromarray(rgba, "RGBA"))
    assert out.max() == 255 and out[:, :5].max() == 0
    assert images.to_mnist(Image.new("L", (100, 100), 255)).max() == 0


def test_to_mnist_keeps_28x28_and_fixes_polarity() -> None:
    digit = synthetic_digits(1)[0][0].numpy()
    assert (images.to_mnist(Image.fromarray(digit)) == digit).all()
    assert (images.to_mnist(Image.fromarray(255 - digit)) == digit).all()


def test_open_image_rejects_bad_input(tmp_path: Path) -> None:
    (tmp_path / "not.png").write_bytes(b"this is not an image")
    with pytest.raises(DigitlabError, match="not a readable image"):
        images.open_image(tmp_path / "not.png")
    with pytest.raises(DigitlabError, match="empty"):
        images.open_image(b"")
    with pytest.raises(DigitlabError, match="no such file"):
        images.open_image(tmp_path / "missing.png")
    # A decompression bomb: a tiny PNG that claims 20,000 x 20,000 pixels.
    buffer = io.BytesIO()
    Image.new("1", (20000, 20000)).save(buffer, format="PNG")
    assert len(buffer.getvalue()) < 200_000
    with pytest.raises(DigitlabError, match="too large|not a readable image"):
        images.open_image(buffer.getvalue())


def test_class_folder(tmp_path: Path) -> None:
    pixels, labels = synthetic_digits(20)
    for i, (p, lab) in enumerate(zip(pixels.numpy(), labels.tolist(), strict=True)):
        images.save_png(tmp_path / str(lab) / f"{i}.png", p)
    digits = load(tmp_path, "train")
    assert len(digits) == 20 and sorted(digits.labels.tolist()) == sorted(labels.tolist())
    assert load(tmp_path, "test") is None


# -- resolution and splits ---------------------------------------------------------------------------------


def test_resolution_order(tmp_path: Path, synthetic_idx: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve(synthetic_idx) == synthetic_idx
    monkeypatch.setenv("DIGITLAB_DATA", str(synthetic_idx))
    assert resolve(None) == synthetic_idx
    monkeypatch.delenv("DIGITLAB_DATA")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "mnist").symlink_to(synthetic_idx)
    assert resolve(None) == Path("data/mnist")
    with pytest.raises(DigitlabError, match="no such file or folder"):
        resolve(tmp_path / "nope")


def test_kaggle_csv_source_has_no_test_split(tmp_path: Path) -> None:
    pixels, labels = synthetic_digits(30)
    kaggle.write_kaggle_csv(tmp_path / "train.csv", pixels, labels)
    assert len(load(tmp_path / "train.csv", "train")) == 30
    assert load(tmp_path / "train.csv", "test") is None
    assert len(load(tmp_path, "train")) == 30  # a folder holding train.csv
    assert len(load_labelled(tmp_path / "train.csv")) == 30


def test_validation_split_is_seeded_and_disjoint() -> None:
    a_train, a_val = split_validation(100, 10, seed=3)
    b_train, b_val = split_validation(100, 10, seed=3)
    assert torch.equal(a_val, b_val) and len(a_val) == 10
    assert not set(a_train.tolist()) & set(a_val.tolist())
    assert not torch.equal(a_val, split_validation(100, 10, seed=4)[1])


def test_digits_subset() -> None:
    pixels, labels = synthetic_digits(5)
    sub = Digits(pixels, labels, "x", [str(i) for i in range(5)]).subset(torch.tensor([4, 0]))
    assert sub.names == ["4", "0"] and torch.equal(sub.labels, labels[[4, 0]])
