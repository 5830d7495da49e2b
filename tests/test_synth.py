"""digitlab.synth: made-up photos of numbers (MNIST test digits) and of non-digits, and `read` on easy ones."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from digitlab.engine import TorchEngine
from digitlab.models import load_model, shipped_weights
from digitlab.read import read_pictures
from digitlab.synth import NON_DIGIT_KINDS, non_digit_photo, number_photo


@pytest.fixture(scope="module")
def mnist(mnist_test: tuple[torch.Tensor, torch.Tensor]) -> tuple[np.ndarray, np.ndarray]:
    # A subset keeps the per-test label lookups cheap; every digit is in it.
    return mnist_test[0][:2000].numpy(), mnist_test[1][:2000].numpy()


def _image(photo: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(photo))
    image.load()
    return image


@pytest.mark.mnist
def test_same_seed_same_bytes(mnist: tuple[np.ndarray, np.ndarray]) -> None:
    assert number_photo(mnist, 3, 5) == number_photo(mnist, 3, 5)
    assert number_photo(mnist, 3, 5) != number_photo(mnist, 4, 5)
    assert non_digit_photo(3) == non_digit_photo(3)
    assert non_digit_photo(3, "letters") != non_digit_photo(4, "letters")


@pytest.mark.mnist
def test_numbers_have_the_length_and_labels_asked(mnist: tuple[np.ndarray, np.ndarray]) -> None:
    for length in range(1, 9):
        photo, number = number_photo(mnist, length, length)
        assert len(number) == length and number.isdigit()
        image = _image(photo)
        assert image.format in ("PNG", "JPEG") and image.width > image.height / 2
    assert number_photo(mnist, 0, 4, text="0071")[1] == "0071"
    # Random numbers start with 0 about one time in ten.
    firsts = [number_photo(mnist, np.random.default_rng(k), 2)[1][0] for k in range(60)]
    assert "0" in firsts and len(set(firsts)) >= 6
    with pytest.raises(ValueError):
        number_photo(mnist, 0, 3, text="12a")


@pytest.mark.mnist
def test_text_picks_digits_with_those_labels(mnist: tuple[np.ndarray, np.ndarray]) -> None:
    # Each seed picks other writers' images of the same digits (that they are those digits is checked by
    # reading them, in test_read_gets_easy_three_digit_numbers).
    a, b = number_photo(mnist, 1, 3, text="305", easy=True), number_photo(mnist, 2, 3, text="305", easy=True)
    assert a[1] == b[1] == "305" and a[0] != b[0]
    # `picks` names the images drawn, so a benchmark can ask how the model reads each digit alone.
    info: dict = {}
    _, number = number_photo(mnist, 5, 4, info=info)
    assert "".join(str(int(mnist[1][k])) for k in info["picks"]) == number


def test_every_non_digit_kind_is_made() -> None:
    made = {non_digit_photo(k)[1] for k in range(80)}
    assert made == set(NON_DIGIT_KINDS)
    for kind in NON_DIGIT_KINDS:
        photo, got = non_digit_photo(7, kind)
        assert got == kind and _image(photo).width >= 80
    blank = np.asarray(_image(non_digit_photo(1, "blank")[0]).convert("L"), np.float32)
    letters = np.asarray(_image(non_digit_photo(1, "letters")[0]).convert("L"), np.float32)
    assert blank.std() < letters.std()  # paper only, no ink
    with pytest.raises(ValueError):
        non_digit_photo(0, "cat")


@pytest.mark.mnist
@pytest.mark.skipif(not shipped_weights().is_file(), reason="run `make weights`")
def test_read_gets_easy_three_digit_numbers(mnist: tuple[np.ndarray, np.ndarray]) -> None:
    made = [number_photo(mnist, 50 + k, 3, easy=True) for k in range(10)]
    readings = read_pictures(TorchEngine(load_model(None)[0]), [photo for photo, _ in made])
    right = sum(r.number == number for r, (_, number) in zip(readings, made, strict=True))
    assert right >= 8, [(r.number, number) for r, (_, number) in zip(readings, made, strict=True)]
