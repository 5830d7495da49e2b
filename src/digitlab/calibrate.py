"""Honest confidence: one temperature per model, fitted on digits it did not train on.

    digitlab calibrate --model runs/latest                    # on the run's own validation split
    digitlab calibrate --model strong --data held-out/        # a model trained with --val-size 0
    digitlab evaluate --json --reliability reliability.png    # ece, ece_uncalibrated, and the diagram

Temperature scaling (Guo et al. 2017, "On Calibration of Modern Neural Networks"): every probability shown
is softmax(logits / T), with T chosen to minimise the negative log-likelihood on held-out digits. Dividing
all ten logits by one number never changes which is largest, so no label changes, only how sure the model
says it is. Label smoothing trains a model to say 90% when it is right 99.7% of the time; T < 1 undoes that.

The temperature lives in the `calibration` block of the model's `model.json` (for a shipped model,
`weights/NAME.json`), where `digitlab.engine` reads it. A fitted T is kept only if it does not make the
expected calibration error (ECE) on the calibration digits worse: a model that is already calibrated (the
tutorial CNN, trained without label smoothing) keeps T = 1 rather than a fit to noise.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from digitlab.errors import DigitlabError
from digitlab.fileio import atomic_write_text
from digitlab.models import FORMAT, read_meta, resolve_model_path

BINS = 15  # the usual choice since Guo et al., so that ECE numbers compare with published ones
T_RANGE = (0.05, 20.0)  # far beyond any useful temperature either way; the search is over log T inside it

Array = torch.Tensor | np.ndarray


# -- the statistics ----------------------------------------------------------------------------------------
def _checked(logits: Array, labels: Array) -> tuple[torch.Tensor, torch.Tensor]:
    logits = torch.as_tensor(logits, dtype=torch.float64)
    labels = torch.as_tensor(labels, dtype=torch.int64)
    if logits.ndim != 2 or labels.shape != (len(logits),) or len(logits) == 0:
        raise ValueError(f"need logits (N, C) and labels (N,) with N > 0, got {tuple(logits.shape)} and "
                         f"{tuple(labels.shape)}")
    if labels.min() < 0 or labels.max() >= logits.shape[1]:
        raise ValueError(f"labels must be in 0..{logits.shape[1] - 1}")
    return logits, labels


def _nll(logits: np.ndarray, right: np.ndarray, temperature: float) -> float:
    scaled = logits / temperature
    top = scaled.max(1)
    log_sum = top + np.log(np.exp(scaled - top[:, None]).sum(1))
    return float(np.mean(log_sum - right / temperature))


def nll(logits: Array, labels: Array, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of softmax(logits / temperature)."""
    logits, labels = _checked(logits, labels)
    values = logits.numpy()
    return _nll(values, values[np.arange(len(values)), labels.numpy()], temperature)


def fit_temperature(logits: Array, labels: Array) -> float:
    """The T in T_RANGE minimising nll(logits / T): a bounded 1-D search over log T.

    NLL is convex in 1/T, so the bounded Brent search finds the one minimum; float64 keeps the tiny NLL of a
    99.7%-accurate model from drowning in rounding. In numpy, single-threaded: ~30 evaluations of a few ms.
    """
    from scipy.optimize import minimize_scalar

    logits, labels = _checked(logits, labels)
    values = logits.numpy()
    right = values[np.arange(len(values)), labels.numpy()]
    low, high = (math.log(t) for t in T_RANGE)
    found = minimize_scalar(lambda log_t: _nll(values, right, math.exp(log_t)), bounds=(low, high),
                            method="bounded", options={"xatol": 1e-5})
    return float(math.exp(found.x))


