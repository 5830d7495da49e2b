"""`digitlab predict`: which inputs were given, and the CSV files of its answers.

The model itself runs behind `digitlab.engine` (torch, ONNX Runtime or an ensemble, whole batches at a time);
`load_engine`, `OnnxEngine` and `as_input` are re-exported here for the callers that import them from here.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from digitlab.data import images as image_files
from digitlab.data import kaggle
from digitlab.engine import Engine, OnnxEngine, TorchEngine, as_engine, as_input, load_engine
from digitlab.errors import DigitlabError
from digitlab.fileio import atomic_write

__all__ = ["Engine", "OnnxEngine", "TorchEngine", "as_input", "load_engine", "predict_logits", "predict_proba",
           "gather_inputs", "format_image_predictions", "write_image_predictions", "write_submission_from_csv",
           "save_inputs"]


def predict_logits(model: Engine | nn.Module, images: torch.Tensor, device: torch.device | str = "cpu"
                   ) -> torch.Tensor:
    """`engine.logits(images)`, for callers that hold a bare nn.Module (training, scripts)."""
    return as_engine(model, device).logits(images)


def predict_proba(model: Engine | nn.Module, images: torch.Tensor, device: torch.device | str = "cpu"
                  ) -> torch.Tensor:
    return as_engine(model, device).probabilities(images)


def gather_inputs(inputs: list[str]) -> tuple[str, list[Path]]:
    """Classify the command-line inputs: one Kaggle CSV, or any mix of image files and folders."""
    paths = [Path(p) for p in inputs]
    for p in paths:
        if not p.exists():
            raise DigitlabError(f"{p}: no such file or folder")
    csvs = [p for p in paths if p.is_file() and p.suffix.lower() == ".csv"]
    if csvs:
        if len(paths) != 1:
            raise DigitlabError("give one Kaggle test.csv on its own, or image files and folders")
        return "csv", csvs
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            found = image_files.list_images(p)
            if not found:
                raise DigitlabError(f"{p}: no image files in this folder")
            files += found
        else:
            files.append(p)
    return "images", files


def save_inputs(folder: str | os.PathLike, paths: list[Path], pixels: torch.Tensor) -> list[Path]:
    """Write each input's 28x28 image, as the model sees it, to folder/<stem>.png (atomically).

    Two inputs with the same stem (a/1.png, b/1.jpg) get the later ones' parent folders prefixed, so none
    overwrites another.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise DigitlabError(f"--save-inputs {folder}: not a folder")
    written: list[Path] = []
    taken: set[str] = set()
    for path, image in zip(paths, pixels.numpy(), strict=True):
        name = path.stem
        if name in taken:
            name = "_".join([*path.parent.parts[-2:], path.stem]).replace(os.sep, "_")
        suffix, unique = 1, name
        while unique in taken:
            suffix += 1
            unique = f"{name}_{suffix}"
        taken.add(unique)
        written.append(folder / f"{unique}.png")
        image_files.save_png(written[-1], image)
    return written


def format_image_predictions(names: list[str], probs: torch.Tensor, top_k: int,
                             reasons: list[str | None] | None = None) -> str:
    """CSV text `file,label,confidence` (plus label_2, confidence_2, ... for top_k > 1).

    With `reasons` (digitlab.refuse.refusals), a last column `reason`: empty for a digit; for a refused
    picture 'blank' or 'not a digit', and its `label` cell is empty (the other cells are still the model's).
    """
    values, labels = probs.topk(top_k, dim=1)
    header = ["file", "label", "confidence"]
    for k in range(2, top_k + 1):
        header += [f"label_{k}", f"confidence_{k}"]
    if reasons is not None:
        header.append("reason")
    lines = [",".join(header)]
    rows = zip(names, labels.tolist(), values.tolist(), reasons or [None] * len(names), strict=True)
    for name, row_labels, row_values, reason in rows:
        cells = [_csv_cell(name)]
        for label, value in zip(row_labels, row_values, strict=True):
            cells += [str(label), f"{value:.6f}"]
        if reason:
            cells[1] = ""
        lines.append(",".join(cells + ([reason or ""] if reasons is not None else [])))
    return "\n".join(lines) + "\n"


def write_image_predictions(path: str | os.PathLike, names: list[str], probs: torch.Tensor, top_k: int,
                            reasons: list[str | None] | None = None) -> None:
    with atomic_write(path, "w") as fh:
        fh.write(format_image_predictions(names, probs, top_k, reasons))


def _csv_cell(text: str) -> str:
    return '"' + text.replace('"', '""') + '"' if any(c in text for c in ',"\n') else text


def write_submission_from_csv(engine: Engine | nn.Module, csv_path: Path, output: Path,
                              device: torch.device | str = "cpu") -> np.ndarray:
    """A Kaggle submission: every row gets a digit. Nothing is refused here: Kaggle's rows are all digits,
    and a submission with an empty label would be rejected."""
    pixels, _ = kaggle.read_kaggle_csv(csv_path)
    labels = as_engine(engine, device).logits(pixels).argmax(1).numpy()
    kaggle.write_submission(output, labels)
    return labels
