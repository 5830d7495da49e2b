"""On-the-fly augmentation in torch alone: one random warp per image, batched.

Each image gets its own rotation, scale and shift (Deotte's ranges: about ±10°, ±10%, ±10% of the side),
applied by `affine_grid` + `grid_sample` on the whole batch at once, so it costs a few percent of a step.
Optionally an elastic distortion is added to the same sampling grid (Simard et al., 2003): a random
displacement per pixel, smoothed by a Gaussian so that neighbouring pixels move together, the way a pen
stroke wobbles. It is one more grid offset, so the image is still resampled only once.

`pens` and `handwriting` (the strong recipe's `--handwriting`, in that order) then change the ink itself: how
whole a stroke is (skips, pressure, a pencil's thin core), then how wide and sharp it is and how the picture
was taken (stroke width, blur, low resolution, contrast). All of it is a few ms for a batch of 128 on CPU,
against a strong training step of about 45 ms.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def random_affine(x: torch.Tensor, degrees: float = 10.0, scale: float = 0.1, shift: float = 0.1,
                  elastic: float = 0.0, sigma: float = 4.0,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """x: (N, 1, H, W) floats -> the same shape, each image randomly rotated, scaled and shifted, and,
    when `elastic` > 0, elastically distorted by a field of strength `elastic` pixels and smoothness `sigma`."""
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
    if elastic > 0:
        grid = grid + elastic_displacement(n, x.shape[-2], x.shape[-1], elastic, sigma, generator).to(grid)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def elastic_displacement(n: int, height: int, width: int, alpha: float, sigma: float,
                         generator: torch.Generator | None = None) -> torch.Tensor:
    """A smooth random displacement field, (N, H, W, 2) in grid_sample's [-1, 1] units.

    Uniform noise in [-1, 1] per pixel and axis, blurred by a normalised Gaussian of width `sigma` pixels,
    times `alpha` pixels: Simard's recipe (alpha 34, sigma 4 moves pixels about 1.5 px, smoothly)."""
    if alpha < 0 or sigma <= 0:
        raise ValueError(f"elastic distortion needs alpha >= 0 and sigma > 0, got {alpha} and {sigma}")
    noise = torch.rand(n * 2, 1, height, width, generator=generator, device="cpu") * 2 - 1
    # A 2-D Gaussian blur with zeros beyond the border is separable, so it is two small matrix products,
    # G @ noise @ G^T: on CPU far cheaper than a 33-tap convolution (about 2 ms instead of 6 ms for the
    # fields of a batch of 128).
    field = _gaussian_matrix(height, sigma) @ noise @ _gaussian_matrix(width, sigma).T
    field = field.view(n, 2, height, width) * alpha
    # Pixels to grid units: the grid spans 2 over `width` pixels (x) and over `height` pixels (y).
    scale = torch.tensor([2 / width, 2 / height]).view(1, 2, 1, 1)
    return (field * scale).permute(0, 2, 3, 1)


def _gaussian_matrix(size: int, sigma: float) -> torch.Tensor:
    """G with G @ v = v blurred by scipy's normalised Gaussian (truncated at 4 sigma), zeros outside."""
    radius = int(4 * sigma + 0.5)
    taps = torch.arange(-radius, radius + 1, dtype=torch.float32)
    distance = torch.arange(size, dtype=torch.float32)
    distance = distance[:, None] - distance[None, :]
    g = torch.exp(-(distance**2) / (2 * sigma**2)) * (distance.abs() <= radius)
    return g / torch.exp(-(taps**2) / (2 * sigma**2)).sum()