def reliability(probs: Array, labels: Array, bins: int = BINS) -> dict[str, Any]:
    """The reliability diagram's data: per confidence bin ((k/bins, (k+1)/bins]), how many predictions fell
    there, their mean confidence and their accuracy (None for an empty bin); and the ECE, the mean over all
    predictions of |accuracy - confidence| of their bin."""
    probs = torch.as_tensor(probs, dtype=torch.float64)
    labels = torch.as_tensor(labels, dtype=torch.int64)
    if probs.ndim != 2 or labels.shape != (len(probs),) or len(probs) == 0:
        raise ValueError(f"need probabilities (N, C) and labels (N,) with N > 0, got {tuple(probs.shape)} "
                         f"and {tuple(labels.shape)}")
    if bins < 1:
        raise ValueError(f"bins must be at least 1, got {bins}")
    confidence, predicted = probs.max(1)
    correct = (predicted == labels).double()
    which = (confidence * bins).ceil().long().sub(1).clamp(0, bins - 1)
    count = torch.bincount(which, minlength=bins).double()
    conf_sum = torch.bincount(which, confidence, minlength=bins)
    right_sum = torch.bincount(which, correct, minlength=bins)
    filled = count > 0
    ece_value = float((conf_sum - right_sum).abs().sum() / len(probs))
    return {
        "bins": bins,
        "edges": [k / bins for k in range(bins + 1)],
        "count": [int(c) for c in count.tolist()],
        "confidence": [float(s / c) if f else None for s, c, f in zip(conf_sum, count, filled, strict=True)],
        "accuracy": [float(s / c) if f else None for s, c, f in zip(right_sum, count, filled, strict=True)],
        "ece": ece_value,
        "mean_confidence": float(confidence.mean()),
        "accuracy_all": float(correct.mean()),
    }


def ece(probs: Array, labels: Array, bins: int = BINS) -> float:
    """Expected calibration error: 0 when every confidence is the accuracy it claims."""
    return reliability(probs, labels, bins)["ece"]


def fit(logits: Array, labels: Array, data: str) -> dict[str, Any]:
    """The `calibration` block of model.json for a model whose raw logits on `data` are `logits`."""
    logits, labels = _checked(logits, labels)
    fitted = fit_temperature(logits, labels)
    before = ece(logits.softmax(1), labels)
    at_fitted = ece((logits / fitted).softmax(1), labels)
    # NLL can only fall (T = 1 is inside the search), but ECE can rise on a model that was calibrated
    # already: then T = 1 stays, and the fitted value and its ECE are recorded to show why.
    temperature = fitted if at_fitted <= before else 1.0
    return {
        "temperature": round(temperature, 6),
        "fitted_temperature": round(fitted, 6),
        "ece_before": round(before, 6),
        "ece_after": round(at_fitted if temperature != 1.0 else before, 6),
        "ece_fitted": round(at_fitted, 6),
        "nll_before": round(nll(logits, labels), 6),
        "nll_after": round(nll(logits, labels, temperature), 6),
        "bins": BINS,
        "n": len(labels),
        "data": data,
    }


def fit_model(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, device: torch.device | str,
              data: str) -> dict[str, Any]:
    """`fit` for a bare module (training's last step, on its validation split)."""
    from digitlab.engine import TorchEngine

    return fit(TorchEngine(model, device).logits(images), labels, data)


# -- where the temperature is stored -----------------------------------------------------------------------
def meta_json(weights: Path) -> Path:
    """The model.json beside a weights file: model.safetensors -> model.json, weights/strong.* -> strong.json."""
    return weights.with_suffix(".json")


def stored_temperature(model: str | os.PathLike | None) -> float:
    """The temperature stored for `model` (anything `load_model` takes), 1.0 when it was never calibrated.

    model.json beside the weights first (`digitlab calibrate` updates it), else the metadata inside the
    weights (what `train` wrote). A bare .onnx file carries neither, and gets 1.0.
    """
    if model is not None and str(model).endswith(".onnx"):
        return 1.0
    weights = resolve_model_path(model)
    calibration = _json_calibration(meta_json(weights))
    if calibration is None:
        calibration = read_meta(weights).get("calibration")
    if calibration is None:
        return 1.0
    value = calibration.get("temperature") if isinstance(calibration, dict) else None
    if isinstance(value, bool) or not isinstance(value, int | float) or not (0 < value < math.inf):
        raise DigitlabError(f"{weights}: calibration temperature must be a positive number, got {value!r}")
    return float(value)


