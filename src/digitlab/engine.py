"""One interface for every way digitlab runs a model: `engine.logits(images)`.

    from digitlab.engine import load_engine
    engine = load_engine("strong", "auto")     # ONNX Runtime on a CPU, torch elsewhere
    logits = engine.logits(images)             # uint8 (N, 28, 28), tensor or ndarray -> float32 (N, 10) on the CPU
    probs = engine.probabilities(images)       # softmax(logits / T), T from the model's model.json

`TorchEngine` runs any nn.Module: a loaded model, a TorchScript module, or a model in the middle of training
(`TorchEngine(model, device)`; the module's train/eval mode is restored after each call). `OnnxEngine` runs an
ONNX Runtime session. `EnsembleEngine` averages its members' probabilities. `predict`, `evaluate` and `serve`
call nothing but `logits` and `probabilities`, so none of them needs to know which engine it was given.

Every probability shown is calibrated: `load_engine` gives each engine the temperature `digitlab calibrate`
(or `train`) stored for its model (digitlab.calibrate), 1.0 for a model never calibrated or a bare module.
`logits` stay raw; an ensemble's logits are the log of its members' averaged calibrated probabilities.
"""

from __future__ import annotations

import contextlib
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import nn

from digitlab.calibrate import stored_temperature
from digitlab.errors import DigitlabError

# Small chunks keep a CPU's activations in cache: 12.7k img/s at 256 against 5.9k at 2,048 for the
# tutorial CNN here. A GPU wants large ones.
CPU_CHUNK, GPU_CHUNK = 256, 8192

Images = torch.Tensor | np.ndarray  # uint8 (N, 28, 28), MNIST's white ink on black


