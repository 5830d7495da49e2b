"""Any picture of a digit -> a 28x28 MNIST-style image.

MNIST was made like this (LeCun et al.): white ink on black, the digit cropped to its ink, the longer side
scaled to 20 px keeping the aspect ratio, pasted into 28x28 so that its centre of mass sits at the centre.
`to_mnist` repeats those steps for photographs, scans, canvas drawings and files of any size or colour mode,
after undoing what MNIST never had: the table around the sheet and the box printed around a form's field (only
what they enclose is read: digitlab.sheet), dark ink on light paper, uneven lighting, JPEG noise. The ink is found on
the picture reduced to ~96 px (fast, and enough to see strokes) with scipy.ndimage: polarity from the border
against the ink's tail, the paper by a grey opening wider than the measured stroke width (so digits that fill
the frame or are written with a marker are not hollowed out), lines printed on the paper left out (a line
under the digit, ruled paper: digitlab.ruled), and the connected pieces of ink near the heaviest one (a broken
stroke stays whole; specks far away are dropped). The digit's box is then cut from the full-resolution picture,
with the background subtracted there. benchmarks/preprocess_cases.py measures it.

The web app and `digitlab predict` both call `to_mnist`; there is no second copy of this logic.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from scipy import ndimage

from digitlab.errors import DigitlabError
from digitlab.ruled import find_rules
from digitlab.sheet import Field, border, locate_field

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
            # Drawings are often strokes on a transparent canvas: the ink is where alpha is, in any colour.
            # Put them on white if the strokes are dark, on black if they are light.
            stroke = float((gray * alpha).sum() / max(float(alpha.sum()), 1e-6))
            return gray * alpha + (1 - alpha) if stroke < 0.5 else gray * alpha
    if image.mode == "I;16" or image.mode == "I":
        array = np.asarray(image, dtype=np.float32)
        return array / max(float(array.max()), 1.0)
    return np.asarray(ImageOps.exif_transpose(image).convert("L"), dtype=np.float32) / 255.0


# The heavy steps (background, stroke width, components) run on the picture reduced to about this many
# pixels on its longer side: enough to see a digit's strokes, and what keeps a 280x280 canvas under 3 ms.
WORK_SIDE = 96


class _Ink:
    """What the reduced picture says about the ink: polarity, background, ink mask and levels."""

    def __init__(self, gray: np.ndarray) -> None:
        h, w = gray.shape
        self.factor = max(1, -(-max(h, w) // WORK_SIDE))
        small = (np.asarray(Image.fromarray(gray, mode="F").reduce(self.factor), dtype=np.float32)
                 if self.factor > 1 else gray)
        self.invert = self._dark_ink(small)
        x = 1.0 - small if self.invert else small
        self.background = self._background(x)
        residual = x - self.background
        # Noise from the pixels that are clearly paper (MAD), the ink/paper split from Otsu's threshold.
        split = _otsu(np.clip(residual, 0.0, 1.0))
        paper = residual[residual < split]
        centre = float(np.median(paper)) if paper.size else 0.0
        noise = 1.4826 * float(np.median(np.abs(paper - centre))) if paper.size else 0.0
        self.threshold = max(0.5 * split, centre + 4 * noise, 0.02)
        self.mask = residual > self.threshold
        self.peak = float(np.percentile(residual[self.mask], 99)) if self.mask.any() else 0.0
        self.noise = noise
        # Ink is marks clearly darker than the paper: faint ones (under 10% darker) must also stand well clear
        # of the paper's grain, or a textured sheet is read as a page of specks. The faintest real ink here
        # (robustness: contrast severe, 12% darker) stands 25 times its noise clear, grainy pencil 16 times.
        self.has_ink = self.peak > 0.05 and (self.peak >= 0.1 or self.peak >= 12 * noise)

    @staticmethod
    def _dark_ink(small: np.ndarray) -> bool:
        """Polarity: the background is what the border mostly shows; ink is the far tail on one side of it."""
        edge = border(small)
        level = float(np.median(edge))
        low, high = np.percentile(small, [0.5, 99.5])
        dark = level - low > high - level
        # A shadow across part of the sheet puts two levels of paper on the border, and their median can lie
        # nearer the ink than the paper (a dark-on-light number read as light on dark: 5% of digitlab.synth's
        # shadowed photos). There, judge the ink's tail against the paper around it instead: a median over a
        # third of the picture follows a shadow's edge. Thick strokes can fill that window and leave tails on
        # both sides (a digit filling a low-resolution frame: one tail up to twice the other); only a clear
        # tail, 2.5 times the other or more, overrules the border (shadowed numbers: 3 to 10 times).
        b10, b90 = np.percentile(edge, [10, 90])
        if b90 - b10 > 0.2 * (high - low):
            f = max(1, -(-max(small.shape) // 48))  # the median on at most 48 px: ~1-8 ms
            coarse = np.asarray(Image.fromarray(small, mode="F").reduce(f), np.float32) if f > 1 else small
            around = ndimage.median_filter(coarse, size=max(3, min(coarse.shape) // 3), mode="nearest")
            below, above = np.percentile(coarse - around, [0.5, 99.5])
            if abs(-below - above) > 0.6 * max(-below, above, 1e-6):
                dark = -below > above
        return dark

    @staticmethod
    def _background(x: np.ndarray) -> np.ndarray:
        """The paper's brightness everywhere: a grey opening wider than the strokes removes them, whatever
        part of the picture they cover, and follows a gradient of light exactly."""
        side = min(x.shape)
        smooth = ndimage.uniform_filter(x, 3, mode="nearest") if side >= 8 else x
        rough = ndimage.grey_opening(smooth, size=max(3, side // 3), mode="nearest")
        rough_ink = smooth - rough
        mask = rough_ink > max(_otsu(np.clip(rough_ink, 0.0, 1.0)), 0.02)
        # Stroke width as area over half the outline (a stroke of width w and length L has an outline of about
        # 2L): the opening must be wider than a stroke, or thick strokes come out hollow. The 1.6 covers
        # crossings and diagonal strokes, whose outline counts more edge steps.
        edges = np.count_nonzero(mask[1:] != mask[:-1]) + np.count_nonzero(mask[:, 1:] != mask[:, :-1])
        width = 1.6 * 2.5 * np.count_nonzero(mask) / max(edges, 1)
        size = int(min(max(2 * width + 3, 5), side))
        background = ndimage.grey_opening(smooth, size=size, mode="nearest")
        return ndimage.uniform_filter(background, 3, mode="nearest")

    def region(self, gray: np.ndarray, rows: slice, cols: slice, keep: np.ndarray | None = None) -> np.ndarray:
        """Ink in [0, 1] on black for the full-resolution `gray[rows, cols]`; `keep` (a mask on the reduced
        picture) zeroes what lies outside the kept strokes."""
        f = self.factor
        x = gray[rows, cols]
        if self.invert:
            x = 1.0 - x
        h, w = x.shape
        if f > 1:
            box = (cols.start / f, rows.start / f, cols.stop / f, rows.stop / f)
            background = np.asarray(Image.fromarray(self.background, mode="F").resize(
                (w, h), Image.Resampling.BILINEAR, box=box), dtype=np.float32)
        else:
            background = self.background[rows, cols]
        residual = x - background
        floor = max(FLOOR * self.peak, self.threshold)
        if f > 1:
            # Each full-resolution pixel is noisier than the reduced one by about the reduction factor.
            floor = max(floor, min(4 * self.noise * f, 0.5 * self.peak))
        ink = np.clip((residual - floor) / max(self.peak - floor, 1e-6), 0.0, 1.0)
        if keep is not None:
            grown = ndimage.maximum_filter(keep, 3)
            r0, c0 = rows.start // f, cols.start // f
            part = grown[r0 : -(-rows.stop // f), c0 : -(-cols.stop // f)].repeat(f, 0).repeat(f, 1)
            ink *= part[rows.start - r0 * f :, cols.start - c0 * f :][:h, :w]
        return ink.astype(np.float32)


# Ink fainter than this share of the strongest is paper: MNIST's background is exactly 0.
FLOOR = 0.2
SMALL_SIDE = 32  # pictures smaller than this (but not MNIST's 28x28) are scaled up first


def _ink_on_black(gray: np.ndarray) -> np.ndarray:
    """Make the ink bright and the background zero, whatever the polarity and however uneven the light."""
    found = _Ink(gray)
    if not found.has_ink:
        return np.zeros_like(gray, dtype=np.float32)
    return found.region(gray, slice(0, gray.shape[0]), slice(0, gray.shape[1]))


def _digit_strokes(found: _Ink) -> np.ndarray | None:
    """The ink mask's pieces that belong to the digit: the heaviest piece and every piece near what is kept
    (a pen that skipped leaves gaps), leaving out specks far away."""
    labels, count = ndimage.label(found.mask, structure=np.ones((3, 3), bool))
    if count == 0:
        return None
    index = np.arange(1, count + 1)
    mass = ndimage.sum_labels(found.mask, labels, index)
    boxes = ndimage.find_objects(labels)
    main = int(np.argmax(mass))
    kept = {main}
    top, bottom = boxes[main][0].start, boxes[main][0].stop
    left, right = boxes[main][1].start, boxes[main][1].stop
    grew = True
    while grew:
        grew = False
        margin = max(2.0, 0.5 * max(bottom - top, right - left))
        for i, (rs, cs) in enumerate(boxes):
            if i in kept or mass[i] < 0.01 * mass[main]:
                continue
            gap = max(rs.start - bottom, top - rs.stop, cs.start - right, left - cs.stop, 0)
            if gap <= margin:
                kept.add(i)
                top, bottom = min(top, rs.start), max(bottom, rs.stop)
                left, right = min(left, cs.start), max(right, cs.stop)
                grew = True
    return np.isin(labels, index[sorted(kept)])


def _otsu(values: np.ndarray) -> float:
    hist = np.bincount(np.minimum((values.ravel() * 64).astype(np.intp), 63), minlength=64)
    edges = np.linspace(0.0, 1.0, 65)
    centres = (edges[:-1] + edges[1:]) / 2
    weight = np.cumsum(hist)
    total = weight[-1]
    mean = np.cumsum(hist * centres)
    between = (mean[-1] * weight / total - mean) ** 2 / np.maximum(weight * (total - weight), 1)
    return float(centres[np.argmax(between)])


def to_mnist(image: Image.Image | np.ndarray, *, look_for_field: bool = True) -> np.ndarray:
    """A picture of one digit -> (28, 28) uint8, white ink on black, cropped, 20 px, centred by mass.

    A 28x28 input is taken to be MNIST-like already: only its polarity is fixed, so MNIST digits written
    out by `digitlab data convert` come back unchanged. `look_for_field=False` skips looking for a sheet on a
    table or a printed box: for the crops `read` cuts from a field already found (about 1 ms each).
    """
    if isinstance(image, np.ndarray):
        array = image.astype(np.float32)
        gray = array / 255.0 if array.max() > 1.0 else array
        if gray.ndim == 3:
            gray = gray.mean(axis=2)
    else:
        gray = _to_gray(image)
    if gray.shape == (28, 28):
        if np.median(border(gray)) > 0.5:
            gray = 1.0 - gray
        return np.clip(np.rint(gray * 255), 0, 255).astype(np.uint8)
    gray = np.ascontiguousarray(gray, dtype=np.float32)
    # Only the sheet, where the table shows around it, and only the field inside a box printed around it: both
    # would otherwise decide which of ink and paper is dark (digitlab.sheet).
    field, boxed, empty = locate_field(gray) if look_for_field else Field(None)
    if empty:
        return np.zeros((28, 28), dtype=np.uint8)  # an empty printed box: blank
    if field is not None:
        gray = np.ascontiguousarray(gray[field[1] : field[3], field[0] : field[2]])
    if max(gray.shape) < SMALL_SIDE:
        # An 8x8 or 16x16 scan: a stroke is a pixel or less, too thin for the background and the ink
        # split to tell apart; bicubic upsampling gives the strokes a width first.
        k = -(-SMALL_SIDE // max(gray.shape))
        gray = np.asarray(Image.fromarray(gray, mode="F").resize((gray.shape[1] * k, gray.shape[0] * k),
                                                                 Image.Resampling.BICUBIC), np.float32).clip(0, 1)
    found = _Ink(gray)
    if found.has_ink and look_for_field:
        # A line printed under the digit, or ruled paper, is no stroke of it (digitlab.ruled).
        rules = find_rules(found.mask, boxed=boxed)
        if rules is not None:
            found.mask = found.mask & ~rules
    strokes = _digit_strokes(found) if found.has_ink else None
    if strokes is None:
        return np.zeros((28, 28), dtype=np.uint8)
    # The digit's box on the reduced picture, one reduced pixel wider, at full resolution.
    rows, cols = np.nonzero(strokes)
    f, (h, w) = found.factor, gray.shape
    ink = found.region(gray, slice(max((rows.min() - 1) * f, 0), min((rows.max() + 2) * f, h)),
                       slice(max((cols.min() - 1) * f, 0), min((cols.max() + 2) * f, w)), strokes)
    rows, cols = np.nonzero(ink)
    if rows.size == 0:
        return np.zeros((28, 28), dtype=np.uint8)
    crop = ink[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
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


def list_images(folder: Path) -> list[Path]:
    """Image files under `folder`, recursively, in a stable order."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def load_images(paths: list[Path]) -> torch.Tensor:
    """Decode and preprocess files into one (N, 28, 28) uint8 tensor."""
    return torch.from_numpy(np.stack([to_mnist(open_image(p)) for p in paths]) if paths else
                            np.zeros((0, 28, 28), dtype=np.uint8))


def load_class_folder(folder: Path) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """A labelled image folder: `folder/0/*.png ... folder/9/*.png` -> images, labels, file names."""
    paths, labels = [], []
    for digit in range(10):
        sub = folder / str(digit)
        if sub.is_dir():
            found = list_images(sub)
            paths += found
            labels += [digit] * len(found)
    if not paths:
        raise DigitlabError(f"{folder}: no images in subfolders 0..9")
    return load_images(paths), torch.tensor(labels, dtype=torch.int64), [str(p) for p in paths]


def is_class_folder(folder: Path) -> bool:
    return folder.is_dir() and any((folder / str(d)).is_dir() for d in range(10))


def save_png(path: Path, image: np.ndarray) -> None:
    from digitlab.fileio import atomic_write

    with atomic_write(path, "wb") as fh:
        Image.fromarray(image, mode="L").save(fh, format="PNG")
