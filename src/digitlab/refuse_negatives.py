"""Things that are not digits, drawn by hand (stroke polylines), for training digitlab.refuse's check.

    from digitlab.refuse_negatives import KINDS, negative_ink, photograph
    ink, kind = negative_ink(np.random.default_rng(0))        # float (H, W) in [0, 1], white ink on black
    picture = photograph(ink, np.random.default_rng(1))       # uint8 grey: dark ink on lit, noisy paper

Letters (capitals and lowercase, minus those that are fair readings of a digit: O o I l i j Z z S s B G b
g q T D), symbols, scribbles, geometric drawings, dots/dashes/blobs and textured paper are built from
jittered polylines with a random pen, slant and size, then `photograph`ed by a small paper-and-camera model
of this module's own. None of it uses fonts or `digitlab.synth`: synth.non_digit_photo (font letters, its
drawings, its paper) stays a held-out measure of how the check generalises.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from scipy import ndimage

KINDS = ("letters", "symbols", "scribble", "drawing", "marks", "texture")
WEIGHTS = (0.32, 0.2, 0.14, 0.18, 0.1, 0.06)

Stroke = list[tuple[float, float]]  # points in a unit box: x right, y down, both 0..1


def _arc(cx: float, cy: float, rx: float, ry: float, a0: float, a1: float, n: int = 14) -> Stroke:
    """Points on an ellipse from angle a0 to a1 (degrees, 0 = right, 90 = up)."""
    t = np.radians(np.linspace(a0, a1, n))
    return [(cx + rx * np.cos(a), cy - ry * np.sin(a)) for a in t]


# Each glyph: strokes in a unit box, capitals filling it, lowercase in its lower part (x-height 0.45-1).
GLYPHS: dict[str, list[Stroke]] = {
    "A": [[(0, 1), (0.5, 0), (1, 1)], [(0.22, 0.6), (0.78, 0.6)]],
    "C": [_arc(0.55, 0.5, 0.45, 0.5, 50, 310)],
    "E": [[(0.9, 0), (0.1, 0), (0.1, 1), (0.9, 1)], [(0.1, 0.5), (0.7, 0.5)]],
    "F": [[(0.9, 0), (0.1, 0), (0.1, 1)], [(0.1, 0.5), (0.7, 0.5)]],
    "H": [[(0.1, 0), (0.1, 1)], [(0.9, 0), (0.9, 1)], [(0.1, 0.5), (0.9, 0.5)]],
    "K": [[(0.1, 0), (0.1, 1)], [(0.9, 0), (0.1, 0.6)], [(0.35, 0.42), (0.9, 1)]],
    "L": [[(0.1, 0), (0.1, 1), (0.85, 1)]],
    "M": [[(0, 1), (0.1, 0), (0.5, 0.7), (0.9, 0), (1, 1)]],
    "N": [[(0.1, 1), (0.1, 0), (0.9, 1), (0.9, 0)]],
    "P": [[(0.15, 1), (0.15, 0)], [(0.15, 0), *_arc(0.5, 0.27, 0.4, 0.27, 90, -90), (0.15, 0.54)]],
    "R": [[(0.15, 1), (0.15, 0)], [(0.15, 0), *_arc(0.5, 0.25, 0.4, 0.25, 90, -90), (0.15, 0.5)],
          [(0.45, 0.5), (0.9, 1)]],
    "U": [[(0.1, 0), *_arc(0.5, 0.6, 0.4, 0.4, 180, 360), (0.9, 0)]],
    "V": [[(0, 0), (0.5, 1), (1, 0)]],
    "W": [[(0, 0), (0.25, 1), (0.5, 0.3), (0.75, 1), (1, 0)]],
    "X": [[(0, 0), (1, 1)], [(1, 0), (0, 1)]],
    "Y": [[(0, 0), (0.5, 0.5), (1, 0)], [(0.5, 0.5), (0.5, 1)]],
    "H2": [[(0.1, 0), (0.1, 1)], [(0.9, 0), (0.9, 1)], [(0.1, 0.45), (0.9, 0.55)]],
    "a": [_arc(0.45, 0.72, 0.35, 0.28, 80, 440), [(0.8, 0.45), (0.85, 1)]],
    "c": [_arc(0.55, 0.72, 0.4, 0.28, 50, 310)],
    "d": [_arc(0.45, 0.72, 0.35, 0.28, 0, 360), [(0.8, 0), (0.8, 1)]],
    "e": [[(0.15, 0.72), (0.9, 0.72), *_arc(0.52, 0.72, 0.38, 0.28, 0, 320)]],
    "f": [[*_arc(0.7, 0.15, 0.25, 0.15, 20, 180), (0.45, 1)], [(0.15, 0.45), (0.8, 0.45)]],
    "h": [[(0.15, 0), (0.15, 1)], [(0.15, 0.7), *_arc(0.5, 0.7, 0.35, 0.25, 160, 0), (0.85, 1)]],
    "k": [[(0.15, 0), (0.15, 1)], [(0.8, 0.45), (0.15, 0.75), (0.85, 1)]],
    "m": [[(0.05, 0.45), (0.05, 1)], [(0.05, 0.6), *_arc(0.28, 0.62, 0.22, 0.17, 170, 0), (0.5, 1)],
          [(0.5, 0.62), *_arc(0.72, 0.62, 0.22, 0.17, 180, 0), (0.94, 1)]],
    "n": [[(0.15, 0.45), (0.15, 1)], [(0.15, 0.65), *_arc(0.5, 0.65, 0.35, 0.2, 170, 0), (0.85, 1)]],
    "p": [[(0.15, 0.45), (0.15, 1.35)], _arc(0.45, 0.68, 0.32, 0.23, 0, 360)],
    "r": [[(0.2, 0.45), (0.2, 1)], [(0.2, 0.7), *_arc(0.55, 0.65, 0.35, 0.2, 170, 30)]],
    "t": [[(0.4, 0.05), (0.4, 0.9), *_arc(0.6, 0.85, 0.2, 0.15, 180, 300)], [(0.1, 0.4), (0.8, 0.4)]],
    "u": [[(0.15, 0.45), *_arc(0.5, 0.75, 0.35, 0.25, 180, 360), (0.85, 0.45)], [(0.85, 0.45), (0.88, 1)]],
    "v": [[(0.05, 0.45), (0.5, 1), (0.95, 0.45)]],
    "w": [[(0, 0.45), (0.25, 1), (0.5, 0.6), (0.75, 1), (1, 0.45)]],
    "x": [[(0.1, 0.45), (0.9, 1)], [(0.9, 0.45), (0.1, 1)]],
    "y": [[(0.1, 0.45), (0.5, 0.95)], [(0.9, 0.45), (0.35, 1.4)]],
    "+": [[(0.5, 0.1), (0.5, 0.9)], [(0.1, 0.5), (0.9, 0.5)]],
    "#": [[(0.35, 0), (0.25, 1)], [(0.75, 0), (0.65, 1)], [(0, 0.33), (1, 0.33)], [(0, 0.67), (1, 0.67)]],
    "*": [[(0.5, 0), (0.5, 1)], [(0.07, 0.25), (0.93, 0.75)], [(0.93, 0.25), (0.07, 0.75)]],
    "?": [[*_arc(0.5, 0.28, 0.35, 0.26, 160, -60), (0.5, 0.55), (0.5, 0.7)], [(0.5, 0.92), (0.5, 0.95)]],
    "!": [[(0.5, 0), (0.5, 0.65)], [(0.5, 0.93), (0.5, 0.96)]],
    "$": [[*_arc(0.5, 0.3, 0.35, 0.2, 30, 270), *_arc(0.5, 0.7, 0.35, 0.2, 90, -150)], [(0.5, 0), (0.5, 1)]],
    "=": [[(0, 0.35), (1, 0.35)], [(0, 0.65), (1, 0.65)]],
    "<": [[(0.9, 0.1), (0.1, 0.5), (0.9, 0.9)]],
    ">": [[(0.1, 0.1), (0.9, 0.5), (0.1, 0.9)]],
    "~": [[*_arc(0.27, 0.55, 0.23, 0.15, 180, 0), *_arc(0.73, 0.45, 0.23, 0.15, 180, 360)]],
    "@": [_arc(0.5, 0.5, 0.2, 0.2, 0, 360), [(0.7, 0.3), (0.72, 0.65), *_arc(0.5, 0.5, 0.45, 0.45, -20, 330)]],
    "%": [[(0.9, 0), (0.1, 1)], _arc(0.2, 0.18, 0.15, 0.15, 0, 360), _arc(0.8, 0.82, 0.15, 0.15, 0, 360)],
    "&": [[(0.95, 1), *_arc(0.4, 0.2, 0.2, 0.18, -60, 240), (0.15, 0.75), *_arc(0.38, 0.78, 0.23, 0.2, 180, 300),
           (0.9, 0.5)]],
}
LETTERS = [k for k in GLYPHS if k.isalpha() or k == "H2"]
SYMBOLS = [k for k in GLYPHS if k not in LETTERS]


def _shape(what: str, g: np.random.Generator) -> list[Stroke]:
    """A geometric drawing as strokes in a unit box."""
    if what == "star":
        a = np.pi / 2 + np.arange(6) * 4 * np.pi / 5
        return [[(0.5 + 0.5 * np.cos(t), 0.5 - 0.5 * np.sin(t)) for t in a]]
    if what == "house":
        return [[(0.1, 0.45), (0.5, 0), (0.9, 0.45)], [(0.15, 0.4), (0.15, 1), (0.85, 1), (0.85, 0.4)],
                [(0.4, 1), (0.4, 0.7), (0.6, 0.7), (0.6, 1)]]
    if what == "heart":
        t = np.linspace(0, 2 * np.pi, 40)
        x, y = 16 * np.sin(t) ** 3, 13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t)
        return [[(0.5 + a / 34, 0.45 - b / 34) for a, b in zip(x, y, strict=True)]]
    if what == "arrow":
        return [[(0, 0.5), (1, 0.5)], [(0.7, 0.25), (1, 0.5), (0.7, 0.75)]]
    if what == "smiley":
        return [_arc(0.5, 0.5, 0.5, 0.5, 0, 360, 30), _arc(0.33, 0.35, 0.04, 0.05, 0, 360, 6),
                _arc(0.67, 0.35, 0.04, 0.05, 0, 360, 6), _arc(0.5, 0.5, 0.3, 0.28, 200, 340)]
    if what == "triangle":
        return [[(0.5, 0), (1, 1), (0, 1), (0.5, 0)]]
    if what == "square":
        return [[(0, 0), (1, 0), (1, 1), (0, 1), (0, 0)], [(0, 0), (1, 1)]] if g.random() < 0.3 else \
            [[(0, 0), (1, 0), (1, 1), (0, 1), (0, 0)]]
    if what == "spiral":
        t = np.linspace(0, g.uniform(4, 8) * np.pi, 80)
        r = t / t[-1] * 0.5
        return [[(0.5 + ri * np.cos(ti), 0.5 + ri * np.sin(ti)) for ri, ti in zip(r, t, strict=True)]]
    if what == "hatching":
        k = int(g.integers(3, 7))
        lines = [[(i / k, 0), (i / k + 0.3, 1)] for i in range(k)]
        return lines + ([[(0, i / k), (1, i / k + 0.2)] for i in range(k)] if g.random() < 0.6 else [])
    if what == "sun":
        rays = [[(0.5 + 0.3 * np.cos(a), 0.5 + 0.3 * np.sin(a)), (0.5 + 0.5 * np.cos(a), 0.5 + 0.5 * np.sin(a))]
                for a in np.arange(8) * np.pi / 4]
        return [_arc(0.5, 0.5, 0.22, 0.22, 0, 360, 20), *rays]
    if what == "fish":
        return [[*_arc(0.4, 0.5, 0.35, 0.25, 40, 320, 20), (1, 0.25), (1, 0.75), (0.67, 0.34)]]
    if what == "flower":
        petals = [_arc(0.5 + 0.28 * np.cos(a), 0.4 + 0.28 * np.sin(a), 0.14, 0.14, 0, 360, 10)
                  for a in np.arange(5) * 2 * np.pi / 5]
        return [*petals, [(0.5, 0.6), (0.5, 1)]]
    # cloud
    return [[*_arc(0.25, 0.6, 0.2, 0.2, 90, 270), *_arc(0.75, 0.6, 0.2, 0.2, -90, 90),
             *_arc(0.5, 0.4, 0.3, 0.25, 0, 180)]]


DRAWINGS = ("star", "house", "heart", "arrow", "smiley", "triangle", "square", "spiral", "hatching", "sun",
            "fish", "flower", "cloud")


def _scribble(g: np.random.Generator) -> list[Stroke]:
    """Tangles: long smooth random walks, loops, zigzags; long enough to have several turns (a short
    curve could fairly be a 1, 2 or 7)."""
    style = int(g.integers(3))
    if style == 0:
        n = int(g.integers(40, 160))
        walk = ndimage.gaussian_filter1d(np.cumsum(g.normal(0, 1, (n, 2)), axis=0), g.uniform(1.5, 4), axis=0)
    elif style == 1:  # a row of loops, like cursive e's or a telephone cord
        t = np.linspace(0, g.uniform(3, 8) * 2 * np.pi, 200)
        walk = np.stack([t * g.uniform(0.1, 0.3) + np.cos(t), np.sin(t) * g.uniform(0.8, 1.5)], 1)
        walk += ndimage.gaussian_filter1d(g.normal(0, 0.3, walk.shape), 5, axis=0)
    else:  # zigzag
        k = int(g.integers(5, 14))
        walk = np.stack([np.arange(k) + g.normal(0, 0.2, k), (np.arange(k) % 2) * 3 + g.normal(0, 0.4, k)], 1)
        if g.random() < 0.5:
            walk = walk[:, ::-1]
    walk = (walk - walk.min(0)) / np.maximum(np.ptp(walk, axis=0), 1e-6)
    return [[tuple(p) for p in walk]]


def _marks(g: np.random.Generator) -> tuple[list[Stroke], bool]:
    """Dots, dashes and blobs; True when they are filled blobs (drawn thick)."""
    n = int(g.integers(1, 7))
    style = int(g.integers(3))
    if style == 0:  # dots
        return [[(x, y), (x + 0.01, y)] for x, y in g.uniform(0, 1, (n, 2))], True
    if style == 1:  # dashes
        out = []
        for x, y in g.uniform(0, 1, (n, 2)):
            # Near horizontal only: one upright dash is a fair 1.
            a, r = g.uniform(-0.4, 0.4), g.uniform(0.05, 0.25)
            out.append([(x - r * np.cos(a), y - r * np.sin(a)), (x + r * np.cos(a), y + r * np.sin(a))])
        return out, False
    # Roundish: a long thin blob is a fair 1.
    return [_arc(x, y, r, r * g.uniform(0.6, 1.6), 0, 360, 10) for (x, y), r in
            zip(g.uniform(0, 1, (n, 2)), g.uniform(0.05, 0.3, n), strict=True)], True


def _draw(strokes: list[Stroke], g: np.random.Generator, aspect: float, fill: bool = False) -> np.ndarray:
    """Strokes in a unit box -> ink on a canvas: jitter, slant, size, pen width, margins."""
    height = int(g.integers(40, 200))
    width = max(8, int(height * aspect))
    pen = max(1.0, height * g.uniform(0.03, 0.12))
    margin = int(height * g.uniform(0.2, 0.8))
    slant = g.uniform(-0.35, 0.35)
    wobble = g.uniform(0.0, 0.04)
    image = Image.new("L", (width + 2 * margin + int(abs(slant) * height), height + 2 * margin), 0)
    draw = ImageDraw.Draw(image)
    shift = margin + (abs(slant) * height if slant > 0 else 0)
    for stroke in strokes:
        p = np.asarray(stroke, np.float64)
        p = p + ndimage.gaussian_filter1d(g.normal(0, wobble, p.shape), 1.5, axis=0) if len(p) > 3 else \
            p + g.normal(0, wobble, p.shape)
        x = shift + p[:, 0] * width - slant * p[:, 1] * height
        y = margin + p[:, 1] * height
        points = list(zip(x.tolist(), y.tolist(), strict=True))
        if fill and len(points) > 3:
            draw.polygon(points, fill=255)
        else:
            w = int(round(pen * (3 if fill else 1)))
            draw.line(points, fill=255, width=w, joint="curve")
            for end in (points[0], points[-1]):  # round pen ends
                draw.ellipse([end[0] - w / 2, end[1] - w / 2, end[0] + w / 2, end[1] + w / 2], fill=255)
    ink = np.asarray(image, np.float32) / 255.0
    if g.random() < 0.3:  # a soft pencil or a felt tip bleeding
        ink = ndimage.gaussian_filter(ink, g.uniform(0.3, 1.2) * pen / 4)
    if g.random() < 0.15:  # a pencil skip
        ys, xs = np.nonzero(ink > 0.5)
        if ys.size:
            k = int(g.integers(ys.size))
            ink[max(0, ys[k] - 3):ys[k] + 3, max(0, xs[k] - 3):xs[k] + 3] = 0
    return ink


def glyph_ink(name: str, g: np.random.Generator) -> np.ndarray:
    """One glyph of GLYPHS ('A', 'k', '&', ...) drawn by hand, as ink: what the tests draw."""
    return _draw(GLYPHS[name], g, g.uniform(0.6, 1.0))


def negative_ink(g: np.random.Generator, kind: str | None = None) -> tuple[np.ndarray, str]:
    """One non-digit as ink (float (H, W) in [0, 1], white on black) and its kind (one of KINDS)."""
    kind = kind or str(g.choice(KINDS, p=WEIGHTS))
    if kind in ("letters", "symbols"):
        names = [str(g.choice(LETTERS if kind == "letters" else SYMBOLS)) for _ in range(1 + (g.random() < 0.25)
                                                                                        * int(g.integers(1, 4)))]
        strokes: list[Stroke] = []
        for i, name in enumerate(names):  # side by side, as a word: each glyph 0.8 wide with a gap
            for stroke in GLYPHS[name]:
                strokes.append([(0.95 * i + 0.8 * x, y) for x, y in stroke])
        low = min(y for s in strokes for _, y in s)
        high = max(y for s in strokes for _, y in s)
        strokes = [[(x / (0.95 * len(names)), (y - low) / (high - low)) for x, y in s] for s in strokes]
        aspect = (0.95 * len(names)) * g.uniform(0.6, 1.2) / max(high - low, 0.3)
        return _draw(strokes, g, aspect), kind
    if kind == "scribble":
        return _draw(_scribble(g), g, g.uniform(0.5, 2.5)), kind
    if kind == "drawing":
        what = str(g.choice(DRAWINGS))
        return _draw(_shape(what, g), g, g.uniform(0.7, 1.4) * (2.5 if what == "arrow" else 1)), kind
    if kind == "marks":
        strokes, filled = _marks(g)
        return _draw(strokes, g, g.uniform(0.5, 2.5), fill=filled), kind
    # texture: no strokes at all, only grain, blotches and fibres for the paper model to show
    h, w = int(g.integers(40, 200)), int(g.integers(40, 300))
    blotch = ndimage.gaussian_filter(g.normal(0, 1, (h, w)), g.uniform(1, 8))
    return np.clip(blotch / max(float(blotch.max()), 1e-6), 0, 1) * g.uniform(0.05, 0.5), kind


def photograph(ink: np.ndarray, g: np.random.Generator) -> np.ndarray:
    """Ink written on paper and photographed: uint8 grey, dark on light (sometimes the reverse)."""
    h, w = ink.shape
    paper = g.uniform(0.6, 0.97)
    pen = g.uniform(0.0, 0.4)
    image = paper - (paper - pen) * ink * g.uniform(0.6, 1.0)
    yy, xx = np.mgrid[0:h, 0:w]
    angle = g.uniform(0, 2 * np.pi)
    ramp = np.cos(angle) * xx / w + np.sin(angle) * yy / h
    image = image * (1 - g.uniform(0, 0.3) * (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6))
    grain = ndimage.gaussian_filter(g.normal(0, 1, (h, w)), g.uniform(2, 12))
    image = image * (1 + g.uniform(0, 0.06) * grain / max(float(np.abs(grain).max()), 1e-6))
    image = image + g.normal(0, g.uniform(0, 0.03), (h, w))
    if g.random() < 0.05:
        image = 1 - image
    picture = Image.fromarray(np.clip(np.rint(image * 255), 0, 255).astype(np.uint8))
    if g.random() < 0.4:
        picture = picture.filter(ImageFilter.GaussianBlur(g.uniform(0.3, 1.2)))
    if g.random() < 0.5:
        buffer = io.BytesIO()
        picture.save(buffer, format="JPEG", quality=int(g.integers(30, 95)))
        picture = Image.open(buffer)
    return np.asarray(picture.convert("L"))


def negative_crop(g: np.random.Generator) -> np.ndarray:
    """One non-digit as the classifier sees it: drawn, photographed (or left clean), through `to_mnist`."""
    from digitlab.data.images import to_mnist

    ink, kind = negative_ink(g)
    return to_mnist(photograph(ink, g) if kind == "texture" or g.random() < 0.6 else ink)


def digit_crop(digit: np.ndarray, g: np.random.Generator) -> np.ndarray:
    """An MNIST digit written larger, with another pen, photographed (or clean), through `to_mnist`: a digit
    with the same artefacts of preprocessing as the negatives, so those artefacts tell the check nothing."""
    from digitlab.data.images import to_mnist

    side = int(g.integers(40, 200))
    ink = np.asarray(Image.fromarray(digit).resize((side, side), Image.Resampling.BILINEAR), np.float32) / 255
    pen = int(g.choice([-1, 0, 0, 1, 2])) * side // 40
    if pen > 0:
        ink = ndimage.grey_dilation(ink, size=(pen + 1, pen + 1))
    elif pen < 0 and side >= 60:
        ink = ndimage.grey_erosion(ink, size=(2, 2))
    margin = int(side * g.uniform(0.1, 0.6))
    ink = np.pad(ink, margin)
    return to_mnist(photograph(ink, g) if g.random() < 0.6 else ink)
