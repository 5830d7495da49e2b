"""How people write and how pictures are taken: variations of an MNIST digit, rendered as the file a user sends.

    from digitlab.robustness_families import FAMILIES, SEVERITIES, picture
    data = picture("marker", "moderate", mnist_digit, seed=0, index=7)   # PNG or JPEG bytes

In the spirit of MNIST-C (Mu & Gilmer, 2019), but each family is a pen, a scanner or a camera rather than an
abstract corruption: the digit is drawn at 4x (160 px for MNIST's 28 padded to 40) as dark ink on light paper
unless the family says otherwise, then encoded to PNG or JPEG, so that the picture goes through exactly what a
user's file goes through (`open_image` -> `to_mnist` -> model). Every picture is a function of (family,
severity, digit, seed, index) alone: the same arguments give the same bytes. Severities are "mild",
"moderate" and "severe"; all are meant to stay legible to a person.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Callable

import numpy as np
from PIL import Image
from scipy import ndimage

SEVERITIES = ("mild", "moderate", "severe")
UP = 4      # working resolution: MNIST pixels -> picture pixels
PAD = 6     # MNIST pixels of margin around the 28x28 digit, so that rotations and shears keep all the ink
PAPER, INK = 0.94, 0.08


def _ink(digit: np.ndarray) -> np.ndarray:
    """MNIST uint8 (28, 28) -> float ink coverage in [0, 1] at (28 + 2 PAD) * UP = 160 px, smooth strokes."""
    padded = np.pad(np.asarray(digit, dtype=np.float32) / 255.0, PAD)
    size = padded.shape[0] * UP
    big = Image.fromarray(padded, mode="F").resize((size, size), Image.Resampling.BICUBIC)
    return np.clip(np.asarray(big, dtype=np.float32), 0.0, 1.0)


def _disk(radius: float) -> np.ndarray:
    r = int(np.ceil(radius))
    y, x = np.mgrid[-r : r + 1, -r : r + 1]
    return x * x + y * y <= radius * radius


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Gaussian-smoothed white noise scaled to unit standard deviation: paper grain, light, pen pressure."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma)
    return field / max(float(field.std()), 1e-6)


def _on_paper(ink: np.ndarray, rng: np.random.Generator, paper: float = PAPER, ink_level: float = INK,
              grain: float = 0.012) -> np.ndarray:
    """Grey picture of `ink` on paper: the paper's reflectance where there is no ink, ink_level under full ink."""
    gray = paper - ink * (paper - ink_level)
    if grain:
        gray = gray + grain * _smooth_noise(rng, ink.shape, 1.0)
    return np.clip(gray, 0.0, 1.0)


def _encode(gray: np.ndarray, fmt: str = "PNG", quality: int = 90) -> bytes:
    """(H, W) or (H, W, 3) floats in [0, 1] -> encoded file bytes."""
    pixels = np.clip(np.rint(gray * 255.0), 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels, mode="L" if pixels.ndim == 2 else "RGB")
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **({"quality": quality} if fmt == "JPEG" else {"compress_level": 1}))
    return buffer.getvalue()


