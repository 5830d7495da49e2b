"""The feedback folder: labelled samples on disk that `train --data` reads, written safely under concurrency."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest

from digitlab.data.images import load_class_folder
from digitlab.errors import DigitlabError
from digitlab.feedback import Correction, FeedbackFull, FeedbackStore, default_dir


def _digit(value: int) -> np.ndarray:
    pixels = np.zeros((28, 28), dtype=np.uint8)
    pixels[6:22, 10 + value % 5: 14 + value % 5] = 200 + value
    return pixels


def test_samples_form_an_image_folder_that_training_reads(tmp_path):
    store = FeedbackStore(tmp_path)
    ids = store.add([Correction(_digit(7), 7, predicted="1"), Correction(_digit(2), 2, predicted="2")],
                    model="strong", original=b"\x89PNG fake original")
    assert len(set(ids)) == 2
    images, labels, names = load_class_folder(tmp_path)
    assert sorted(labels.tolist()) == [2, 7]
    by_label = {int(lab): img.numpy() for img, lab in zip(images, labels, strict=True)}
    np.testing.assert_array_equal(by_label[7], _digit(7))
    np.testing.assert_array_equal(by_label[2], _digit(2))
    records = store.records()
    assert [r["corrected"] for r in records] == [7, 2]
    assert records[0]["predicted"] == "1" and records[0]["model"] == "strong"
    assert (tmp_path / records[0]["original"]).read_bytes() == b"\x89PNG fake original"
    assert store.counts()["total"] == 2 and store.counts()["7"] == 1


@pytest.mark.parametrize("label", [10, -1, "7", 7.0, True, None])
def test_a_bad_label_stores_nothing(tmp_path, label):
    store = FeedbackStore(tmp_path)
    with pytest.raises(DigitlabError):
        store.add([Correction(_digit(1), 1), Correction(_digit(3), label)], model="m", original=b"x")
    assert not any(tmp_path.rglob("*")), "a refused sample must leave no file behind"


def test_wrong_input_shape_is_refused(tmp_path):
    with pytest.raises(DigitlabError, match="28x28"):
        FeedbackStore(tmp_path).add([Correction(np.zeros((28, 27), np.uint8), 1)], model="m")


def test_count_limit(tmp_path):
    store = FeedbackStore(tmp_path, max_samples=3)
    store.add([Correction(_digit(1), 1), Correction(_digit(2), 2)], model="m")
    with pytest.raises(FeedbackFull):
        store.add([Correction(_digit(3), 3), Correction(_digit(4), 4)], model="m")
    assert store.counts()["total"] == 2
    # A store opened later counts what is already on disk.
    assert FeedbackStore(tmp_path, max_samples=3).counts()["total"] == 2


def test_concurrent_corrections_all_land_whole(tmp_path):
    store = FeedbackStore(tmp_path)
    errors: list[BaseException] = []

    def worker(k: int) -> None:
        try:
            for _ in range(10):
                store.add([Correction(_digit(k), k)], model=f"m{k}", original=bytes([k]) * 100)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    records = store.records()
    assert len(records) == 80 and len({r["id"] for r in records}) == 80
    lines = (tmp_path / "feedback.jsonl").read_text().splitlines()
    assert all(json.loads(line)["id"] for line in lines)
    for r in records:
        assert (tmp_path / r["input"]).is_file()
    assert FeedbackStore(tmp_path).counts()["total"] == 80
    assert not list(tmp_path.rglob(".*.tmp")), "no temporary file may be left behind"


def test_default_dir_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert default_dir() == tmp_path / "digitlab" / "feedback"
