"""Made-up photos of numbers written with MNIST test digits, and of things that are not digits.

    from digitlab.data.idx import load_idx_split
    from digitlab.synth import NON_DIGIT_KINDS, non_digit_photo, number_photo
    images, labels = (t.numpy() for t in load_idx_split("data/mnist", "test"))
    photo, number = number_photo((images, labels), seed=7, length=4)   # JPEG or PNG bytes, e.g. '0427'
    photo, kind = non_digit_photo(seed=7)                             # bytes, one of NON_DIGIT_KINDS

They measure `digitlab read` (benchmarks/read_numbers.py, issue 12 item 5). A number is 1-8 MNIST test
digits (so any number, leading zeros included, in real handwriting the model never trained on) set side by
side with gaps from slightly overlapping to wide, in different sizes, on a drifting baseline and with a
slant, sometimes with broken strokes or a thicker or thinner pen; then put on paper with a colour and a
texture, under uneven light (a gradient, sometimes a shadow), with noise, a little blur and JPEG. Non-digits
(blank paper, smudges, letters, symbols, scribbles, small drawings) get the same paper, light and camera.

Everything is drawn from `np.random.default_rng(seed)`: the same seed gives the same bytes (with the same
Pillow). `easy=True` gives clean, well-spaced numbers: a check that reading works at all.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont
from scipy import ndimage

if TYPE_CHECKING:
    from digitlab.segment import Layout

NON_DIGIT_KINDS = ("blank", "smudge", "letters", "symbols", "scribble", "drawing")
# Letters that are not drawn like a digit: O, I, l, Z, S, B, G, b, g, q, T, z, s, o, i, j would be fair
# readings as 0, 1, 2, 5, 8, 6, 9, 7 and are left out.
LETTERS = "ACEFHKMNPRUVWXYacdefhkmnprtuvwxy"
SYMBOLS = "+#@%&*?!$=<>~"
DRAWINGS = ("smiley", "house", "star", "sun", "heart", "arrow")
# (low, high) gap between neighbouring digits as a fraction of the digit size; one style per number.
GAPS = {"touching": (-0.06, 0.0), "close": (0.0, 0.1), "normal": (0.1, 0.35), "wide": (0.35, 0.9)}

Mnist = tuple[np.ndarray, np.ndarray]  # images (N, 28, 28) uint8, labels (N,)


def number_photo(mnist: Mnist, seed: int | np.random.Generator, length: int, *, text: str | None = None,
                 easy: bool = False, info: dict | None = None, mark: str = "") -> tuple[bytes, str]:
    """A photo (PNG or JPEG bytes) of a `length`-digit number made of MNIST digits, and that number.

    `text` chooses the digits (a random image of each); otherwise they are random, so a number may start
    with 0. A dict passed as `info` is filled with what was drawn (gap style, broken, shadow, ..., and
    `picks`: which of `mnist`'s images), so a benchmark can say which conditions are hard. `mark` writes a
    decimal point ('.') or comma (',') between two of the digits, or a minus ('-') before them, with the pen
    (the number returned spells it; `info["mark_box"]` is where, x0, y0, x1, y1 in the photo's pixels); without
    it the photo is what it always was for a seed.
    """
    if mark not in ("", ".", ",", "-") or (mark in (".", ",") and length < 2):
        raise ValueError(f"mark must be '.' or ',' (two digits or more) or '-', got {mark!r}")
    if text is not None and (not text.isdigit() or not text.isascii() or len(text) != length):
        raise ValueError(f"text must be {length} digits, got {text!r}")
    if not 1 <= length <= 12:
        raise ValueError(f"length must be 1-12, got {length}")
    g = _rng(seed)
    images, labels = mnist
    if text is None:
        picks = g.integers(0, len(images), length)
    else:
        picks = np.array([g.choice(np.flatnonzero(labels == int(c))) for c in text])
    size = g.uniform(2.0, 3.0) if easy else g.uniform(1.0, 3.2)  # digit box: 28 * size pixels
    gap = "easy" if easy else str(g.choice(list(GAPS), p=[0.2, 0.25, 0.35, 0.2]))
    gaps = (0.3, 0.6) if easy else GAPS[gap]
    slope = 0.0 if easy else g.uniform(-0.2, 0.2)  # baseline drift, pixels down per pixel right
    slant = 0.0 if easy else g.uniform(-0.3, 0.3)
    sizes = 0.0 if easy else g.choice([0.05, 0.1, 0.2])  # how much digits of one number differ in size
    broken = not easy and g.random() < 0.25
    pen = 0 if easy else int(g.choice([-1, 0, 0, 0, 1, 2]))  # thinner or thicker than MNIST's pen
    glyphs = [_glyph(images[k], size * g.uniform(1 - sizes, 1 + sizes), slant, pen, broken, g) for k in picks]
    margin = int(28 * size * g.uniform(0.3, 1.2))
    # The mark's own draws come from a generator of its own, so a photo without one stays as it was.
    m = np.random.default_rng(g.integers(2**32)) if mark else None
    at = int(m.integers(1, length)) if mark in (".", ",") else 0
    digit_h = 28 * size * 0.7  # MNIST's digits fill about 20 of 28 rows
    pen_w = max(1.5, 28 * size * (0.09 + 0.03 * pen))  # a stroke's width at this size and pen
    if mark == "-":
        room = int(round(m.uniform(0.3, 0.7) * digit_h))  # the bar's length
    else:
        room = int(round(m.uniform(1.6, 3.0) * pen_w)) if mark else 0  # the point's or the comma's gap
    x, places = margin + (room + int(round(m.uniform(0.6, 1.0) * digit_h)) if mark == "-" else 0), []
    for k, glyph in enumerate(glyphs):
        if k:
            x += int(round(g.uniform(*gaps) * 28 * size))
            if mark in (".", ",") and k == at:
                x += room + int(round(0.4 * 28 * size * m.uniform(0.1, 0.4)))
        y = margin + slope * (x - margin) + g.normal(0, 0 if easy else 0.04 * 28 * size)
        places.append((max(0, x), y))
        x += glyph.shape[1]
    width = x + margin
    top = min(y for _, y in places)
    tallest = max(gl.shape[0] for gl in glyphs)
    height = int(max(y - top for _, y in places) + tallest) + 2 * margin + 1
    ink = np.zeros((height, width), np.float32)
    corners = []  # where each glyph is drawn: (left, top)
    for (px, py), glyph in zip(places, glyphs, strict=True):
        h, w = glyph.shape
        py = int(round(py - top + (tallest - h) / 2)) + margin  # digits of different sizes share a midline
        ink[py:py + h, px:px + w] = np.maximum(ink[py:py + h, px:px + w], glyph)
        corners.append((px, py))
    info = {} if info is None else info
    if mark:
        ink, info["mark_box"] = _with_mark(ink, mark, at, corners, glyphs, pen_w, room, m)
    # Each digit's columns in the photo (its ink, left to right): where `read` should find it.
    columns = [(px, px + glyph.shape[1]) for (px, _), glyph in zip(places, glyphs, strict=True)]
    info.update(gaps=gap, size=round(size, 2), slant=round(slant, 2), broken=broken, pen=pen, columns=columns,
                picks=[int(k) for k in picks])
    digits = "".join(str(int(labels[k])) for k in picks)
    return photo_of(ink, g, easy, info), (mark + digits if mark == "-" else digits[:at] + mark + digits[at:])


def _with_mark(ink: np.ndarray, mark: str, at: int, corners: list[tuple[int, int]], glyphs: list, pen_w: float,
               room: int, m: np.random.Generator) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """`ink` with a point or comma written before digit `at`, or a minus before the first digit, and the mark's
    box (x0, y0, x1, y1); `corners`: where each glyph was drawn (left, top)."""
    canvas = Image.fromarray(np.zeros(ink.shape, np.uint8))
    draw = ImageDraw.Draw(canvas)
    def rows(k: int) -> tuple[float, float]:  # the digit's ink, top and bottom rows
        y, found = corners[k][1], np.flatnonzero(glyphs[k].max(1) > 0.3)
        return (y + found[0], y + found[-1]) if found.size else (y, y + glyphs[k].shape[0])
    if mark == "-":
        y0, y1 = rows(0)
        x1 = corners[0][0] - int(round(m.uniform(0.15, 0.5) * (y1 - y0)))
        y = (y0 + y1) / 2 + m.uniform(-0.1, 0.1) * (y1 - y0)
        draw.line([(x1 - room, y + m.uniform(-1, 1) * 0.05 * room), (x1, y)], fill=255, width=max(1, round(pen_w)))
    else:
        base = (rows(at - 1)[1] + rows(at)[1]) / 2
        x = (corners[at - 1][0] + glyphs[at - 1].shape[1] + corners[at][0]) / 2
        d = pen_w * (m.uniform(1.0, 1.8) if mark == "." else m.uniform(1.0, 1.5))
        if mark == ".":
            y = base - d / 2 + m.uniform(-0.3, 0.3) * d
            draw.ellipse([x - d / 2, y - d / 2, x + d / 2, y + d / 2], fill=255)
        else:
            tail = (rows(at)[1] - rows(at)[0]) * m.uniform(0.1, 0.25)  # below the baseline
            draw.ellipse([x - d / 2, base - d, x + d / 2, base], fill=255)
            draw.line([(x + d / 3, base - d / 2), (x - d / 2, base + tail)], fill=255, width=max(1, round(pen_w)))
    drawn = np.asarray(canvas, np.float32) / 255
    ys, xs = np.nonzero(drawn > 0.1)
    box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
    return np.maximum(ink, drawn * float(np.percentile(ink[ink > 0.1], 90))), box


def non_digit_photo(seed: int | np.random.Generator, kind: str | None = None) -> tuple[bytes, str]:
    """A photo (PNG or JPEG bytes) of something that is not a digit, and its kind (NON_DIGIT_KINDS)."""
    g = _rng(seed)
    if kind is None:
        kind = str(g.choice(NON_DIGIT_KINDS))
    if kind not in NON_DIGIT_KINDS:
        raise ValueError(f"unknown kind {kind!r} (choose from {', '.join(NON_DIGIT_KINDS)})")
    height, width = int(g.integers(80, 260)), int(g.integers(80, 420))
    ink = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(ink)
    line = max(2, int(min(width, height) * g.uniform(0.02, 0.05)))
    if kind in ("letters", "symbols"):
        chars = LETTERS if kind == "letters" else SYMBOLS
        text = "".join(g.choice(list(chars), int(g.integers(1, 5))))
        font = ImageFont.load_default(size=int(height * g.uniform(0.3, 0.6)))
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        x = g.uniform(0, max(1, width - (right - left))) - left
        draw.text((x, (height - (bottom - top)) / 2 - top), text, fill=255, font=font)
        ink = ink.rotate(g.uniform(-8, 8), resample=Image.BILINEAR)
    elif kind == "scribble":
        # A smooth wandering pen line: random points, smoothed, in a box of the picture.
        n = int(g.integers(8, 40))
        walk = np.cumsum(g.normal(0, 1, (n * 4, 2)), axis=0)
        walk = ndimage.gaussian_filter1d(walk, 2, axis=0)
        walk = (walk - walk.min(0)) / np.maximum(np.ptp(walk, axis=0), 1e-6)
        box = np.array([width, height]) * g.uniform(0.4, 0.8)
        walk = walk * box + g.uniform(0, 1, 2) * (np.array([width, height]) - box)
        draw.line([tuple(p) for p in walk], fill=255, width=line, joint="curve")
    elif kind == "drawing":
        _drawing(draw, str(g.choice(DRAWINGS)), width, height, line, g)
    elif kind == "smudge":
        # Faint smears: blurred blobs a little darker than the paper, no strokes.
        for _ in range(int(g.integers(1, 4))):
            cx, cy = g.uniform(0.2, 0.8) * width, g.uniform(0.2, 0.8) * height
            rx, ry = g.uniform(0.05, 0.25) * width, g.uniform(0.05, 0.25) * height
            draw.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=int(g.integers(40, 110)))
        ink = ink.filter(ImageFilter.GaussianBlur(g.uniform(3, 10)))
    return photo_of(np.asarray(ink, np.float32) / 255.0, g), kind


def _rng(seed: int | np.random.Generator) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def _glyph(digit: np.ndarray, size: float, slant: float, pen: int, broken: bool, g: np.random.Generator
           ) -> np.ndarray:
    """One MNIST digit as ink (0-1), scaled to a 28*size box, slanted, cropped to its ink left and right."""
    pad = 8  # room for the slant
    padded = np.zeros((28, 28 + 2 * pad), np.uint8)
    padded[:, pad:pad + 28] = digit
    image = Image.fromarray(padded)
    # Output pixel (x, y) takes input (x + slant * (y - 14), y): the top leans right for slant > 0.
    image = image.transform(image.size, Image.AFFINE, (1, slant, -14 * slant, 0, 1, 0), Image.BILINEAR)
    side = max(8, int(round(28 * size)))
    image = image.resize((max(1, int(round(image.width * side / 28))), side), Image.BILINEAR)
    ink = np.asarray(image, np.float32) / 255.0
    if pen > 0:
        ink = ndimage.grey_dilation(ink, size=(pen + 1, pen + 1))
    elif pen < 0 and side >= 40:
        ink = ndimage.grey_erosion(ink, size=(2, 2))
    if broken and g.random() < 0.6:
        # A pencil skip: a short stretch of paper across the stroke at one place on the digit.
        ys, xs = np.nonzero(ink > 0.5)
        if ys.size:
            at = int(g.integers(ys.size))
            angle, half = g.uniform(0, np.pi), side * g.uniform(0.06, 0.12)
            dx, dy = half * np.cos(angle), half * np.sin(angle)
            mask = Image.new("L", (ink.shape[1], ink.shape[0]), 0)
            ImageDraw.Draw(mask).line([(xs[at] - dx, ys[at] - dy), (xs[at] + dx, ys[at] + dy)], fill=255,
                                      width=max(1, int(round(side * 0.05))))
            ink = ink * (1 - np.asarray(mask, np.float32) / 255.0)
    cols = np.flatnonzero(ink.max(0) > 0.15)
    if cols.size == 0:
        return ink[:, :1]
    return ink[:, cols[0]:cols[-1] + 1]


def _drawing(draw: ImageDraw.ImageDraw, what: str, width: int, height: int, line: int,
             g: np.random.Generator) -> None:
    r = min(width, height) * g.uniform(0.3, 0.45)
    cx, cy = width / 2 + g.uniform(-0.1, 0.1) * width, height / 2
    if what == "smiley":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=255, width=line)
        for dx in (-0.35, 0.35):
            e = r * 0.1
            draw.ellipse([cx + dx * r - e, cy - 0.3 * r - e, cx + dx * r + e, cy - 0.3 * r + e], fill=255)
        draw.arc([cx - 0.55 * r, cy - 0.4 * r, cx + 0.55 * r, cy + 0.6 * r], 20, 160, fill=255, width=line)
    elif what == "house":
        draw.rectangle([cx - r, cy - 0.2 * r, cx + r, cy + r], outline=255, width=line)
        draw.line([(cx - r, cy - 0.2 * r), (cx, cy - r), (cx + r, cy - 0.2 * r)], fill=255, width=line)
        draw.rectangle([cx - 0.2 * r, cy + 0.3 * r, cx + 0.2 * r, cy + r], outline=255, width=line)
    elif what == "star":
        angles = np.pi / 2 + np.arange(5) * 4 * np.pi / 5
        points = [(cx + r * np.cos(a), cy - r * np.sin(a)) for a in angles]
        draw.line(points + points[:1], fill=255, width=line, joint="curve")
    elif what == "sun":
        draw.ellipse([cx - r / 2, cy - r / 2, cx + r / 2, cy + r / 2], outline=255, width=line)
        for a in np.arange(8) * np.pi / 4:
            draw.line([(cx + 0.65 * r * np.cos(a), cy + 0.65 * r * np.sin(a)),
                       (cx + r * np.cos(a), cy + r * np.sin(a))], fill=255, width=line)
    elif what == "heart":
        t = np.linspace(0, 2 * np.pi, 60)
        x, y = 16 * np.sin(t) ** 3, 13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t)
        draw.line([(cx + r * a / 17, cy - r * b / 17) for a, b in zip(x, y, strict=True)], fill=255,
                  width=line, joint="curve")
    else:  # arrow
        draw.line([(cx - 1.8 * r, cy), (cx + 1.8 * r, cy)], fill=255, width=line)
        draw.line([(cx + 1.2 * r, cy - 0.5 * r), (cx + 1.8 * r, cy), (cx + 1.2 * r, cy + 0.5 * r)], fill=255,
                  width=line)


def photo_of(ink: np.ndarray, g: np.random.Generator, easy: bool = False, info: dict | None = None) -> bytes:
    """Ink (0-1, H x W) written on paper and photographed: colour, texture, light, noise, blur, JPEG."""
    info = {} if info is None else info
    info.update(shadow=False, inverted=False, blurred=False, jpeg=None)
    h, w = ink.shape
    # White to grey or cream paper: a brightness and a faint tint.
    paper = np.array([0.93, 0.92, 0.88]) + (0 if easy else g.uniform(-0.15, 0.05) + g.uniform(-0.03, 0.03, 3))
    pens = [(0.1, 0.1, 0.12), (0.1, 0.15, 0.5), (0.25, 0.25, 0.28), (0.45, 0.1, 0.1), (0.05, 0.05, 0.05)]
    pen = np.array(pens[int(g.integers(len(pens)))]) + g.uniform(0, 0.1)
    darkness = 1.0 if easy else g.uniform(0.65, 1.0)  # a pencil does not cover the paper fully
    alpha = (ink * darkness)[..., None]
    image = paper * (1 - alpha) + pen * alpha
    if not easy:
        # Paper texture: fibres (fine grain) and cockling (slow blotches).
        texture = ndimage.gaussian_filter(g.normal(0, 1, (h, w)), g.uniform(4, 15))
        texture /= max(float(np.abs(texture).max()), 1e-6)
        image *= (1 + g.uniform(0.0, 0.06) * texture + g.normal(0, g.uniform(0.0, 0.02), (h, w)))[..., None]
        # Light: brighter on one side, sometimes the shadow of a hand or a phone over part of it.
        angle = g.uniform(0, 2 * np.pi)
        yy, xx = np.mgrid[0:h, 0:w]
        ramp = (np.cos(angle) * xx / w + np.sin(angle) * yy / h)
        ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
        light = 1 - g.uniform(0.0, 0.35) * ramp
        if g.random() < 0.2:
            info["shadow"] = True
            edge = ndimage.gaussian_filter((xx * np.cos(angle + 1) + yy * np.sin(angle + 1)
                                            > g.uniform(0.3, 0.7) * (w + h) / 2).astype(float), 6)
            light *= 1 - g.uniform(0.15, 0.35) * edge
        image = image * light[..., None] + g.normal(0, g.uniform(0.0, 0.035), (h, w, 1))
    if not easy and g.random() < 0.05:
        info["inverted"] = True
        image = 1 - image  # chalk on a blackboard, a screen in dark mode
    picture = Image.fromarray(np.clip(np.rint(image * 255), 0, 255).astype(np.uint8), "RGB")
    if not easy and g.random() < 0.5:
        info["blurred"] = True
        picture = picture.filter(ImageFilter.GaussianBlur(g.uniform(0.3, 1.2)))
    buffer = io.BytesIO()
    if easy or g.random() < 0.3:
        picture.save(buffer, format="PNG")
    else:
        info["jpeg"] = int(g.integers(35, 95))
        picture.save(buffer, format="JPEG", quality=info["jpeg"])
    return buffer.getvalue()


WHOLE_DIGIT = 0.7  # a candidate whose columns' overlap / union with a true digit's reaches this covers it whole


def coverage(layout: Layout, columns: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """For each of `layout`'s candidates, the true digit whose columns it overlaps most (an index into
    `columns`: number_photo's info["columns"]) and that overlap / union. chain.is_digit and data.cuts call a
    candidate one whole digit at WHOLE_DIGIT."""
    best, share = [], []
    for i, j in layout.candidates:
        x0, _, x1, _ = layout.input_box(layout.piece(i, j))
        overlaps = [(min(x1, b) - max(x0, a)) / (max(x1, b) - min(x0, a)) for a, b in columns]
        best.append(int(np.argmax(overlaps)))
        share.append(max(overlaps))
    return np.asarray(best, np.int64), np.asarray(share, np.float64)
