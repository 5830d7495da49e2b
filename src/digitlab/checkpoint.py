"""Checkpoints that survive kill -9: written atomically (temp + fsync + rename), verified on load.

Each checkpoint is `ckpt-<step>.pt` (loaded with `weights_only=True`: tensors, numbers and strings only)
plus `ckpt-<step>.json` holding its sha256. Resuming takes the newest checkpoint whose hash matches and
falls back, with a warning, to the one before when the newest is truncated or corrupted.
"""

from __future__ import annotations

import hashlib
import io
import json
import warnings
from pathlib import Path
from typing import Any

import torch

from digitlab.fileio import atomic_write_bytes, atomic_write_text

KEEP = 2


def save(folder: Path, step: int, state: dict[str, Any]) -> Path:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    data = buffer.getvalue()
    path = folder / f"ckpt-{step:08d}.pt"
    atomic_write_bytes(path, data)
    atomic_write_text(path.with_suffix(".json"),
                      json.dumps({"step": step, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}))
    for old in sorted(folder.glob("ckpt-*.pt"))[:-KEEP]:
        old.unlink(missing_ok=True)
        old.with_suffix(".json").unlink(missing_ok=True)
    return path


def load_latest(folder: Path) -> dict[str, Any] | None:
    """The newest intact checkpoint in `folder`, or None when there is none."""
    for path in sorted(folder.glob("ckpt-*.pt"), reverse=True):
        try:
            info = json.loads(path.with_suffix(".json").read_text())
            data = path.read_bytes()
            if hashlib.sha256(data).hexdigest() != info["sha256"]:
                raise ValueError("checksum mismatch")
            return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        except (OSError, ValueError, KeyError, RuntimeError, json.JSONDecodeError) as exc:
            warnings.warn(f"{path.name} is unusable ({exc}); trying the previous checkpoint", stacklevel=2)
    return None
