"""`digitlab train` on bad data: one error line, exit 2, and the file system exactly as it was (issue 14, item 2).

Each case is a whole `digitlab train` process, as a user meets it.
"""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from digitlab.data import kaggle
from tests.conftest import synthetic_digits

IMAGES = "train-images-idx3-ubyte.gz"


def run_train(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "digitlab", "train", *args], capture_output=True, text=True,
                          timeout=300)


def assert_refused(result: subprocess.CompletedProcess, fragment: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], result.stderr


def snapshot(folder: Path) -> dict[str, object]:
    """Every path under `folder` with its bytes, and the folder's own modification time."""
    files = {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None) for p in folder.rglob("*")}
    return {"files": files, "mtime": folder.stat().st_mtime_ns}


def bad_label_csv(folder: Path) -> Path:
    images, labels = synthetic_digits(300)
    labels[7] = 12
    path = folder / "train.csv"
    kaggle.write_kaggle_csv(path, images, labels)
    return path


def bad_magic_idx(folder: Path) -> Path:
    data = bytearray(gzip.decompress((folder / IMAGES).read_bytes()))
    data[:4] = b"\x00\x00\x09\x03"
    (folder / IMAGES).write_bytes(gzip.compress(bytes(data)))
    return folder


def truncated_idx(folder: Path) -> Path:
    data = gzip.decompress((folder / IMAGES).read_bytes())
    (folder / IMAGES).write_bytes(gzip.compress(data[: len(data) // 2]))
    return folder


CASES = {
    "label 12 in a train.csv": (bad_label_csv, "label 12 is not a digit"),
    "IDX with a wrong magic number": (bad_magic_idx, "wrong magic number"),
    "truncated IDX": (truncated_idx, IMAGES.removesuffix(".gz")),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_data_creates_no_run_folder(case: str, synthetic_idx: Path, tmp_path: Path) -> None:
    make, fragment = CASES[case]
    data = make(synthetic_idx)
    out = tmp_path / "runs" / "new"
    assert_refused(run_train("--data", str(data), "--out", str(out), "--epochs", "1"), fragment)
    assert not (tmp_path / "runs").exists()  # not even the parent the run folder would have gone in


def test_bad_data_leaves_a_resume_folder_untouched(synthetic_idx: Path, tmp_path: Path) -> None:
    """A stopped run whose data has since gone bad: --resume refuses it and changes nothing in the folder."""
    data = tmp_path / "data"
    shutil.copytree(synthetic_idx, data)
    run = tmp_path / "run"
    run.mkdir()
    stored = {"data": str(data), "arch": "tutorial", "out": str(run), "epochs": 3, "batch_size": 64, "lr": 3e-3,
              "augment": False, "label_smoothing": 0.0, "handwriting": False, "val_size": 100}
    (run / "train-config.json").write_text(json.dumps(stored, indent=2))
    (run / "ckpt-00000008.safetensors").write_bytes(np.arange(64, dtype=np.uint8).tobytes())
    (run / "loss.png").write_bytes(b"not really a png, and it must stay so")
    truncated_idx(data)
    before = snapshot(run)
    assert_refused(run_train("--out", str(run), "--resume"), IMAGES.removesuffix(".gz"))
    assert snapshot(run) == before
