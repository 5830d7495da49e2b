"""The model registry and the one weights format: safetensors, with digitlab's metadata inside.

A `model.safetensors` written by digitlab carries its own description (architecture, normalisation,
training arguments, accuracy) in the safetensors header, so the file alone is enough to load it; the
`model.json` beside it is the same description for people to read. Nothing is ever unpickled.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as safetensors_save
from torch import nn

from digitlab.errors import DigitlabError
from digitlab.fileio import atomic_write_bytes, atomic_write_text
from digitlab.models import fast, strong, tutorial, vgg
from digitlab.models.recipe import Recipe


@dataclass(frozen=True)
class Arch:
    """An architecture and the recipe that trains it: everything `--arch NAME` means."""

    build: Callable[[], nn.Module]
    recipe: Recipe


REGISTRY: dict[str, Arch] = {
    "tutorial": Arch(tutorial.TutorialCNN, tutorial.RECIPE),
    "fast": Arch(fast.FastCNN, fast.RECIPE),
    "strong": Arch(strong.StrongCNN, strong.RECIPE),
    "vgg": Arch(vgg.VggCNN, vgg.RECIPE),
}
ARCHS: dict[str, Callable[[], nn.Module]] = {name: arch.build for name, arch in REGISTRY.items()}
FORMAT = "digitlab/1"


def lookup(arch: str) -> Arch:
    if arch not in REGISTRY:
        raise DigitlabError(f"unknown architecture '{arch}' (choose from {', '.join(REGISTRY)})")
    return REGISTRY[arch]


def build(arch: str) -> nn.Module:
    return lookup(arch).build()


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


SHIPPED = ("strong", "tutorial")  # in order of preference for the default


def shipped_weights(name: str | None = None) -> Path:
    """Weights shipped inside the package: `name` ('tutorial', 'strong'), or the best one present."""
    folder = Path(str(resources.files("digitlab") / "weights"))
    if name is not None:
        return folder / f"{name}.safetensors"
    for candidate in SHIPPED:
        if (folder / f"{candidate}.safetensors").is_file():
            return folder / f"{candidate}.safetensors"
    return folder / "tutorial.safetensors"


def save_model(model: nn.Module, meta: dict[str, Any], out_dir: str | os.PathLike) -> Path:
    """Write `model.safetensors` (weights + metadata) and `model.json`, each atomically."""
    out_dir = Path(out_dir)
    meta = {"format": FORMAT, **meta}
    state = {k: v.detach().cpu().contiguous() for k, v in unwrap(model).state_dict().items()}
    path = out_dir / "model.safetensors"
    atomic_write_bytes(path, safetensors_save(state, metadata={"digitlab": json.dumps(meta)}))
    atomic_write_text(out_dir / "model.json", json.dumps(meta, indent=2) + "\n")
    return path


def resolve_model_path(path: str | os.PathLike | None) -> Path:
    if path is None:
        return shipped_weights()
    if str(path) in SHIPPED and not Path(path).exists():
        return shipped_weights(str(path))
    path = Path(path)
    if path.is_dir():
        path = path / "model.safetensors"
    if not path.is_file():
        raise DigitlabError(f"{path}: no such model file")
    return path


def read_meta(path: Path) -> dict[str, Any]:
    try:
        with safe_open(str(path), framework="pt") as fh:
            header = fh.metadata() or {}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise DigitlabError(f"{path}: not a safetensors weights file ({str(exc).splitlines()[0]})") from None
    if "digitlab" not in header:
        raise DigitlabError(f"{path}: safetensors file has no digitlab metadata; not a digitlab model")
    try:
        meta = json.loads(header["digitlab"])
    except json.JSONDecodeError:
        raise DigitlabError(f"{path}: digitlab metadata is not valid JSON") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or "arch" not in meta:
        raise DigitlabError(f"{path}: metadata is not digitlab's {FORMAT} format")
    return meta


def load_model(path: str | os.PathLike | None = None, device: str | torch.device = "cpu"
               ) -> tuple[nn.Module, dict[str, Any]]:
    """Load a digitlab model in eval mode with its metadata; `None` loads the package's shipped model."""
    path = resolve_model_path(path)
    meta = read_meta(path)
    model = build(meta["arch"])
    expected = model.state_dict()
    with safe_open(str(path), framework="pt") as fh:
        keys = set(fh.keys())
        if keys != set(expected):
            missing, extra = sorted(set(expected) - keys), sorted(keys - set(expected))
            raise DigitlabError(
                f"{path}: tensors do not match arch '{meta['arch']}' (missing {missing[:3]}, unexpected {extra[:3]})"
            )
        state = {k: fh.get_tensor(k) for k in keys}
    for key, tensor in state.items():
        if tensor.shape != expected[key].shape:
            raise DigitlabError(
                f"{path}: tensor '{key}' has shape {tuple(tensor.shape)}, arch '{meta['arch']}' expects "
                f"{tuple(expected[key].shape)}"
            )
    model.load_state_dict(state)
    return model.to(device).eval(), meta


def unwrap(model: nn.Module) -> nn.Module:
    """The plain module inside DistributedDataParallel or torch.compile wrappers."""
    while True:
        inner = getattr(model, "module", None) or getattr(model, "_orig_mod", None)
        if inner is None:
            return model
        model = inner


class Ensemble(nn.Module):
    """Several models voting by averaged probabilities; returns log-probabilities, so argmax and softmax work.

    Each member's probabilities are softmax(logits / its temperature), as `digitlab.engine` computes them.
    """

    def __init__(self, members: list[nn.Module], temperatures: list[float] | None = None) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)
        self.temperatures = temperatures or [1.0] * len(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        probs = torch.stack([m(x).float().div(t).softmax(1)
                             for m, t in zip(self.members, self.temperatures, strict=True)]).mean(0)
        return probs.clamp_min(1e-12).log()


def load_models(paths: list[str | os.PathLike] | None, device: str | torch.device = "cpu"
                ) -> tuple[nn.Module, dict[str, Any]]:
    """One model, or an Ensemble when several paths are given; `None` or [] loads the shipped model."""
    if not paths:
        return load_model(None, device)
    if len(paths) == 1:
        return load_model(paths[0], device)
    from digitlab.calibrate import stored_temperature  # imported here: digitlab.calibrate imports this module

    loaded = [load_model(p, device) for p in paths]
    temperatures = [stored_temperature(p) for p in paths]
    return Ensemble([m for m, _ in loaded], temperatures).to(device).eval(), _ensemble_meta([m for _, m in loaded])


def describe_models(paths: list[str | os.PathLike] | None) -> dict[str, Any]:
    """The metadata `load_models` would return, read from the file headers without loading any weights."""
    metas = [read_meta(resolve_model_path(p)) for p in (paths or [None])]
    return metas[0] if len(metas) == 1 else _ensemble_meta(metas)


def _ensemble_meta(metas: list[dict[str, Any]]) -> dict[str, Any]:
    return {"arch": f"ensemble of {len(metas)} ({', '.join(m['arch'] for m in metas)})", "members": metas}