def handwriting(x: torch.Tensor, p: float = 0.35, generator: torch.Generator | None = None) -> torch.Tensor:
    """x: (N, 1, H, W) white-on-black floats in [0, 1] -> the same images as other pens and scanners draw them.

    MNIST's writers all used one kind of pen, and its scans are all sharp and high-contrast. People use felt
    markers and hard pencils, and pictures arrive blurred or from a few pixels scaled up. Each image, with
    probability `p` per effect, gets:
      - a different stroke width: grey-scale dilation (max over 3x3) or erosion (min over 3x3), blended in by a
        random amount so that widths vary continuously, twice for the thickest markers;
      - blur: a 3x3 Gaussian blended in by a random amount;
      - low resolution: the picture down-sampled to 10-20 px a side (the digit to 7-14 px) and back, one
        size per batch, so that it is one interpolate call each way;
      - contrast: a random gamma and ink level, as a light pencil or a faded scan gives.
    All of it is pooling, a fixed convolution and interpolation on the whole batch: a few ms a step on CPU.
    """
    if not 0 <= p <= 1:
        raise ValueError(f"p must be a probability in [0, 1], got {p}")
    n = x.shape[0]

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=generator, device="cpu").to(x.device, x.dtype)

    def chosen() -> torch.Tensor:
        return (rand(n, 1, 1, 1) < p).to(x.dtype)

    # Stroke width: w in (-1, 2): below 0 thins, 0..1 thickens by one 3x3 dilation, 1..2 by a second one.
    width = (rand(n, 1, 1, 1) * 3 - 1) * chosen()
    dilated = F.max_pool2d(x, 3, stride=1, padding=1)
    thicker = F.max_pool2d(dilated, 3, stride=1, padding=1)
    thinner = -F.max_pool2d(-x, 3, stride=1, padding=1)
    thin_by = (-width).clamp(0, 1) * 0.7  # full erosion would break MNIST's thinnest strokes
    x = (x + width.clamp(0, 1) * (dilated - x) + (width - 1).clamp(0, 1) * (thicker - dilated)
         + thin_by * (thinner - x))

    blur_by = rand(n, 1, 1, 1) * chosen()
    kernel = torch.tensor([1.0, 2.0, 1.0], device=x.device, dtype=x.dtype)
    kernel = (kernel[:, None] * kernel[None, :] / 16).view(1, 1, 3, 3)
    x = x + blur_by * (F.conv2d(x, kernel, padding=1) - x)

    low = chosen()
    if low.any():
        size = int(torch.randint(10, 21, (1,), generator=generator))
        small = F.interpolate(x, size=(size, size), mode="area")
        x = x + low * (F.interpolate(small, size=x.shape[-2:], mode="bilinear", align_corners=False) - x)

    contrast = chosen()
    gamma = torch.exp((rand(n, 1, 1, 1) * 2 - 1) * 0.7)  # 0.5x .. 2x
    level = 0.5 + 0.5 * rand(n, 1, 1, 1)
    faded = x.clamp(0, 1).pow(gamma) * level
    x = x + contrast * (faded - x)
    return x.clamp(0, 1)


def pens(x: torch.Tensor, p: float = 0.25, generator: torch.Generator | None = None) -> torch.Tensor:
    """x: (N, 1, H, W) white-on-black floats in [0, 1] -> the same digits as cheap pens and pencils write them.

    `handwriting` changes how wide and how sharp a stroke is; what it never shows the model is a stroke that
    is not whole. Ballpoints skip, pressure comes and goes along a line, and a light pencil leaves only the
    middle of a stroke, so a digit arrives in pieces. Each image, with probability `p` per effect, gets:
      - a thin core: only the darkest part of each stroke is kept (a hard pencil, a fine ballpoint);
      - pressure: the ink fades and returns along the stroke, a smooth random field a few pixels across;
      - skips: 1-3 gaps about 2-4 px across, each centred on a random pixel of the stroke.
    Like `handwriting`, it is a few batched tensor operations: about a millisecond for a batch of 128 on CPU.
    """
    if not 0 <= p <= 1:
        raise ValueError(f"p must be a probability in [0, 1], got {p}")
    n, _, height, width = x.shape

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=generator, device="cpu").to(x.device, x.dtype)

    def chosen() -> torch.Tensor:
        return (rand(n, 1, 1, 1) < p).to(x.dtype)

    # The thin core: ink above a threshold, stretched back to full darkness over a narrow band.
    core = chosen()
    floor = 0.3 + 0.35 * rand(n, 1, 1, 1)
    band = 0.15 + 0.15 * rand(n, 1, 1, 1)
    x = x + core * (((x - floor) / band).clamp(0, 1) - x)

    # Pressure: a coarse random field, smoothly upsampled, takes up to 60% of the ink away in places.
    pressure = chosen() * 0.6 * rand(n, 1, 1, 1)
    field = F.interpolate(rand(n, 1, 6, 6), size=(height, width), mode="bicubic", align_corners=False)
    x = x * (1 - pressure * field.clamp(0, 1))

    # Skips: up to three soft-edged disks centred on ink. multinomial needs some weight in every row, so
    # an image without ink (a blank) gets its centres anywhere, where they erase nothing.
    skips = chosen()
    if skips.any():
        weights = (x.view(n, -1) > 0.5).to(torch.float32) + 1e-6
        centres = torch.multinomial(weights.cpu(), 3, replacement=True, generator=generator).to(x.device)
        cy, cx = (centres // width).to(x.dtype), (centres % width).to(x.dtype)      # (N, 3)
        count = torch.randint(1, 4, (n, 1), generator=generator).to(x.device)
        used = (torch.arange(3, device=x.device)[None, :] < count).to(x.dtype)    # (N, 3): 1-3 of them
        radius = (1.0 + rand(n, 3)) * used                                          # 1-2 px; 0 when unused
        yy = torch.arange(height, device=x.device, dtype=x.dtype).view(1, 1, height, 1)
        xx = torch.arange(width, device=x.device, dtype=x.dtype).view(1, 1, 1, width)
        distance = ((yy - cy[..., None, None]) ** 2 + (xx - cx[..., None, None]) ** 2).sqrt()
        # 0 inside the disk, rising to 1 over one pixel at its edge: a pen lifting, not a knife cut.
        kept = (distance - radius[..., None, None] + 0.5).clamp(0, 1).amin(1, keepdim=True)
        x = x * (1 - skips * (1 - kept))
    return x.clamp(0, 1)
