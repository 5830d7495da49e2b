"""Digits in memory: every source (MNIST IDX, Kaggle CSV, image folders) becomes uint8 tensors once.

`--data` resolution, in order: an explicit path -> `$DIGITLAB_DATA` -> `./data/mnist` -> the download
cache (filled from public mirrors with sha256 checks). An explicit path may be
  - an MNIST folder (train-/t10k- IDX files, gzip'd or raw),
  - a Kaggle `train.csv` / `test.csv`, or a folder holding them,
  - an image folder with subfolders 0..9 (optionally under train/ and test/, as `data convert` writes).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from digitlab.data import download, idx, kaggle
from digitlab.errors import DigitlabError


@dataclass
class Digits:
    images: torch.Tensor           # (N, 28, 28) uint8, white ink on black like MNIST
    labels: torch.Tensor | None    # (N,) int64, or None for unlabelled data such as Kaggle's test.csv
    source: str = ""
    names: list[str] | None = None

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, index: torch.Tensor) -> Digits:
        names = [self.names[i] for i in index.tolist()] if self.names is not None else None
        labels = self.labels[index] if self.labels is not None else None
        return Digits(self.images[index], labels, self.source, names)


def resolve(path: str | os.PathLike | None, fetch: bool = True) -> Path:
    """Where the data lives: explicit path, $DIGITLAB_DATA, ./data/mnist, or the download cache."""
    if path is not None:
        resolved = Path(path)
        if not resolved.exists():
            raise DigitlabError(f"{resolved}: no such file or folder")
        return resolved
    env = os.environ.get("DIGITLAB_DATA")
    if env:
        return resolve(env)
    local = Path("data/mnist")
    if idx.has_idx(local, "train"):
        return local
    cached = download.cache_dir()
    if idx.has_idx(cached, "train") and idx.has_idx(cached, "test"):
        return cached
    if not fetch:
        raise DigitlabError("no MNIST data found; pass --data or set $DIGITLAB_DATA")
    return download.download_mnist(cached)


def load(path: str | os.PathLike | None, split: str) -> Digits | None:
    """One split ('train' or 'test') of the data at `path`; None when that source has no such split."""
    root = resolve(path)
    if root.is_file():
        if not kaggle.is_kaggle_csv(root):
            raise DigitlabError(f"{root}: expected an MNIST folder, a Kaggle .csv or an image folder")
        if split == "test":
            return None  # a single CSV is all training data; its test split is carved by the caller
        pixels, labels = kaggle.read_kaggle_csv(root)
        return Digits(pixels, labels, str(root))
    if idx.has_idx(root, split):
        pixels, labels = idx.load_idx_split(root, split)
        return Digits(pixels, labels, str(root))
    if idx.has_idx(root, "train") or idx.has_idx(root, "test"):
        return None
    if (root / "train.csv").is_file():
        if split == "test":
            return None
        return load(root / "train.csv", split)
    from digitlab.data import images  # PIL: only for image folders

    if images.is_class_folder(root / split):
        pixels, labels, names = images.load_class_folder(root / split)
        return Digits(pixels, labels, str(root / split), names)
    if images.is_class_folder(root):
        if split == "test":
            return None
        pixels, labels, names = images.load_class_folder(root)
        return Digits(pixels, labels, str(root), names)
    raise DigitlabError(
        f"{root}: not an MNIST folder, a Kaggle CSV or an image folder with subfolders 0..9"
    )


def load_labelled(path: str | os.PathLike | None) -> Digits:
    """The data to evaluate on: the test split where one exists, else the whole labelled source."""
    digits = load(path, "test") or load(path, "train")
    if digits is None or digits.labels is None:
        raise DigitlabError(f"{path}: no labelled digits to evaluate on")
    return digits


def split_validation(n: int, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded (train, validation) split of range(n); validation is `size` items (or 0)."""
    if size < 0 or size >= n:
        raise DigitlabError(f"validation size {size} must be between 0 and {n - 1}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return order[size:].sort().values, order[:size].sort().values
