"""Accuracy, per-class precision and recall, the confusion matrix, and how honest the confidence is (ECE,
calibrated and not, with the reliability diagram's data) of a model on labelled digits."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from digitlab.calibrate import reliability
from digitlab.engine import Engine, EnsembleEngine, as_engine


def confusion_matrix(labels: torch.Tensor, predicted: torch.Tensor, classes: int = 10) -> torch.Tensor:
    """counts[true, predicted]."""
    return torch.bincount(labels * classes + predicted, minlength=classes * classes).reshape(classes, classes)


def metrics_from_confusion(confusion: torch.Tensor) -> dict[str, Any]:
    confusion = confusion.to(torch.float64)
    correct = confusion.diag()
    n = int(confusion.sum())
    precision = correct / confusion.sum(0).clamp(min=1)
    recall = correct / confusion.sum(1).clamp(min=1)
    return {
        "accuracy": float(correct.sum() / max(n, 1)),
        "n": n,
        "errors": n - int(correct.sum()),
        "precision": [round(v, 6) for v in precision.tolist()],
        "recall": [round(v, 6) for v in recall.tolist()],
        "support": [int(v) for v in confusion.sum(1).tolist()],
        "confusion": [[int(v) for v in row] for row in confusion.tolist()],
    }


def evaluate(engine: Engine | nn.Module, images: torch.Tensor, labels: torch.Tensor,
             device: torch.device | str = "cpu") -> dict[str, Any]:
    """Metrics of `engine` (or a bare nn.Module, run on `device`) on uint8 images (N, 28, 28) with their labels."""
    engine = as_engine(engine, device)
    calibrated, raw = engine.both_probabilities(images)
    result = metrics_from_confusion(confusion_matrix(labels, calibrated.argmax(1)))
    if len(labels):
        diagram, uncalibrated = reliability(calibrated, labels), reliability(raw, labels)
        result.update(ece=round(diagram["ece"], 6), ece_uncalibrated=round(uncalibrated["ece"], 6),
                      mean_confidence=round(diagram["mean_confidence"], 6),
                      temperature=[m.temperature for m in engine.members] if isinstance(engine, EnsembleEngine)
                      else engine.temperature,
                      reliability=diagram, reliability_uncalibrated=uncalibrated)
    return result
