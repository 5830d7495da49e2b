"""Corrections a user makes in the web page, kept on disk as a dataset that `digitlab train --data` reads.

A feedback folder looks like this:

    DIR/<digit>/<id>.png      the 28x28 image the model was given, filed under the digit the user says it is
    DIR/originals/<id>.png    the picture as it was drawn or uploaded (for a number, the whole picture)
    DIR/feedback.jsonl        one JSON line per sample: id, time, model, predicted, corrected, box, original

Because the labelled images sit in `DIR/0 ... DIR/9`, the folder is an ordinary image-folder dataset:

    digitlab train --init strong --data ~/.local/share/digitlab/feedback

Every name on disk is generated here (a timestamp and a random suffix), never taken from a request, and
every file is written to a temporary name and renamed, so a crash or a concurrent request never leaves a
half-written sample. A sample's JSON line is appended last, in one write, after its images exist.
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from digitlab.errors import DigitlabError
from digitlab.fileio import atomic_write, atomic_write_bytes

MAX_SAMPLES = 100_000  # a folder past this is not a personal handwriting set any more
MAX_DIGITS_PER_SAMPLE = 16
LOG_NAME = "feedback.jsonl"


class FeedbackFull(DigitlabError):
    """The feedback folder holds its maximum number of samples."""


def default_dir() -> Path:
    """The user's data directory for feedback: $XDG_DATA_HOME/digitlab/feedback or ~/.local/share/..."""
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "digitlab" / "feedback"


@dataclass
class Correction:
    """One digit the user confirmed or corrected: the 28x28 input the model saw and the right label."""

    pixels: np.ndarray                        # (28, 28) uint8, white ink on black
    label: int                                # what the user says it is
    predicted: str = ""                       # what the model answered ("" when it refused)
    box: tuple[int, int, int, int] | None = None  # x0, y0, x1, y1 in the original picture (as `read` gives)


class FeedbackStore:
    """A feedback folder that several request threads may add to at once."""

    def __init__(self, root: str | os.PathLike, max_samples: int = MAX_SAMPLES) -> None:
        self.root = Path(root)
        self.max_samples = max_samples
        self._lock = threading.Lock()
        self._counts = self._scan()

    @classmethod
    def open(cls, root: str | os.PathLike, max_samples: int = MAX_SAMPLES) -> FeedbackStore:
        """The store at `root`, created if need be; a DigitlabError now if it cannot be written to."""
        root = Path(root)
        try:
            root.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=root, prefix=".write-test-"):
                pass
        except OSError as exc:
            raise DigitlabError(f"feedback folder {root}: cannot write there ({exc.strerror or exc}); "
                                "choose another with --feedback DIR, or --no-feedback") from None
        return cls(root, max_samples)

    def _scan(self) -> list[int]:
        counts = [0] * 10
        for digit in range(10):
            folder = self.root / str(digit)
            if folder.is_dir():
                counts[digit] = sum(1 for p in folder.glob("*.png") if not p.name.startswith("."))
        return counts

    def counts(self) -> dict[str, int]:
        """Samples per digit and in all, as the page shows them."""
        with self._lock:
            return {**{str(d): n for d, n in enumerate(self._counts)}, "total": sum(self._counts)}

    def add(self, corrections: list[Correction], model: str, original: bytes | None = None) -> list[str]:
        """Store the corrections of one answer; returns the new samples' ids. Nothing is stored on error."""
        if not 1 <= len(corrections) <= MAX_DIGITS_PER_SAMPLE:
            raise DigitlabError(f"a sample has 1 to {MAX_DIGITS_PER_SAMPLE} digits, got {len(corrections)}")
        for c in corrections:
            if isinstance(c.label, bool) or not isinstance(c.label, int | np.integer) or not 0 <= c.label <= 9:
                raise DigitlabError(f"label must be a digit 0-9, got {c.label!r}")
            if c.pixels.shape != (28, 28) or c.pixels.dtype != np.uint8:
                raise DigitlabError(f"a digit's input must be 28x28 uint8, got {c.pixels.shape} {c.pixels.dtype}")
        with self._lock:
            if sum(self._counts) + len(corrections) > self.max_samples:
                raise FeedbackFull(f"{self.root} already holds {sum(self._counts):,} samples "
                                   f"(limit {self.max_samples:,})")
            group = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + secrets.token_hex(6)
            original_name = None
            if original is not None:
                original_name = f"originals/{group}.png"
                atomic_write_bytes(self.root / original_name, original)
            lines, ids = [], []
            for k, c in enumerate(corrections):
                sample_id = f"{group}-{k}" if len(corrections) > 1 else group
                with atomic_write(self.root / str(int(c.label)) / f"{sample_id}.png", "wb", fsync=False) as fh:
                    Image.fromarray(c.pixels, mode="L").save(fh, format="PNG")
                lines.append(json.dumps({
                    "id": sample_id, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "model": model, "predicted": c.predicted, "corrected": int(c.label),
                    "box": list(c.box) if c.box is not None else None, "original": original_name,
                    "input": f"{int(c.label)}/{sample_id}.png",
                }))
                ids.append(sample_id)
                self._counts[int(c.label)] += 1
            # One write of whole lines on an O_APPEND descriptor: another process appending at the same
            # time cannot interleave inside a line.
            fd = os.open(self.root / LOG_NAME, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, ("\n".join(lines) + "\n").encode())
            finally:
                os.close(fd)
            return ids

    def records(self) -> list[dict]:
        """Every sample's JSON line, oldest first (lines that do not parse are skipped)."""
        path = self.root / LOG_NAME
        if not path.is_file():
            return []
        out = []
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return out
