"""Test-time augmentation for an ensemble: does voting over shifted and rotated views of each digit help?

    python benchmarks/ensemble_tta.py --model runs/strong-ensemble/member-0 --model runs/vgg-ensemble/member-0

Every model predicts the 10,000 MNIST test digits as they are, shifted by one pixel in each of four
directions (5 views), and also rotated by ±5° (7 views); the ensemble averages the probabilities of every
model and view. The printed row is the ensemble's test accuracy without TTA, with 5 views and with 7.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch
import torch.nn.functional as F

from digitlab.data import load
from digitlab.models import load_models
from digitlab.predict import predict_proba

ROOT = Path(__file__).resolve().parents[1]


def rotate(images: torch.Tensor, degrees: float) -> torch.Tensor:
    """uint8 (N, 28, 28) rotated about the centre, bilinear, rounded back to uint8."""
    a = math.radians(degrees)
    theta = torch.tensor([[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0]])
    x = images.float().unsqueeze(1)
    grid = F.affine_grid(theta.expand(len(x), 2, 3), list(x.shape), align_corners=False)
    rotated = F.grid_sample(x, grid, mode="bilinear", align_corners=False)
    return rotated.squeeze(1).round().clamp(0, 255).to(torch.uint8)


def views(images: torch.Tensor) -> list[torch.Tensor]:
    """The original first, then the four one-pixel shifts, then the two rotations."""
    shifts = [torch.roll(images, shift, dims) for shift, dims in ((1, 1), (-1, 1), (1, 2), (-1, 2))]
    return [images, *shifts, rotate(images, 5), rotate(images, -5)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", required=True, help="a run folder or .safetensors; repeat it")
    parser.add_argument("--data", default=str(ROOT / "data" / "mnist"))
    args = parser.parse_args()
    test = load(args.data, "test")
    if test is None:
        raise SystemExit(f"error: {args.data} has no test split")
    # load_models votes by averaged probabilities, so each entry is the ensemble's answer for one view.
    model, _ = load_models(args.model)
    per_view = [predict_proba(model, images) for images in views(test.images)]

    def accuracy(n_views: int) -> float:
        votes = torch.stack(per_view[:n_views]).sum(0)
        return (votes.argmax(1) == test.labels).double().mean().item()

    print(f"| ensemble of {len(args.model)} | no TTA | 5 views | 7 views |\n|---|---:|---:|---:|")
    print(f"| test accuracy | {accuracy(1):.2%} | {accuracy(5):.2%} | {accuracy(7):.2%} |")


if __name__ == "__main__":
    main()