def _affine(ink: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a 2x2 linear map about the picture's centre (output -> input coordinates, as scipy wants)."""
    centre = (np.array(ink.shape) - 1) / 2.0
    inverse = np.linalg.inv(matrix)
    return ndimage.affine_transform(ink, inverse, offset=centre - inverse @ centre, order=1)


def _crop(ink: np.ndarray, level: float = 0.1) -> np.ndarray:
    rows, cols = np.nonzero(ink > level)
    return ink[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]


def _fit(ink: np.ndarray, longer: int, resample: Image.Resampling = Image.Resampling.LANCZOS) -> np.ndarray:
    """The ink's bounding box resized so that its longer side is `longer` pixels, keeping the aspect ratio."""
    crop = _crop(ink)
    h, w = crop.shape
    scale = longer / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.clip(np.asarray(Image.fromarray(crop, mode="F").resize(size, resample), dtype=np.float32), 0, 1)


def _paste(ink: np.ndarray, canvas: int, top: int, left: int) -> np.ndarray:
    out = np.zeros((canvas, canvas), dtype=np.float32)
    out[top : top + ink.shape[0], left : left + ink.shape[1]] = ink
    return out


# -- writing tools ------------------------------------------------------------------------------------------

def marker(ink: np.ndarray, level: int, rng: np.random.Generator) -> bytes:
    """A thick felt pen: solid dark strokes (1.0, 2.0, 3.0 MNIST px wider), soft edges."""
    core = ink > 0.35
    grown = ndimage.distance_transform_edt(~core) <= (1.0, 2.0, 3.0)[level] / 2 * UP
    solid = ndimage.gaussian_filter(grown.astype(np.float32), 1.0)
    return _encode(_on_paper(solid, rng, ink_level=0.05))


def pencil(ink: np.ndarray, level: int, rng: np.random.Generator) -> bytes:
    """A thin, light, grainy graphite line: the paper's tooth takes the graphite unevenly."""
    thin = np.clip((ink - (0.5, 0.6, 0.7)[level]) / 0.25, 0.0, 1.0)
    tooth = np.clip(0.75 + 0.35 * _smooth_noise(rng, ink.shape, 0.8), 0.0, 1.0)
    darkness = (0.45, 0.33, 0.24)[level]
    return _encode(_on_paper(thin * tooth, rng, paper=0.93, ink_level=0.93 - darkness, grain=0.015))


def ballpoint(ink: np.ndarray, level: int, rng: np.random.Generator) -> bytes:
    """A thin dark blue line whose darkness wavers with the pen's pressure."""
    thin = ndimage.gaussian_filter(np.clip((ink - 0.55) / 0.2, 0.0, 1.0), 0.6)
    pressure = np.clip(1.0 - (0.15, 0.3, 0.45)[level] * np.abs(_smooth_noise(rng, ink.shape, 8.0)), 0.2, 1.0)
    cover = thin * pressure
    paper = _on_paper(np.zeros_like(ink), rng, grain=0.01)
    blue = np.array([0.12, 0.16, 0.5], dtype=np.float32)
    rgb = paper[..., None] * (1 - cover[..., None]) + blue * cover[..., None]
    return _encode(rgb)


def stroke_width(ink: np.ndarray, level: int, rng: np.random.Generator) -> bytes:
    """Thinner or thicker strokes (each picture draws which) by grey-scale erosion or dilation."""
    if rng.random() < 0.5:
        changed = ndimage.grey_erosion(ink, footprint=_disk((1.5, 2.5, 3.5)[level]))
        changed = changed / max(float(changed.max()), 1e-6)  # a thinned stroke is as dark as the pen
    else:
        changed = ndimage.grey_dilation(ink, footprint=_disk((2.5, 4.5, 6.5)[level]))
    return _encode(_on_paper(changed, rng))


# -- resolution, optics, geometry ---------------------------------------------------------------------------

def low_resolution(ink: np.ndarray, level: int, rng: np.random.Generator) -> bytes:
    """Postal-scan style: the digit scaled to fill a 16, 12 or 8 px frame edge to edge, then shown at 64 px."""
    frame = (16, 12, 8)[level]
    small = _fit(ink, frame, Image.Resampling.BOX)
    h, w = small.shape
    square = _paste(small, frame, (frame - h) // 2, (frame - w) // 2)
    paper = 1.0 - square * (1.0 - INK)
    resample = Image.Resampling.NEAREST if rng.random() < 0.3 else Image.Resampling.BILINEAR
    return _encode(np.asarray(Image.fromarray(paper, mode="F").resize((64, 64), resample), dtype=np.float32))


def blur(ink: np.ndarray, level: int, rng: np.random.Generator) -> bytes:
    """Out of focus: a Gaussian of 0.75, 1.25 or 1.75 MNIST px."""
    return _encode(_on_paper(ndimage.gaussian_filter(ink, (0.75, 1.25, 1.75)[level] * UP), rng))


def rotation(ink: np.ndarray, level: int, rng: np.random.Generator) -> bytes:
    """Paper turned by 10, 20 or 30 degrees either way."""
    angle = np.deg2rad((10, 20, 30)[level] * rng.choice([-1, 1]) + rng.uniform(-2, 2))
    c, s = np.cos(angle), np.sin(angle)
    return _encode(_on_paper(_affine(ink, np.array([[c, -s], [s, c]])), rng))


def shear(ink: np.ndarray, level: int, rng: np.random.Generator) -> bytes:
    """Slanted writing: a horizontal shear of 0.2, 0.35 or 0.5 either way."""
    k = (0.2, 0.35, 0.5)[level] * rng.choice([-1, 1])
    return _encode(_on_paper(_affine(ink, np.array([[1.0, 0.0], [k, 1.0]])), rng))


def scale(ink: np.ndarray, level: int, rng: np.random.Generator) -> bytes:
    """A small digit somewhere on a 200 px picture: 64, 36 or 22 px tall."""
    small = _fit(ink, (64, 36, 22)[level])
    h, w = small.shape
    top, left = rng.integers(10, 200 - h - 10), rng.integers(10, 200 - w - 10)
    return _encode(_on_paper(_paste(small, 200, top, left), rng))


def translation(ink: np.ndarray, level: int, rng: np.random.Generator) -> bytes:
    """The digit off-centre, 24, 8 or 1 px from a random side (or corner) of a 160 px picture."""
    small = _fit(ink, 96)
    h, w = small.shape
    margin = (24, 8, 1)[level]
    side = rng.integers(4)
    top = [margin, 160 - h - margin][side % 2] if side < 2 else rng.integers(margin, 160 - h - margin + 1)
    left = [margin, 160 - w - margin][side % 2] if side >= 2 else rng.integers(margin, 160 - w - margin + 1)
    if level == 2:  # severe: into a corner
        top = [margin, 160 - h - margin][rng.integers(2)]
    return _encode(_on_paper(_paste(small, 160, int(top), int(left)), rng))


def elastic(ink: np.ndarray, level: int, rng: np.random.Generator) -> bytes:
    """A wobbly hand: Simard et al.'s elastic distortion (sigma 4 MNIST px, alpha 16, 26 or 36)."""
    side = ink.shape[0] // UP
    fields = []
    for _ in range(2):
        field = ndimage.gaussian_filter(rng.uniform(-1, 1, (side, side)).astype(np.float32), 4.0, mode="constant")
        fields.append(ndimage.zoom(field * (16, 26, 36)[level] * UP, UP, order=1))
    y, x = np.mgrid[0 : ink.shape[0], 0 : ink.shape[1]].astype(np.float32)
    return _encode(_on_paper(ndimage.map_coordinates(ink, [y + fields[0], x + fields[1]], order=1), rng))


def broken_strokes(ink: np.ndarray, level: int, rng: np.random.Generator) -> bytes:
    """A pen that skips: 1, 2 or 4 gaps, each about 3 MNIST px long, cut through the strokes."""
    rows, cols = np.nonzero(ink > 0.5)
    picks = rng.choice(len(rows), size=min((1, 2, 4)[level], len(rows)), replace=False)
    y, x = np.mgrid[0 : ink.shape[0], 0 : ink.shape[1]]
    kept = np.ones_like(ink)
    for k in picks:
        kept[(y - rows[k]) ** 2 + (x - cols[k]) ** 2 <= (1.5 * UP) ** 2] = 0.0
    return _encode(_on_paper(ink * ndimage.gaussian_filter(kept, 1.0), rng))


# -- sensor, file, light ------------------------------------------------------------------------------------

def noise(ink: np.ndarray, level: int, rng: np.random.Generator) -> bytes:
    """Sensor noise and paper dust: Gaussian noise of std 0.06, 0.12 or 0.2 plus dark specks."""
    gray = _on_paper(ink, rng, paper=0.9) + (0.06, 0.12, 0.2)[level] * rng.standard_normal(ink.shape)
    specks = rng.random(ink.shape) < (0.001, 0.003, 0.006)[level]
    gray[specks] = rng.uniform(0.0, 0.5, int(specks.sum()))
    return _encode(np.clip(gray, 0.0, 1.0))


def jpeg(ink: np.ndarray, level: int, rng: np.random.Generator) -> bytes:
    """A JPEG saved at quality 30, 15 or 8."""
    return _encode(_on_paper(ink, rng), "JPEG", (30, 15, 8)[level])


def contrast(ink: np.ndarray, level: int, rng: np.random.Generator) -> bytes:
    """Faint ink and dim or bright pictures: ink 0.35, 0.2 or 0.12 darker than paper of any brightness."""
    difference = (0.35, 0.2, 0.12)[level]
    paper = rng.uniform(0.3 + difference, 0.98)
    return _encode(_on_paper(ink, rng, paper=paper, ink_level=paper - difference, grain=0.005))


def inverted(ink: np.ndarray, level: int, rng: np.random.Generator) -> bytes:
    """Light ink on a dark ground: a dark-mode canvas, chalk on a board, a negative with grain."""
    ground, chalk, grain = ((0.05, 0.95, 0.0), (0.2, 0.8, 0.03), (0.25, 0.65, 0.05))[level]
    gray = ground + ink * (chalk - ground)
    if grain:
        gray = gray + grain * _smooth_noise(rng, ink.shape, 1.0)
    return _encode(np.clip(gray, 0.0, 1.0))


def _light(rng: np.random.Generator, shape: tuple[int, int], darkest: float) -> np.ndarray:
    """Illumination falling from 1 to `darkest` across the picture in a random direction, plus a soft shadow."""
    y, x = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float32) / max(shape)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = np.cos(angle) * x + np.sin(angle) * y
    ramp = (ramp - ramp.min()) / max(float(ramp.max() - ramp.min()), 1e-6)
    cy, cx = rng.uniform(0.2, 0.8, 2)
    shadow = np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / 0.08)
    light = 1.0 - (1.0 - darkest) * (0.75 * ramp + 0.25 * shadow)
    return light.astype(np.float32)


