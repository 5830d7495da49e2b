"""MNIST's IDX files (gzip'd or raw) as uint8 tensors.

The layout: a big-endian magic number (0x00000803 for images, 0x00000801 for labels), one big-endian
uint32 per dimension, then the bytes. We check all of it, because a truncated download or a file that
is not IDX at all should fail with a clear message, not a reshape error deep in numpy.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import torch

from digitlab import prefetch
from digitlab.errors import DigitlabError

IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801

# The names MNIST is published under, per split.
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _read_bytes(path: Path) -> bytes:
    ready = prefetch.take(path)  # already read in a thread while torch imported (digitlab train)
    if ready is not None:
        return ready
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DigitlabError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DigitlabError(f"{path}: is a directory, expected an IDX file") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise DigitlabError(f"{path}: corrupt or truncated gzip data ({exc})") from None
    return raw


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file of unsigned bytes into a numpy array of its declared shape."""
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4:
        raise DigitlabError(f"{path}: too short to be an IDX file ({len(data)} bytes)")
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != 0x08 or ndim not in (1, 3):
        raise DigitlabError(f"{path}: wrong magic number 0x{data[:4].hex()}, not an MNIST IDX file")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DigitlabError(f"{path}: truncated IDX header")
    shape = struct.unpack(">" + "I" * ndim, data[4:header])
    expected = int(np.prod(shape, dtype=np.int64))
    if len(data) - header != expected:
        raise DigitlabError(
            f"{path}: size mismatch: header declares {'x'.join(map(str, shape))} = {expected} bytes, "
            f"file holds {len(data) - header}"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def find_idx(folder: Path, stem: str) -> Path | None:
    """The file for `stem` in `folder`, gzip'd or raw, also under the `t10k-images.idx3-ubyte` spelling."""
    for name in (stem + ".gz", stem, stem.replace("-idx", ".idx") + ".gz", stem.replace("-idx", ".idx")):
        if (folder / name).is_file():
            return folder / name
    return None


def has_idx(folder: Path, split: str) -> bool:
    return all(find_idx(folder, stem) is not None for stem in FILES[split])


def load_idx_split(folder: str | os.PathLike, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (N, 28, 28) uint8 and labels (N,) int64 of one split of an MNIST folder."""
    folder = Path(folder)
    paths = []
    for stem in FILES[split]:
        p = find_idx(folder, stem)
        if p is None:
            raise DigitlabError(f"{folder}: no {stem}[.gz] in this folder")
        paths.append(p)
    images, labels = read_idx(paths[0]), read_idx(paths[1])
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DigitlabError(f"{paths[0]}: expected N x 28 x 28 images, found shape {images.shape}")
    if labels.ndim != 1:
        raise DigitlabError(f"{paths[1]}: expected a 1-D label file, found shape {labels.shape}")
    if len(images) != len(labels):
        raise DigitlabError(f"{folder}: {len(images)} images but {len(labels)} labels in the {split} split")
    if labels.size and labels.max() > 9:
        raise DigitlabError(f"{paths[1]}: label {int(labels.max())} is not a digit")
    return torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64))


def write_idx(path: str | os.PathLike, array: np.ndarray, compress: bool | None = None) -> None:
    """Write a uint8 array as IDX (gzip'd when the name ends in .gz), atomically."""
    from digitlab.fileio import atomic_write

    path = Path(path)
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(">" + "I" * array.ndim, *array.shape)
    payload = header + array.tobytes()
    if compress if compress is not None else path.suffix == ".gz":
        payload = gzip.compress(payload, mtime=0)
    with atomic_write(path, "wb") as fh:
        fh.write(payload)