def _json_calibration(path: Path) -> Any:
    if not path.is_file():
        return None
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise DigitlabError(f"{path}: not valid JSON") from None
    # Only digitlab's own description counts: an unrelated foo.json beside foo.safetensors is not one.
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        return None
    return meta.get("calibration")


def store(model: str | os.PathLike | None, calibration: dict[str, Any]) -> Path:
    """Write `calibration` into the model's model.json (created from the weights' metadata if missing)."""
    weights = resolve_model_path(model)
    path = meta_json(weights)
    meta = None
    if path.is_file():
        try:
            meta = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            meta = None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        meta = read_meta(weights)
    meta["calibration"] = calibration
    try:
        atomic_write_text(path, json.dumps(meta, indent=2) + "\n")
    except OSError as exc:
        raise DigitlabError(f"{path}: cannot write ({exc.strerror or exc})") from None
    return path


# -- the digits to calibrate on ----------------------------------------------------------------------------
def validation_split(meta: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, str] | None:
    """The validation split `train` held out for this model, rebuilt as `Trainer.load_data` made it (the
    recorded data, --limit, --val-size capped at a fifth, --seed); None when it held out nothing."""
    from digitlab.data import load, split_validation

    training = meta.get("training") or {}
    val_size = training.get("val_size") or 0
    if not isinstance(val_size, int) or val_size <= 0:
        return None
    train = load(training.get("data"), "train")
    if train is None or train.labels is None:
        raise DigitlabError(f"{training.get('data') or 'data'}: no labelled training data to rebuild the "
                            "validation split from")
    limit = training.get("limit")
    if limit:
        train = train.subset(torch.arange(min(limit, len(train))))
    size = min(val_size, len(train) // 5)
    seed = training.get("seed", 0)
    _, index = split_validation(len(train), size, seed)
    return train.images[index], train.labels[index], f"validation split ({size:,} of {train.source}, seed {seed})"


def calibration_data(data: str | os.PathLike) -> tuple[torch.Tensor, torch.Tensor, str]:
    """All labelled digits of `data`: its train split where it has one (a held-out folder), else its test."""
    from digitlab.data import load

    digits = load(data, "train") or load(data, "test")
    if digits is None or digits.labels is None or len(digits) == 0:
        raise DigitlabError(f"{data}: no labelled digits to calibrate on")
    return digits.images, digits.labels, f"{digits.source} ({len(digits):,} digits)"


def calibrate(model: str | os.PathLike | None, data: str | os.PathLike | None = None, engine: str = "auto",
              device: torch.device | str = "cpu", data_name: str | None = None) -> dict[str, Any]:
    """Fit and store `model`'s temperature, on `data` or else its recorded validation split; `data_name`
    replaces the data's description in model.json (for a temporary folder)."""
    from digitlab.engine import load_engine

    if model is not None and str(model).endswith(".onnx"):
        raise DigitlabError(f"{model}: an ONNX file has no model.json to store a temperature in; calibrate "
                            "the digitlab weights it was exported from")
    weights = resolve_model_path(model)
    if data is not None:
        images, labels, described = calibration_data(data)
    else:
        try:
            split = validation_split(read_meta(weights))
        except DigitlabError as exc:  # the training data moved or is gone: say what would work instead
            raise DigitlabError(f"cannot rebuild the validation split of {model or weights} ({exc}); pass --data "
                                "with labelled digits it did not train on") from None
        if split is None:
            raise DigitlabError(f"{model or weights}: no validation split recorded (trained with --val-size 0); "
                                "pass --data with labelled digits it did not train on")
        images, labels, described = split
    logits = load_engine(model, engine, device).logits(images)  # raw logits: the engine's T is not in them
    calibration = fit(logits, labels, data_name or described)
    calibration["path"] = str(store(model, calibration))
    return calibration
