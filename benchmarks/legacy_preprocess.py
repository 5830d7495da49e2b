"""A frozen copy of `to_mnist` as it was before issue 11 (commit 628e583), for before/after tables only.

Nothing in the package imports this file; benchmarks/robustness.py and the preprocessing tests use it to show
what the old preprocessing did to the same pictures.
"""
from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter, ImageOps, UnidentifiedImageError

from digitlab.errors import DigitlabError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm"}
MAX_PIXELS = 40_000_000  # ~6300x6300: bigger than any photo of a digit, small enough to decode safely
MAX_BYTES = 50 * 1024 * 1024


def open_image(source: str | os.PathLike | bytes) -> Image.Image:
    """Decode an image file or bytes, refusing non-images and decompression bombs with a DigitlabError."""
    name = "image" if isinstance(source, bytes) else str(source)
    if isinstance(source, bytes):
        data = source
    else:
        path = Path(source)
        if not path.is_file():
            raise DigitlabError(f"{path}: no such file")
        if path.stat().st_size > MAX_BYTES:
            raise DigitlabError(f"{path}: file is larger than {MAX_BYTES // 2**20} MB")
        data = path.read_bytes()
    if not data:
        raise DigitlabError(f"{name}: empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise DigitlabError(f"{name}: {width}x{height} pixels is too large (limit {MAX_PIXELS:,})")
            image.load()
    except DigitlabError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DigitlabError(f"{name}: not a readable image ({type(exc).__name__})") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise DigitlabError(f"{name}: not a readable image ({exc})") from None
    return image


def _to_gray(image: Image.Image) -> np.ndarray:
    """Float grayscale in [0, 1]; transparency is flattened onto a background the ink stands out from."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = np.asarray(image.convert("RGBA"), dtype=np.float32) / 255.0
        alpha = rgba[..., 3]
        if alpha.min() < 0.99:
            gray = rgba[..., :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
            # Drawings are often strokes on a transparent canvas: the ink is where alpha is. Put them on
            # whichever background (white or black) gives the ink the most contrast.
            on_white = gray * alpha + (1 - alpha)
            on_black = gray * alpha
            return on_white if on_white.std() >= on_black.std() else on_black
    if image.mode == "I;16" or image.mode == "I":
        array = np.asarray(image, dtype=np.float32)
        return array / max(float(array.max()), 1.0)
    return np.asarray(ImageOps.exif_transpose(image).convert("L"), dtype=np.float32) / 255.0


def _ink_on_black(gray: np.ndarray) -> np.ndarray:
    """Make the ink bright and the background zero, whatever the polarity and however uneven the light."""
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    if np.median(border) > 0.5:  # a light background: dark ink on paper
        gray = 1.0 - gray
    h, w = gray.shape
    if min(h, w) >= 32:
        # Uneven lighting: estimate the background as a low percentile of each tile (the ink covers little
        # of any tile), smooth it back up to full size and subtract it.
        tiles, th, tw = 8, h // 8, w // 8
        blocks = gray[: th * tiles, : tw * tiles].reshape(tiles, th, tiles, tw).transpose(0, 2, 1, 3)
        grid = np.percentile(blocks.reshape(tiles, tiles, th * tw), 30, axis=2).astype(np.float32)
        background = np.asarray(
            Image.fromarray(grid, mode="F").resize((w, h), Image.Resampling.BILINEAR), dtype=np.float32
        )
        gray = np.clip(gray - background, 0.0, None)
    else:
        gray = np.clip(gray - np.median(border if np.median(border) < 0.5 else 1 - border), 0.0, None)
    peak = np.percentile(gray[gray > 0], 99) if (gray > 0).any() else 0.0
    if peak <= 0.05:  # nothing that looks like ink
        return np.zeros_like(gray)
    gray = np.clip(gray / peak, 0.0, 1.0)
    # Paper texture, sensor and JPEG noise: anything within a few noise deviations of the paper, or below
    # half the ink/paper threshold, is background. MNIST's background is exactly 0.
    centre = float(np.median(gray))
    noise = 1.4826 * float(np.median(np.abs(gray - centre)))
    threshold = _otsu(gray)
    gray[gray < max(0.5 * threshold, centre + 5 * noise)] = 0.0
    return gray


def _ink_box(ink: np.ndarray) -> tuple[slice, slice] | None:
    """The bounding box of the strong ink, ignoring isolated specks that would shrink the digit."""
    strong = ink >= _otsu(ink[ink > 0]) if (ink > 0).any() else ink > 0
    if min(ink.shape) >= 100:
        # On large images a stroke is several pixels wide; a 3x3 erosion removes dust but keeps strokes.
        eroded = np.asarray(Image.fromarray(strong.astype(np.uint8) * 255).filter(ImageFilter.MinFilter(3))) > 0
        strong = eroded if eroded.any() else strong
    rows, cols = np.nonzero(strong)
    if rows.size == 0:
        return None
    pad = 1 if min(ink.shape) >= 100 else 0
    return (slice(max(rows.min() - pad, 0), rows.max() + 1 + pad),
            slice(max(cols.min() - pad, 0), cols.max() + 1 + pad))


def _otsu(values: np.ndarray) -> float:
    hist, edges = np.histogram(values, bins=64, range=(0.0, 1.0))
    centres = (edges[:-1] + edges[1:]) / 2
    weight = np.cumsum(hist)
    total = weight[-1]
    mean = np.cumsum(hist * centres)
    between = (mean[-1] * weight / total - mean) ** 2 / np.maximum(weight * (total - weight), 1)
    return float(centres[np.argmax(between)])


def to_mnist(image: Image.Image | np.ndarray) -> np.ndarray:
    """A picture of one digit -> (28, 28) uint8, white ink on black, cropped, 20 px, centred by mass.

    A 28x28 input is taken to be MNIST-like already: only its polarity is fixed, so MNIST digits written
    out by `digitlab data convert` come back unchanged.
    """
    if isinstance(image, np.ndarray):
        array = image.astype(np.float32)
        gray = array / 255.0 if array.max() > 1.0 else array
        if gray.ndim == 3:
            gray = gray.mean(axis=2)
    else:
        gray = _to_gray(image)
    if gray.shape == (28, 28):
        border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
        if np.median(border) > 0.5:
            gray = 1.0 - gray
        return np.clip(np.rint(gray * 255), 0, 255).astype(np.uint8)
    ink = _ink_on_black(gray)
    box = _ink_box(ink)
    if box is None:
        return np.zeros((28, 28), dtype=np.uint8)
    crop = ink[box]
    h, w = crop.shape
    scale = 20.0 / max(h, w)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    small = np.asarray(
        Image.fromarray(crop, mode="F").resize((new_w, new_h), Image.Resampling.LANCZOS, reducing_gap=3.0),
        dtype=np.float32,
    ).clip(0.0, 1.0)
    # Paste so the centre of mass lands on (14, 14), as MNIST did, clamped so no ink falls off the edge.
    total = small.sum()
    cy = (small.sum(axis=1) * np.arange(new_h)).sum() / total if total > 0 else new_h / 2
    cx = (small.sum(axis=0) * np.arange(new_w)).sum() / total if total > 0 else new_w / 2
    top = int(np.clip(round(14 - cy), 0, 28 - new_h))
    left = int(np.clip(round(14 - cx), 0, 28 - new_w))
    out = np.zeros((28, 28), dtype=np.float32)
    out[top : top + new_h, left : left + new_w] = small
    return np.clip(np.rint(out * 255), 0, 255).astype(np.uint8)


