"""`digitlab data info` and `digitlab data convert`: look at a data source, or rewrite it in another format.

The tutorial converted Kaggle's CSVs to PNG files by hand before training; `convert` does that (and the
reverse, and IDX) in one command, atomically per file.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from rich.console import Console
from rich.table import Table

from digitlab.data import Digits, idx, images, kaggle, load, resolve
from digitlab.errors import DigitlabError


def info(path: str | os.PathLike | None) -> dict:
    """Print (and return) counts, class balance and checksums of each split of a data source."""
    root = resolve(path)
    console = Console(highlight=False)
    if not console.is_terminal:
        console.width = 130  # the full checksums, not an 80-column guess, when piped to a file
    report: dict = {"source": str(root), "splits": {}}
    files = [root] if root.is_file() else sorted(p for p in root.iterdir() if p.is_file())
    checksums = Table(title=f"files in {root}")
    checksums.add_column("file")
    checksums.add_column("bytes", justify="right")
    checksums.add_column("sha256")
    for f in files:
        digest = hashlib.sha256(f.read_bytes()).hexdigest()
        report.setdefault("sha256", {})[f.name] = digest
        checksums.add_row(f.name, f"{f.stat().st_size:,}", digest)
    for split in ("train", "test"):
        digits = load(root, split)
        if digits is None:
            continue
        entry = {"n": len(digits),
                 "content_sha256": hashlib.sha256(digits.images.numpy().tobytes()).hexdigest()}
        if digits.labels is not None:
            entry["counts"] = [int(c) for c in digits.labels.bincount(minlength=10).tolist()]
        report["splits"][split] = entry
    table = Table(title=f"{root}")
    table.add_column("split")
    table.add_column("images", justify="right")
    for d in range(10):
        table.add_column(str(d), justify="right")
    for split, entry in report["splits"].items():
        counts = entry.get("counts") or ["-"] * 10
        table.add_row(split, f"{entry['n']:,}", *(str(c) for c in counts))
    console.print(table)
    if files:
        console.print(checksums)
    return report


def convert(source: str | os.PathLike, dest: str | os.PathLike, to: str | None, split: str = "train") -> Path:
    """Write one split of `source` to `dest` as a Kaggle CSV, MNIST IDX files or a PNG folder."""
    dest = Path(dest)
    fmt = to or ("csv" if dest.suffix.lower() == ".csv" else "png")
    digits: Digits | None = load(source, split)
    if digits is None:
        raise DigitlabError(f"{source}: has no {split} split")
    if fmt == "csv":
        kaggle.write_kaggle_csv(dest, digits.images, digits.labels)
    elif fmt == "idx":
        if digits.labels is None:
            raise DigitlabError("IDX needs labels; this source has none")
        image_name, label_name = idx.FILES[split]
        idx.write_idx(dest / f"{image_name}.gz", digits.images.numpy())
        idx.write_idx(dest / f"{label_name}.gz", digits.labels.numpy().astype("uint8"))
    elif fmt == "png":
        width = len(str(len(digits)))
        for i, image in enumerate(digits.images.numpy()):
            folder = dest / split / str(int(digits.labels[i])) if digits.labels is not None else dest / split
            images.save_png(folder / f"{i:0{width}d}.png", image)
    else:
        raise DigitlabError(f"unknown format '{fmt}' (choose idx, csv or png)")
    print(f"wrote {len(digits):,} {split} digits to {dest} ({fmt})")
    return dest
