"""The pictures `to_mnist` must read (issue 11, item 1), made from MNIST test digits, and how well each is read.

    python benchmarks/preprocess_cases.py [--n 300]

Each case turns MNIST test digits into the kind of file a user has (frame-filling scans, marker and pencil,
blur, postal-scan resolution, uneven light, noisy JPEG photos, either polarity, transparent canvases, a small
digit on a big photo), writes it as PNG or JPEG bytes, and sends it through open_image -> to_mnist -> the shipped
strong model, as `digitlab predict` does. The table puts the frozen pre-issue-11 preprocessing
(benchmarks/legacy_preprocess.py) beside today's, on the same files, and is written to
benchmarks/results/preprocess_cases.md. tests/test_preprocess.py uses the same cases on a smaller subset.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]

Case = Callable[[np.ndarray, np.random.Generator], bytes]


def _png(array: np.ndarray, mode: str | None = None) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.clip(np.rint(array), 0, 255).astype(np.uint8), mode).save(buffer, format="PNG")
    return buffer.getvalue()


def _jpeg(array: np.ndarray, quality: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.clip(np.rint(array), 0, 255).astype(np.uint8)).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def _ink_crop(digit: np.ndarray) -> np.ndarray:
    rows, cols = np.nonzero(digit > 30)
    return digit[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]


def _resize(array: np.ndarray, width: int, height: int) -> np.ndarray:
    image = Image.fromarray(array.astype(np.float32), mode="F")
    return np.asarray(image.resize((width, height), Image.Resampling.BICUBIC), dtype=np.float32).clip(0, 255)


def _fill(digit: np.ndarray, side: int) -> np.ndarray:
    """The digit's ink scaled so its longer side is `side`, in a square `side` frame: edge to edge."""
    crop = _ink_crop(digit)
    h, w = crop.shape
    scale = side / max(h, w)
    small = _resize(crop, max(1, round(w * scale)), max(1, round(h * scale)))
    out = np.zeros((side, side), np.float32)
    top, left = (side - small.shape[0]) // 2, (side - small.shape[1]) // 2
    out[top : top + small.shape[0], left : left + small.shape[1]] = small
    return out / 255.0


def _up(digit: np.ndarray, factor: int) -> np.ndarray:
    return _resize(digit.astype(np.float32), 28 * factor, 28 * factor) / 255.0


def _on_paper(ink: np.ndarray, paper: float | np.ndarray = 245.0, pen: float = 20.0) -> np.ndarray:
    return paper * (1 - ink) + pen * ink


def frame_filling(digit: np.ndarray, g: np.random.Generator) -> bytes:
    """A scan cut to the digit: the ink touches the frame's top and bottom (or sides)."""
    return _png(_on_paper(_fill(digit, 64)))


def thick_marker(digit: np.ndarray, g: np.random.Generator) -> bytes:
    """A felt marker: strokes about three times MNIST's width, the digit filling most of the picture."""
    ink = ndimage.grey_dilation(_fill(digit, 100), size=(9, 9))
    return _png(_on_paper(np.pad(ink, 6)))


def thin_pen(digit: np.ndarray, g: np.random.Generator) -> bytes:
    """A fine pen, the scan cut to the digit: a line of about 3 px on a 160 px digit touching the frame."""
    shape = np.pad(_fill(digit, 160), 2) > 0.5
    depth = ndimage.distance_transform_edt(shape)
    ridge = shape & (depth >= ndimage.maximum_filter(depth, 5) - 1.5)  # the stroke's middle line
    ink = ndimage.binary_dilation(ridge, iterations=1).astype(np.float32)
    return _png(_on_paper(ndimage.gaussian_filter(ink, 0.6)))


def blur(digit: np.ndarray, g: np.random.Generator) -> bytes:
    """Out of focus: Gaussian blur of about a stroke's width, digit filling the frame."""
    ink = ndimage.gaussian_filter(np.pad(_fill(digit, 96), 4), 5.0)
    return _png(_on_paper(ink / max(ink.max(), 1e-6)))


def low_resolution(digit: np.ndarray, g: np.random.Generator) -> bytes:
    """A postal scan: the digit at 10 px, shown at 64x64, filling the frame."""
    tiny = _fill(digit, 10) * 255
    return _png(_on_paper(_resize(tiny, 64, 64) / 255.0))


def tiny_scan(digit: np.ndarray, g: np.random.Generator) -> bytes:
    """An 8x8 file as stored, made as the UCI optical digits were: a 32x32 black-and-white bitmap of the
    digit filling it, each 4x4 block's share of ink one pixel."""
    bitmap = _fill(digit, 32) > 0.5
    return _png(_on_paper(bitmap.reshape(8, 4, 8, 4).mean(axis=(1, 3))))


def light_pencil(digit: np.ndarray, g: np.random.Generator) -> bytes:
    """A thin, light pencil line: grey ink an eighth of the way from paper to black, on grainy paper."""
    ink = ndimage.binary_erosion(_up(digit, 5) > 0.6, iterations=2).astype(np.float32)
    ink = ndimage.gaussian_filter(ink, 0.7)
    grain = ndimage.gaussian_filter(g.normal(0, 1, ink.shape), 2) * 12 + g.normal(0, 3, ink.shape)
    return _png(235 + grain - 32 * ink)


def uneven_light(digit: np.ndarray, g: np.random.Generator) -> bytes:
    """Light from one side: the paper's brightness falls from 250 to 50 across the picture."""
    ink = np.pad(_up(digit, 4), 16)
    h, w = ink.shape
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    angle = g.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * (xx - 0.5) + np.sin(angle) * (yy - 0.5)) + 0.5
    paper = 50 + 200 * np.clip(ramp, 0, 1)
    return _png(paper * (1 - 0.8 * ink))


