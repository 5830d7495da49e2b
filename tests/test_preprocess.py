"""to_mnist keeps every stroke (issue 11, item 1): one test per kind of picture, built from MNIST test digits.

Each case (benchmarks/preprocess_cases.py) writes MNIST test digits as the files a user has; the shipped strong
model must read them through open_image -> to_mnist as well as it reads MNIST. The digits are spread over the
test set and the cases are seeded, so the results are fixed.

    PREPROCESS=legacy pytest tests/test_preprocess.py   # the same tests against the pre-issue-11 to_mnist
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from benchmarks.preprocess_cases import CASES, pictures
from digitlab.data import images
from digitlab.models import shipped_weights

pytestmark = [pytest.mark.mnist,
              pytest.mark.skipif(not shipped_weights("strong").is_file(), reason="run `make weights-strong`")]

if os.environ.get("PREPROCESS") == "legacy":
    from benchmarks import legacy_preprocess as preprocessing
else:
    preprocessing = images

N = 40  # digits per case; N_BIG for the 1000x750 photos, which take longer to make
N_BIG = 20


@pytest.fixture(scope="module")
def engine():
    from digitlab.engine import load_engine

    return load_engine(["strong"], "torch", "cpu")


@pytest.fixture(scope="module")
def digits(mnist_test: tuple[torch.Tensor, torch.Tensor]) -> tuple[np.ndarray, np.ndarray]:
    pixels, labels = mnist_test
    pick = np.linspace(0, len(pixels) - 1, N).astype(int)
    return pixels[pick].numpy(), labels[pick].numpy()


@pytest.mark.parametrize("case", list(CASES))
def test_case_is_read_like_mnist(case: str, engine, digits: tuple[np.ndarray, np.ndarray]) -> None:
    n = N_BIG if case == "small_on_photo" else N
    files = pictures(case, digits[0][:n])
    prepared = np.stack([preprocessing.to_mnist(preprocessing.open_image(f)) for f in files])
    assert prepared.shape == (n, 28, 28) and prepared.dtype == np.uint8
    predicted = engine.logits(prepared).argmax(1).numpy()
    wrong = np.nonzero(predicted != digits[1][:n])[0]
    # The strong model gets these digits 100% right as MNIST gives them; allow one miss in 20.
    assert len(wrong) <= n // 20, f"{case}: {len(wrong)}/{n} wrong, digits {wrong.tolist()}"


def test_tiny_scans_are_scaled_up_before_the_ink_is_found(engine, mnist_test: tuple[torch.Tensor, torch.Tensor]
                                                          ) -> None:
    """8x8 files as the UCI optical digits store them: a stroke is a pixel or less. More digits than the
    other cases, since the misses are a few percent either way (the old path: 16 of 200, this one: 9)."""
    pixels, labels = mnist_test
    pick = np.linspace(0, len(pixels) - 1, 200).astype(int)
    files = pictures("tiny_scan", pixels[pick].numpy())
    prepared = np.stack([preprocessing.to_mnist(preprocessing.open_image(f)) for f in files])
    wrong = int((engine.logits(prepared).argmax(1).numpy() != labels[pick].numpy()).sum())
    assert wrong <= 12, f"{wrong}/200 wrong"


def test_28x28_is_only_inverted(digits: tuple[np.ndarray, np.ndarray]) -> None:
    digit = digits[0][0]
    assert (preprocessing.to_mnist(Image.fromarray(digit)) == digit).all()
    assert (preprocessing.to_mnist(Image.fromarray(255 - digit)) == digit).all()


def test_predict_save_inputs_writes_what_the_model_saw(tmp_path: Path, digits: tuple[np.ndarray, np.ndarray]
                                                       ) -> None:
    inputs = tmp_path / "in"
    (inputs / "a").mkdir(parents=True)
    (inputs / "b").mkdir()
    files = pictures("thick_marker", digits[0][:3])
    for k, target in enumerate([inputs / "a" / "one.png", inputs / "a" / "two.png", inputs / "b" / "one.png"]):
        target.write_bytes(files[k])
    out = tmp_path / "seen"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    result = subprocess.run([sys.executable, "-m", "digitlab", "predict", str(inputs), "--model", "strong",
                             "--engine", "torch", "--save-inputs", str(out)], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    saved = sorted(p.name for p in out.iterdir())
    assert len(saved) == 3 and "two.png" in saved and "one.png" in saved, saved  # no input overwrote another
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files left behind
    seen = np.asarray(Image.open(out / "two.png"))
    np.testing.assert_array_equal(seen, images.to_mnist(images.open_image(files[1])))
    labels = [line.split(",")[1] for line in result.stdout.splitlines()[1:]]
    assert labels[1] == str(digits[1][1])

    from digitlab.cli import main

    (tmp_path / "file").write_text("x")
    assert main(["predict", str(inputs), "--model", "strong", "--save-inputs", str(tmp_path / "file")]) == 2