def as_input(batch: torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """uint8 (N, 28, 28) -> float (N, 1, 28, 28) in [0, 1], channels-last (faster convolutions in torch)."""
    x = batch.to(device, non_blocking=True).unsqueeze(1).float().div_(255.0)
    return x.contiguous(memory_format=torch.channels_last)


class Engine(ABC):
    """Something that turns uint8 images (N, 28, 28) into logits (N, 10)."""

    name: str  # 'torch' or 'onnx': what `--engine` chose, for messages and /api/model
    temperature: float = 1.0  # probabilities are softmax(logits / temperature); load_engine sets it

    @abstractmethod
    def logits(self, images: Images) -> torch.Tensor:
        """uint8 (N, 28, 28) -> float32 logits (N, 10) on the CPU; N may be 0."""

    def probabilities(self, images: Images) -> torch.Tensor:
        """The calibrated probabilities every command shows."""
        return self.logits(images).div(self.temperature).softmax(1)

    def both_probabilities(self, images: Images) -> tuple[torch.Tensor, torch.Tensor]:
        """(calibrated, uncalibrated) probabilities from one pass, for `evaluate` to compare."""
        logits = self.logits(images)
        return logits.div(self.temperature).softmax(1), logits.softmax(1)


class TorchEngine(Engine):
    """An nn.Module on `device`, fed in chunks without autograd."""

    name = "torch"

    def __init__(self, model: nn.Module, device: torch.device | str = "cpu") -> None:
        self.model = model
        self.device = torch.device(device)
        self.chunk = CPU_CHUNK if self.device.type == "cpu" else GPU_CHUNK

    def logits(self, images: Images) -> torch.Tensor:
        images = torch.as_tensor(images)
        # Inference is always in eval mode (BatchNorm's running statistics, no dropout), but a model being
        # trained must go back to training mode afterwards, so the mode is restored rather than left changed.
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode():
                outputs = [self.model(as_input(images[i : i + self.chunk], self.device)).float().cpu()
                           for i in range(0, len(images), self.chunk)]
        finally:
            self.model.train(was_training)
        return torch.cat(outputs) if outputs else torch.zeros(0, 10)


class OnnxEngine(Engine):
    """An ONNX Runtime session (CPU) of a model exported by `digitlab export`: input 'image', N x 1 x 28 x 28."""

    name = "onnx"

    def __init__(self, path: str | os.PathLike) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        # As many threads as torch is given: `digitlab serve` sets one (a 28x28 image is too small to split,
        # and its worker threads already run a call per core); ONNX Runtime's own default, a thread per core
        # spinning between calls, cost the server twice the CPU per request it needs.
        options.intra_op_num_threads = torch.get_num_threads()
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def logits(self, images: Images) -> torch.Tensor:
        # The input is prepared in numpy alone: torch's own (multi-threaded) ops between ONNX Runtime's calls
        # would leave torch's OpenMP threads spinning against ONNX Runtime's pool, halving its throughput here.
        pixels = images.numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
        outputs = [self.session.run(None, {self.input_name: _scaled(pixels[i : i + CPU_CHUNK])})[0]
                   for i in range(0, len(pixels), CPU_CHUNK)]
        return torch.from_numpy(np.concatenate(outputs)) if outputs else torch.zeros(0, 10)


def _scaled(pixels: np.ndarray) -> np.ndarray:
    return (pixels.astype(np.float32) * np.float32(1 / 255))[:, None]


class EnsembleEngine(Engine):
    """Several engines voting by averaged probabilities; its logits are log-probabilities, so argmax and
    softmax mean what they mean for one model."""

    def __init__(self, members: list[Engine]) -> None:
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.members = members
        self.name = members[0].name

    def logits(self, images: Images) -> torch.Tensor:
        probs = torch.stack([member.probabilities(images) for member in self.members]).mean(0)
        return probs.clamp_min(1e-12).log()

    def both_probabilities(self, images: Images) -> tuple[torch.Tensor, torch.Tensor]:
        calibrated, raw = zip(*(member.both_probabilities(images) for member in self.members), strict=True)
        return torch.stack(calibrated).mean(0), torch.stack(raw).mean(0)


def as_engine(model: Engine | nn.Module, device: torch.device | str = "cpu") -> Engine:
    """An engine as it is, or an nn.Module wrapped in a TorchEngine (for callers holding a bare module)."""
    return model if isinstance(model, Engine) else TorchEngine(model, device)


def load_engine(model: str | os.PathLike | list | None, engine: str = "auto",
                device: torch.device | str = "cpu") -> Engine:
    """The engine for `model` (a run folder, weights file, shipped name or .onnx file; None: the shipped model).

    `engine` is 'torch', 'onnx' (ONNX Runtime; digitlab weights are exported on the fly and cached), or
    'auto'. A list of several models is an ensemble of one engine per member.
    """
    if engine == "auto":
        # ONNX Runtime runs these small CNNs ~2x faster than eager torch on a CPU (benchmarks/inference_speed.py)
        # and gives the same labels; ensembles and GPUs stay with torch.
        several = isinstance(model, list) and len(model) > 1
        engine = "onnx" if torch.device(device).type == "cpu" and not several else "torch"
    if engine not in ("torch", "onnx"):
        raise DigitlabError(f"unknown engine '{engine}' (choose auto, torch or onnx)")
    if isinstance(model, list):
        if len(model) > 1:
            return EnsembleEngine([load_engine(member, engine, device) for member in model])
        model = model[0] if model else None
    single = _load_single(model, engine, device)
    single.temperature = stored_temperature(model)
    return single


_THREADS = threading.Lock()


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run a small torch model (read's checker, the not-a-digit check) on one thread.

    Between ONNX Runtime calls torch's OpenMP workers spin against its pool: a tiny CNN on 40 crops took
    170 ms a call on 2 threads here, 8 ms on one. The lock: two server threads saving and restoring the
    count at once could otherwise leave it at 1 for good.
    """
    with _THREADS:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(threads)


def _load_single(model: str | os.PathLike | None, engine: str, device: torch.device | str) -> Engine:
    is_onnx_file = model is not None and str(model).endswith(".onnx")
    if engine == "torch":
        if is_onnx_file:
            raise DigitlabError(f"{model}: an ONNX file needs --engine onnx")
        from digitlab.models import load_model

        return TorchEngine(load_model(model, device)[0], device)
    if not is_onnx_file:
        from digitlab.export import export_onnx_cached

        return OnnxEngine(export_onnx_cached(model))
    if not Path(model).is_file():
        raise DigitlabError(f"{model}: no such file")
    try:
        return OnnxEngine(model)
    except Exception as exc:  # onnxruntime raises its own exception types for a bad file
        raise DigitlabError(f"{model}: not a loadable ONNX model ({str(exc).splitlines()[0][:100]})") from None
