"""The command line end to end: every command's happy path, and bad input -> one `error:` line, exit 2."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from digitlab.cli import main
from digitlab.data import kaggle
from tests.conftest import MNIST, synthetic_digits
from tests.test_data import as_jpeg, photographed


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "digitlab", *args], capture_output=True, text=True, timeout=300)


def assert_one_line_error(result: subprocess.CompletedProcess, fragment: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], result.stderr
    assert "Traceback" not in result.stderr


@pytest.fixture(scope="module")
def kaggle_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small Kaggle-format competition folder cut from real MNIST: train.csv (3,000) and test.csv (500)."""
    from digitlab.data import load

    folder = tmp_path_factory.mktemp("kaggle")
    train, test = load(MNIST, "train"), load(MNIST, "test")
    kaggle.write_kaggle_csv(folder / "train.csv", train.images[:3000], train.labels[:3000])
    kaggle.write_kaggle_csv(folder / "test.csv", test.images[:500], None)
    return folder


@pytest.mark.mnist
def test_kaggle_round_trip(kaggle_files: Path, tmp_path: Path) -> None:
    """Train on a train.csv, predict its test.csv: a valid Kaggle submission."""
    assert main(["train", "--data", str(kaggle_files / "train.csv"), "--epochs", "2", "--out",
                 str(tmp_path / "run"), "--quiet", "--val-size", "300", "--batch-size", "32"]) == 0
    submission = tmp_path / "submission.csv"
    assert main(["predict", str(kaggle_files / "test.csv"), "--model", str(tmp_path / "run"),
                 "--output", str(submission)]) == 0
    rows = list(csv.reader(submission.open()))
    assert rows[0] == ["ImageId", "Label"] and len(rows) == 501
    assert [int(r[0]) for r in rows[1:]] == list(range(1, 501))
    from digitlab.data import load

    truth = load(MNIST, "test").labels[:500].numpy()
    assert (np.array([int(r[1]) for r in rows[1:]]) == truth).mean() > 0.9
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["test_accuracy"] > 0.9  # a held-out part of train.csv


