"""Other hands: the handwriting fonts' digits ship intact, split by family, and training adds them as asked."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from digitlab.config import TrainConfig
from digitlab.data import hands
from digitlab.data.splits import load_splits
from digitlab.errors import DigitlabError
from tests.conftest import MNIST


def test_shipped_digits_are_28x28_ink_on_black() -> None:
    images, names = hands.load()
    assert images.shape == (len(names), 10, 28, 28) and images.dtype == np.uint8
    assert len(set(names)) == len(names) >= 100
    # to_mnist's output: ink in the middle, a dark border, and ten different digits per font.
    assert images[..., 0, :].max() < 64 and images[..., :, 0].max() < 64
    assert (images.reshape(len(names), 10, -1).max(-1) > 150).all()
    assert all(len({d.tobytes() for d in font}) == 10 for font in images)


def test_families_fall_on_one_side_only() -> None:
    _, names = hands.load()
    side = {}
    for name in names:
        side.setdefault(hands.family(name), set()).add(hands.is_validation(name))
    assert all(len(s) == 1 for s in side.values())
    assert side["playwrite"] == {False}
    validation = [n for n in names if hands.is_validation(n)]
    assert 0.1 < len(validation) / len(names) < 0.3
    train, held = hands.split("train"), hands.split("validation")
    assert len(train) + len(held) == 10 * len(names)
    assert {n.split(":")[0] for n in train.names}.isdisjoint({n.split(":")[0] for n in held.names})
    assert train.labels[:10].tolist() == list(range(10))
    with pytest.raises(ValueError, match="which"):
        hands.split("test")


def test_distorted_copies_differ_but_keep_labels_and_repeat_with_the_seed() -> None:
    fonts = hands.split("validation")
    a, b = hands.distorted(fonts, 3, seed=1), hands.distorted(fonts, 3, seed=1)
    assert torch.equal(a.images, b.images) and len(a) == 3 * len(fonts)
    assert torch.equal(a.labels, fonts.labels.repeat(3))
    assert not torch.equal(a.images[: len(fonts)], a.images[len(fonts) : 2 * len(fonts)])
    assert not torch.equal(a.images, hands.distorted(fonts, 3, seed=2).images)
    # A distortion moves strokes by a pixel or two: most of the ink stays where it was.
    original, moved = fonts.images.float() / 255, a.images[: len(fonts)].float() / 255
    overlap = (original * moved).sum() / (original * original).sum()
    assert 0.5 < overlap < 0.98
    with pytest.raises(ValueError, match="copies"):
        hands.distorted(fonts, 0)


def test_pools_hold_one_font_each() -> None:
    pools = hands.pools("validation", 2, seed=0)
    fonts = hands.split("validation")
    assert len(pools) == len(fonts) // 10
    for f, (images, labels) in enumerate(pools[:3]):
        assert labels.tolist() == list(range(10)) * 2
        # The first copy of each digit is a distortion of that same font's digit, not another font's.
        same = [np.abs(images[d].astype(int) - fonts.images[10 * f + d].numpy()).mean() for d in range(10)]
        other = [np.abs(images[d].astype(int) - fonts.images[(10 * f + 10 + d) % len(fonts)].numpy()).mean()
                 for d in range(10)]
        assert np.mean(same) < np.mean(other)


def test_training_adds_the_training_fonts_after_the_validation_split() -> None:
    base = TrainConfig(data=str(MNIST), out="unused", limit=3000, val_size=300, seed=0, quiet=True)
    train0, val0, _ = load_splits(base, True)
    train2, val2, _ = load_splits(TrainConfig(**{**base.__dict__, "hands": 2}), True)
    kept = hands.split("train", unambiguous=True)
    assert len(train2) == len(train0) + 2 * len(kept)
    assert torch.equal(val0.images, val2.images)  # the held-out digits do not move
    assert torch.equal(train2.images[: len(train0)], train0.images)
    assert torch.equal(train2.labels[len(train0):], kept.labels.repeat(2))


def test_bad_hands_input_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "hands.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(DigitlabError, match="not a hands file"):
        hands.load(bad)
    np.savez(bad, images=np.zeros((2, 9, 28, 28), np.uint8), names=np.array(["a", "b"]))
    with pytest.raises(DigitlabError, match="expected"):
        hands.load(bad)
    run = subprocess.run([sys.executable, "-m", "digitlab", "train", "--hands", "-1", "--out", str(tmp_path / "r")],
                         capture_output=True, text=True)
    assert run.returncode == 2 and run.stderr.strip() == "error: --hands must be at least 0, got -1"
    assert not (tmp_path / "r").exists()


def test_render_and_build_from_a_font_file(tmp_path: Path) -> None:
    fonts = sorted(Path("/usr/share/fonts").rglob("*.ttf"))
    if not fonts:
        pytest.skip("no TrueType font on this machine")
    folder = tmp_path / "fonts"
    folder.mkdir()
    (folder / "some-hand.ttf").write_bytes(fonts[0].read_bytes())
    (folder / "notes.txt").write_text("not a font")
    names = hands.build(folder, tmp_path / "out.npz")
    images, stored = hands.load(tmp_path / "out.npz")
    assert names == stored == ["some-hand"] and images.shape == (1, 10, 28, 28)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DigitlabError, match="no font"):
        hands.build(empty, tmp_path / "none.npz")
    assert not (tmp_path / "none.npz").exists()


def test_a_missing_hands_file_says_where_it_comes_from(tmp_path: Path) -> None:
    with pytest.raises(DigitlabError, match="no such file .*data/hands"):
        hands.load(tmp_path / "absent.npz")


def test_training_leaves_out_the_listed_ambiguous_digits() -> None:
    listed = set(hands.AMBIGUOUS.read_text().split())
    every, kept = hands.split("train"), hands.split("train", unambiguous=True)
    assert listed and listed <= set(every.names)
    assert len(kept) == len(every) - len(listed) and listed.isdisjoint(kept.names)
    index = {n: k for k, n in enumerate(every.names)}
    for k, name in enumerate(kept.names[:50]):
        assert torch.equal(kept.images[k], every.images[index[name]]) and kept.labels[k] == int(name[-1])


def test_ambiguous_digits_are_those_an_mnist_model_misreads() -> None:
    # The tutorial model (MNIST only) misreads more of the fonts' digits than the list's model did, and every
    # digit it lists is one it reads as another digit, clean or distorted.
    listed = hands.ambiguous("tutorial", copies=2)
    assert 0 < len(listed) < len(hands.split("train")) / 2
    assert all(name.rsplit(":", 1)[1] in "0123456789" for name in listed)
    stricter = hands.ambiguous("tutorial", copies=2, share=0.0)
    assert set(listed) <= set(stricter)