def uneven_light(ink: np.ndarray, level: int, rng: np.random.Generator) -> bytes:
    """A lamp to one side: the light falls to 70, 45 or 28 per cent across the page."""
    return _encode(_on_paper(ink, rng) * _light(rng, ink.shape, (0.7, 0.45, 0.28)[level]))


def _perspective(image: Image.Image, rng: np.random.Generator, amount: float) -> Image.Image:
    """The page seen a little from the side: each corner moved by up to `amount` of the picture's size."""
    w, h = image.size
    corners = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float64)
    moved = corners + rng.uniform(-amount, amount, (4, 2)) * (w, h)
    # PIL maps output (x, y) to input ((a x + b y + c) / (g x + h y + 1), ...): solve for the 8 coefficients.
    rows, rhs = [], []
    for (x, y), (u, v) in zip(corners, moved, strict=True):
        rows += [[x, y, 1, 0, 0, 0, -u * x, -u * y], [0, 0, 0, x, y, 1, -v * x, -v * y]]
        rhs += [u, v]
    coeffs = np.linalg.solve(np.array(rows), np.array(rhs))
    return image.transform((w, h), Image.Transform.PERSPECTIVE, tuple(coeffs), Image.Resampling.BILINEAR,
                           fillcolor=255)


def photo(ink: np.ndarray, level: int, rng: np.random.Generator) -> bytes:
    """A phone photo of a digit on paper: texture, shading, a tilted page, noise, JPEG, the digit small."""
    canvas = 240
    small = _fit(ink, (110, 80, 56)[level])
    h, w = small.shape
    page = _paste(small, canvas, rng.integers(30, canvas - h - 30), rng.integers(30, canvas - w - 30))
    texture = 0.02 * _smooth_noise(rng, page.shape, 2.0) + 0.015 * _smooth_noise(rng, page.shape, 20.0)
    gray = _on_paper(page, rng, paper=0.9, ink_level=0.12, grain=0.0) + texture
    warped = Image.fromarray(np.clip(np.rint(gray * 255), 0, 255).astype(np.uint8), mode="L")
    warped = np.asarray(_perspective(warped, rng, (0.04, 0.08, 0.12)[level]), dtype=np.float32) / 255.0
    lit = warped * _light(rng, warped.shape, (0.8, 0.6, 0.45)[level])
    lit = ndimage.gaussian_filter(lit, 0.8) + (0.015, 0.03, 0.045)[level] * rng.standard_normal(lit.shape)
    tint = np.array([1.0, 0.96, 0.88], dtype=np.float32)  # warm indoor light
    return _encode(np.clip(lit[..., None] * tint, 0.0, 1.0), "JPEG", (85, 65, 45)[level])