@pytest.mark.mnist
def test_evaluate_json_and_table(tiny_model: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["evaluate", "--model", str(tiny_model), "--data", str(MNIST), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n"] == 10000 and 0.9 < result["accuracy"] <= 1
    assert sum(map(sum, result["confusion"])) == 10000
    assert main(["evaluate", "--model", str(tiny_model), "--data", str(MNIST)]) == 0
    out = capsys.readouterr().out
    assert "precision" in out and "confusion matrix" in out


@pytest.mark.mnist
def test_predict_images_and_folders(tiny_model: Path, tmp_path: Path, mnist_test, capsys) -> None:
    pixels, labels = mnist_test
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(6):
        (folder / f"d{i}.jpg").write_bytes(as_jpeg(photographed(pixels[i].numpy(), i)))
    Image.fromarray(255 - pixels[6].numpy()).convert("RGBA").save(tmp_path / "single.png")
    out = tmp_path / "pred.csv"
    assert main(["predict", str(folder), str(tmp_path / "single.png"), "--model", str(tiny_model),
                 "--output", str(out), "--top-k", "2"]) == 0
    rows = list(csv.DictReader(out.open()))
    assert list(rows[0]) == ["file", "label", "confidence", "label_2", "confidence_2", "reason"]
    assert len(rows) == 7
    # A refused photo (digitlab.refuse) has an empty label: it counts as wrong here.
    assert sum(r["label"] == str(int(labels[i])) for i, r in enumerate(rows)) >= 6
    assert all(0 <= float(r["confidence"]) <= 1 for r in rows)
    assert main(["predict", str(tmp_path / "single.png"), "--model", str(tiny_model)]) == 0
    assert capsys.readouterr().out.startswith("file,label,confidence,reason\n")


def test_data_info_and_convert(synthetic_idx: Path, tmp_path: Path, capsys) -> None:
    assert main(["data", "info", str(synthetic_idx)]) == 0
    out = capsys.readouterr().out
    assert "train" in out and "600" in out and "sha256" in out
    csv_path = tmp_path / "train.csv"
    assert main(["data", "convert", str(synthetic_idx), str(csv_path)]) == 0
    assert main(["data", "convert", str(csv_path), str(tmp_path / "png"), "--to", "png"]) == 0
    assert main(["data", "convert", str(tmp_path / "png"), str(tmp_path / "idx"), "--to", "idx"]) == 0
    from digitlab.data import load

    original, back = load(synthetic_idx, "train"), load(tmp_path / "idx", "train")
    order = np.argsort(back.labels.numpy(), kind="stable")
    assert sorted(back.labels.tolist()) == sorted(original.labels.tolist())
    assert len(list((tmp_path / "png" / "train").rglob("*.png"))) == 600
    assert back.images.shape == original.images.shape and order.size == 600


def test_convert_png_round_trip_is_lossless(tmp_path: Path) -> None:
    images, labels = synthetic_digits(30)
    kaggle.write_kaggle_csv(tmp_path / "train.csv", images, labels)
    assert main(["data", "convert", str(tmp_path / "train.csv"), str(tmp_path / "png")]) == 0
    assert main(["data", "convert", str(tmp_path / "png"), str(tmp_path / "again.csv")]) == 0
    from digitlab.data import load

    again = load(tmp_path / "again.csv", "train")
    pairs = {(int(lab), img.numpy().tobytes()) for img, lab in zip(images, labels, strict=True)}
    assert {(int(lab), img.numpy().tobytes()) for img, lab in zip(again.images, again.labels, strict=True)} == pairs


# -- bad input: one line, exit 2, nothing half-written ----------------------------------------------------


def test_bad_input_errors(tmp_path: Path, tiny_model: Path) -> None:
    bad_csv = tmp_path / "test.csv"
    bad_csv.write_text(kaggle.TEST_HEADER + "\n" + ",".join(["0"] * 783) + "\n")
    output = tmp_path / "out.csv"
    cases = [
        (["predict", str(bad_csv), "--model", str(tiny_model), "-o", str(output)], "expected 784"),
        (["predict", str(tmp_path / "missing.png"), "--model", str(tiny_model)], "no such file"),
        (["evaluate", "--model", str(tmp_path / "nomodel")], "no such model"),
        (["train", "--data", str(tmp_path / "nothing"), "--out", str(tmp_path / "r")], "no such file"),
        (["train", "--epochs", "0", "--out", str(tmp_path / "r")], "--epochs"),
    ]
    (tmp_path / "fake.png").write_bytes(b"\x89PNG but not really")
    cases.append((["predict", str(tmp_path / "fake.png"), "--model", str(tiny_model), "-o", str(output)],
                  "not a readable image"))
    (tmp_path / "weights.safetensors").write_bytes(b"{}")
    cases.append((["evaluate", "--model", str(tmp_path / "weights.safetensors")], "not a safetensors"))
    (tmp_path / "bad-idx").mkdir()
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", "train-images-idx3-ubyte",
                 "train-labels-idx1-ubyte"):
        (tmp_path / "bad-idx" / name).write_bytes(b"\x00\x00\x09\x03" + bytes(20))
    cases.append((["evaluate", "--model", str(tiny_model), "--data", str(tmp_path / "bad-idx")], "wrong magic"))
    for args, fragment in cases:
        assert_one_line_error(run_cli(*args), fragment)
    assert not output.exists() and not list(tmp_path.glob(".*.tmp"))


def test_huge_image_is_refused(tmp_path: Path, tiny_model: Path) -> None:
    Image.new("L", (9000, 9000), 255).save(tmp_path / "huge.png")
    assert_one_line_error(run_cli("predict", str(tmp_path / "huge.png"), "--model", str(tiny_model)), "too large")


RUN = """
import atexit, sys
atexit.register(lambda: print("interpreter torn down", file=sys.stderr))
sys.argv = ["digitlab", *sys.argv[1:]]
from digitlab.cli import run
run()
"""


def test_the_command_leaves_without_teardown_but_with_all_its_output(synthetic_idx: Path, tmp_path: Path) -> None:
    """`digitlab` exits with os._exit once main() returns (teardown was ~0.5 s of every command), so the
    output streams must be flushed first: into a file, as well as a pipe, everything arrives, and the exit
    code is main()'s."""
    out = tmp_path / "out.txt"
    with out.open("w") as fh:
        ok = subprocess.run([sys.executable, "-c", RUN, "data", "info", str(synthetic_idx)], stdout=fh,
                            stderr=subprocess.PIPE, text=True, timeout=120)
    assert ok.returncode == 0 and "interpreter torn down" not in ok.stderr
    printed = out.read_text()
    assert "600" in printed and "sha256" in printed and printed.endswith("\n")
    bad = subprocess.run([sys.executable, "-c", RUN, "predict", str(tmp_path / "missing.png")],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "interpreter torn down" not in bad.stderr
