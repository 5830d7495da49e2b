"""On-the-fly augmentation in torch alone: one random affine warp per image, batched.

Each image gets its own rotation, scale and shift (Deotte's ranges: about ±10°, ±10%, ±10% of the side),
applied by `affine_grid` + `grid_sample` on the whole batch at once, so it costs a few percent of a step.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def random_affine(x: torch.Tensor, degrees: float = 10.0, scale: float = 0.1, shift: float = 0.1,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """x: (N, 1, H, W) floats -> the same shape, each image randomly rotated, scaled and shifted."""
    n = x.shape[0]

    def uniform(low: float, high: float) -> torch.Tensor:
        return torch.rand(n, generator=generator, device="cpu").to(x.device) * (high - low) + low

    angle = uniform(-degrees, degrees) * math.pi / 180
    zoom = uniform(1 - scale, 1 + scale)
    # affine_grid maps output coordinates to input ones, so dividing by zoom makes the digit larger.
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack(
        [torch.stack([cos, -sin, uniform(-2 * shift, 2 * shift)], 1),
         torch.stack([sin, cos, uniform(-2 * shift, 2 * shift)], 1)], 1
    ).to(x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
