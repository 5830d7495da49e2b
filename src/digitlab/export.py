"""Export a digitlab model to ONNX (dynamic batch axis) or TorchScript, atomically."""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from pathlib import Path

import torch

from digitlab.errors import DigitlabError
from digitlab.fileio import atomic_write_bytes
from digitlab.models import load_model, resolve_model_path


def onnx_bytes(model: torch.nn.Module) -> bytes:
    buffer = io.BytesIO()
    example = torch.rand(2, 1, 28, 28)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # The TorchScript-based exporter: the model is static, and it needs no onnxscript dependency.
        torch.onnx.export(model, (example,), buffer, input_names=["image"], output_names=["logits"],
                          dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}}, opset_version=17,
                          dynamo=False)
    return buffer.getvalue()


def export(model_path: str | os.PathLike | None, fmt: str, output: str | os.PathLike) -> Path:
    """Write `model_path` (default: the shipped model) as `fmt` ('onnx' or 'torchscript') to `output`.

    Missing parent folders are created (as for every digitlab output); an output that cannot be written
    (a folder, a path under a file, no permission) is a DigitlabError, and never leaves a partial file.
    """
    if fmt not in ("onnx", "torchscript"):
        raise DigitlabError(f"unknown export format '{fmt}' (choose onnx or torchscript)")
    output = Path(output)
    # Checked before exporting, which takes seconds and would only then fail.
    if output.is_dir():
        suggestion = output / ("model.onnx" if fmt == "onnx" else "model.pt")
        raise DigitlabError(f"{output}: is a folder; give a file name such as {suggestion}")
    existing = next((p for p in output.parents if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise DigitlabError(f"{output}: cannot write ({existing} is a file, not a folder)")
    model, _ = load_model(model_path, "cpu")
    if fmt == "onnx":
        data = onnx_bytes(model)
    else:
        buffer = io.BytesIO()
        with warnings.catch_warnings():
            # TorchScript is deprecated in favour of torch.export, but it is the format asked for here, and
            # still the one C++ (libtorch) and older runtimes load.
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.jit.save(torch.jit.trace(model, torch.rand(1, 1, 28, 28)), buffer)
        data = buffer.getvalue()
    try:
        atomic_write_bytes(output, data)
    except OSError as exc:
        raise DigitlabError(f"{output}: cannot write ({exc.strerror or exc})") from None
    return output


def export_onnx_cached(model_path: str | os.PathLike | None) -> Path:
    """An ONNX file for these weights, exported once and reused (keyed by the weights' sha256)."""
    weights = resolve_model_path(model_path)
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()[:16]
    cache = Path(os.environ.get("DIGITLAB_CACHE") or Path.home() / ".cache" / "digitlab") / "onnx"
    target = cache / f"{digest}.onnx"
    if not target.is_file():
        export(weights, "onnx", target)
    return target
