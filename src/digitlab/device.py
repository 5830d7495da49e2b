"""Which device and which autocast precision a run uses."""

from __future__ import annotations

import torch

from digitlab.errors import DigitlabError


def pick_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise DigitlabError("--device cuda: no CUDA GPU is available here")
    if name == "mps" and not torch.backends.mps.is_available():
        raise DigitlabError("--device mps: Apple's MPS backend is not available here")
    if name not in ("cpu", "cuda", "mps"):
        raise DigitlabError(f"unknown device '{name}' (choose auto, cpu, cuda or mps)")
    return torch.device(name)


def pick_precision(name: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype, or None for plain fp32. 'auto' means bf16 where the hardware does it natively."""
    if name == "fp32":
        return None
    if name == "bf16":
        return torch.bfloat16
    if name != "auto":
        raise DigitlabError(f"unknown precision '{name}' (choose auto, fp32 or bf16)")
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    if device.type == "cpu" and torch.backends.mkldnn.is_available():
        # AVX-512 bf16 / AMX: bf16 convolutions run ~1.7x faster than fp32 at the same accuracy here.
        return torch.bfloat16 if torch.ops.mkldnn._is_mkldnn_bf16_supported() else None
    return None