def noisy_jpeg(digit: np.ndarray, g: np.random.Generator) -> bytes:
    """Paper texture, sensor noise and strong JPEG compression."""
    ink = np.pad(_up(digit, 4), 20)
    texture = ndimage.gaussian_filter(g.normal(0, 1, ink.shape), 3) * 40
    paper = 210 + texture + g.normal(0, 16, ink.shape)
    return _jpeg(paper * (1 - 0.6 * ink), quality=15)


def dark_on_grey(digit: np.ndarray, g: np.random.Generator) -> bytes:
    """Dark ink on dim, grey paper (a photo without flash): the paper itself is darker than mid-grey."""
    ink = np.pad(_up(digit, 4), 20)
    return _png(_on_paper(ink, paper=100.0 + g.normal(0, 2, ink.shape), pen=15.0))


def light_on_grey(digit: np.ndarray, g: np.random.Generator) -> bytes:
    """Chalk on a board: light strokes on a background lighter than mid-grey."""
    ink = np.pad(_up(digit, 4), 20)
    return _png(_on_paper(ink, paper=150.0 + g.normal(0, 2, ink.shape), pen=250.0))


def transparent_canvas(digit: np.ndarray, g: np.random.Generator) -> bytes:
    """Coloured brush strokes on a transparent 280x280 canvas, the digit filling it as people draw."""
    alpha = np.pad(ndimage.grey_dilation(_fill(digit, 250), size=(11, 11)), 15)
    rgba = np.zeros((*alpha.shape, 4), np.float32)
    rgba[..., :3] = (30, 60, 200)
    rgba[..., 3] = alpha * 255
    return _png(rgba, "RGBA")


def small_on_photo(digit: np.ndarray, g: np.random.Generator) -> bytes:
    """A 1000x750 photo of paper with a ~100 px digit anywhere, dust and pen dots elsewhere, JPEG."""
    h, w = 750, 1000
    size = int(g.integers(90, 130))
    ink = np.zeros((h, w), np.float32)
    top, left = int(g.integers(10, h - size - 10)), int(g.integers(10, w - size - 10))
    ink[top : top + size, left : left + size] = _resize(digit.astype(np.float32), size, size) / 255.0
    for _ in range(6):  # specks the size of a pen dot, far from the digit
        y, x = int(g.integers(0, h - 8)), int(g.integers(0, w - 8))
        if abs(y - top - size / 2) > size and abs(x - left - size / 2) > size:
            ink[y : y + 7, x : x + 7] = np.maximum(ink[y : y + 7, x : x + 7], 0.9)
    yy, xx = np.mgrid[0:h, 0:w]
    paper = 190 + 40 * xx / w - 30 * yy / h + g.normal(0, 5, (h, w))
    return _jpeg(paper * (1 - 0.75 * ink), quality=70)


def broken_strokes(digit: np.ndarray, g: np.random.Generator) -> bytes:
    """A pen that skips: gaps cut across the strokes of a frame-filling digit, pieces left apart."""
    ink = _fill(digit, 80)
    yy, xx = np.mgrid[0:80, 0:80]
    rows, cols = np.nonzero(ink > 0.5)
    for k in g.choice(len(rows), 3, replace=False):
        ink[(yy - rows[k]) ** 2 + (xx - cols[k]) ** 2 <= 16] = 0
    return _png(_on_paper(ink))


CASES: dict[str, Case] = {f.__name__: f for f in (
    frame_filling, thick_marker, thin_pen, blur, low_resolution, tiny_scan, light_pencil, uneven_light, noisy_jpeg,
    dark_on_grey, light_on_grey, transparent_canvas, small_on_photo, broken_strokes)}


def pictures(case: str, digits: np.ndarray, seed: int = 0) -> list[bytes]:
    g = np.random.default_rng(seed)
    return [CASES[case](d, g) for d in digits]


def accuracy(to_mnist: Callable, open_image: Callable, engine, files: list[bytes], labels: np.ndarray) -> float:
    prepared = np.stack([to_mnist(open_image(f)) for f in files])
    return float((engine.logits(prepared).argmax(1).numpy() == labels).mean())


def main() -> None:
    import argparse

    sys.path.insert(0, str(ROOT))
    from benchmarks import legacy_preprocess as legacy
    from digitlab.data import images
    from digitlab.data.idx import load_idx_split
    from digitlab.engine import load_engine

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300, help="MNIST test digits per case (spread over the set)")
    args = parser.parse_args()
    pixels, labels = load_idx_split(ROOT / "data" / "mnist", "test")
    pick = np.linspace(0, len(pixels) - 1, args.n).astype(int)
    digits, truth = pixels[pick].numpy(), labels[pick].numpy()
    engine = load_engine(["strong"], "torch", "cpu")
    lines = [f"Shipped strong model, {args.n} MNIST test digits per case, file -> open_image -> to_mnist -> model.",
             "", "| case | before (legacy to_mnist) | after |", "|---|---:|---:|"]
    base = accuracy(images.to_mnist, lambda d: d, engine, list(digits), truth)
    lines.append(f"| MNIST 28x28 as is | {base:.1%} | {base:.1%} |")
    for case in CASES:
        files = pictures(case, digits)
        before = accuracy(legacy.to_mnist, legacy.open_image, engine, files, truth)
        after = accuracy(images.to_mnist, images.open_image, engine, files, truth)
        lines.append(f"| {case} | {before:.1%} | {after:.1%} |")
        print(lines[-1], flush=True)
    lines += ["", f"Reproduce: `python benchmarks/preprocess_cases.py --n {args.n}`"]
    out = ROOT / "benchmarks" / "results" / "preprocess_cases.md"
    out.write_text("# to_mnist on the pictures of issue 11, item 1\n\n" + "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