Family = Callable[[np.ndarray, int, np.random.Generator], bytes]
FAMILIES: dict[str, Family] = {
    "marker": marker, "pencil": pencil, "ballpoint": ballpoint, "stroke_width": stroke_width,
    "low_resolution": low_resolution, "blur": blur, "rotation": rotation, "shear": shear, "scale": scale,
    "translation": translation, "elastic": elastic, "broken_strokes": broken_strokes, "noise": noise,
    "jpeg": jpeg, "contrast": contrast, "inverted": inverted, "uneven_light": uneven_light, "photo": photo,
}


def picture(family: str, severity: str | int, digit: np.ndarray, seed: int = 0, index: int = 0) -> bytes:
    """The encoded picture of MNIST `digit` (uint8 28x28, white on black) as `family` at `severity`.

    `index` tells apart the digits of one run, so that each gets its own random draw; the bytes depend on
    nothing but the arguments.
    """
    if family not in FAMILIES:
        raise ValueError(f"unknown family '{family}' (choose from {', '.join(FAMILIES)})")
    level = SEVERITIES.index(severity) if isinstance(severity, str) else int(severity)
    if not 0 <= level < len(SEVERITIES):
        raise ValueError(f"severity must be one of {', '.join(SEVERITIES)}, got {severity!r}")
    rng = np.random.default_rng([seed, zlib.crc32(family.encode()), level, index])
    return FAMILIES[family](_ink(digit), level, rng)


def clean_picture(digit: np.ndarray) -> bytes:
    """The digit as black ink on white at 160 px, nothing else: the reference every family is compared to."""
    return _encode(1.0 - _ink(digit) * (1.0 - INK))
