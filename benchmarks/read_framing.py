"""How `digitlab read` copes with how a photo is framed: cut tight to the ink, the sheet with the table around it,
or a form's field with the box printed around it.

    python benchmarks/read_framing.py                                   # development: what stops 44-45 were built on
    python benchmarks/read_framing.py --split test --seed 4401 --table-seed 4402 --box-seed 4501 --form-seed 4601

Cut tight: MNIST digits cropped to their ink (> 30 of 255, so that it touches every side), dark on white, scaled by
5 and by 2; and `digitlab.synth` photos whose ink is cut to its box before paper, light, noise and JPEG are added
(1-4 digits). `read` is set beside `predict` (the whole picture through `to_mnist`, the model and the not-a-digit
check), which these pictures suit: issue 12 asks that `read` work wherever `predict` works. On the table: synth
number photos (lengths 1-6, MNIST test digits) laid on a grey-brown table of tone 60 or 120, with its grain, 5-20%
of the photo's size on each side, beside the same photos as taken; its first 50, of one digit, also through
`predict`. In a box: synth number photos (lengths 1-4 and 6) with a box printed around the writing (lines 1-6 px,
grey to black, turned up to 1.5 degrees), cut at the box or a little outside it; the same in pencil (the writing
0.3-0.6 times as dark, since stop 47); and empty printed boxes (since stop 46; right: refused, as a blank must be).
On a form (since stop 46): MNIST digits written one to a cell of a comb field (a box per digit), over short ticks
rising from a line, on one printed line, or on ruled paper (lines above and below), then photographed; and on
squared paper (since stop 49: lines both ways, light, some sheets with every fifth line darker) and dotted paper
(since stop 50: light dots every 14-30 px both ways). Right = the
exact number; a refusal is wrong. `--split train` (the default) builds the tight, boxed and form pictures from
MNIST's training digits, which `read` was developed on.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from digitlab import synth
from digitlab.data.idx import load_idx_split
from digitlab.data.images import open_image, to_mnist
from digitlab.engine import load_engine
from digitlab.predict import predict_proba
from digitlab.refuse import refusals

sys.path.insert(0, str(Path(__file__).parent))
from read_numbers import read_all  # noqa: E402  (benchmarks/read_numbers.py: read_pictures 20 at a time)

ROOT = Path(__file__).resolve().parents[1]


def cut_to_ink(digit: np.ndarray, scale: int) -> bytes:
    """An MNIST digit cropped to its ink, dark on white, scaled: PNG bytes."""
    ys, xs = np.nonzero(digit > 30)
    crop = Image.fromarray(255 - digit[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1])
    buffer = io.BytesIO()
    crop.resize((crop.width * scale, crop.height * scale), Image.Resampling.BILINEAR).save(buffer, format="PNG")
    return buffer.getvalue()


def tight_photo(mnist: synth.Mnist, g: np.random.Generator, length: int) -> tuple[bytes, str]:
    """A synth number photo whose ink is cut to its box before it is photographed."""
    photograph = synth.photo_of

    def cut(ink: np.ndarray, g: np.random.Generator, easy: bool = False, info: dict | None = None) -> bytes:
        ys, xs = np.nonzero(ink > 0.12)
        return photograph(np.ascontiguousarray(ink[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]), g, easy, info)

    synth.photo_of = cut  # number_photo photographs through the module's photo_of
    try:
        return synth.number_photo(mnist, g, length)
    finally:
        synth.photo_of = photograph


def on_table(photo: bytes, g: np.random.Generator, tone: float) -> Image.Image:
    """The photographed sheet with a table of brightness `tone` (grey-brown, grainy) around it."""
    sheet = np.asarray(Image.open(io.BytesIO(photo)).convert("RGB"), np.float32)
    h, w, _ = sheet.shape
    top, bottom, left, right = (int(g.uniform(0.05, 0.2) * side) for side in (h, h, w, w))
    table = np.array([tone, tone * 0.8, tone * 0.6]) + g.normal(0, 6, (h + top + bottom, w + left + right, 3))
    table[top : top + h, left : left + w] = sheet
    return Image.fromarray(np.clip(table, 0, 255).astype(np.uint8))


def print_box(ink: np.ndarray, g: np.random.Generator) -> np.ndarray:
    """`ink` (white on black) with a box printed around it: lines 1-6 px, grey to black, turned up to 1.5
    degrees, at the picture's edge or a little inside it."""
    h, w = ink.shape
    width, tone, turn = int(g.choice([1, 2, 2, 3, 4, 6])), g.uniform(0.6, 1.0), np.deg2rad(g.uniform(-1.5, 1.5))
    out = int(g.choice([0, 0, 1])) * int(g.uniform(2, 0.06 * max(h, w) + 3))  # paper outside the box
    canvas = np.zeros((h + 2 * (out + width), w + 2 * (out + width)), np.float32)
    canvas[out + width : out + width + h, out + width : out + width + w] = ink
    H, W = canvas.shape
    corners = [(out, out), (W - 1 - out, out), (W - 1 - out, H - 1 - out), (out, H - 1 - out)]
    turned = [(W / 2 + (x - W / 2) * np.cos(turn) - (y - H / 2) * np.sin(turn),
               H / 2 + (x - W / 2) * np.sin(turn) + (y - H / 2) * np.cos(turn)) for x, y in corners]
    frame = Image.new("L", (W, H), 0)
    ImageDraw.Draw(frame).polygon(turned, outline=255, width=width)
    return np.maximum(canvas, np.asarray(frame, np.float32) / 255 * tone)


def boxed_photo(mnist: synth.Mnist, g: np.random.Generator, length: int, pencil: bool = False) -> tuple[bytes, str]:
    """A synth number photo written in a box printed on the paper, cut at the box or a little outside it; in
    `pencil`, the writing 0.3-0.6 times as dark as the pen would make it."""
    photograph = synth.photo_of
    fade = g.uniform(0.3, 0.6) if pencil else 1.0

    def boxed(ink: np.ndarray, g2: np.random.Generator, easy: bool = False, info: dict | None = None) -> bytes:
        return photograph(print_box(ink * fade, g), g2, easy, info)

    synth.photo_of = boxed  # as tight_photo
    try:
        return synth.number_photo(mnist, g, length)
    finally:
        synth.photo_of = photograph


def empty_box_photo(g: np.random.Generator, wide: bool) -> bytes:
    """A printed box with nothing written in it (a form's field left blank), photographed: one digit's cell, or
    a field as wide as a number's."""
    h = int(g.integers(40, 120))
    w = int(g.integers(40, 400)) if wide else int(g.integers(40, 120))
    return synth.photo_of(print_box(np.zeros((h, w), np.float32), g), g)


def write_digits(ink: np.ndarray, mnist: tuple, g: np.random.Generator, length: int, cell: int,
                 rows: tuple[int, int], left: int, sizes: tuple[float, float]) -> str:
    """`length` MNIST digits written into `ink` (white on black), one to a cell `cell` px wide from column `left`,
    centred in the `rows` (top, height) give or take 3 px, each `sizes` times the cell; their text."""
    images, labels = mnist
    text = ""
    for i in range(length):
        k = int(g.integers(len(images)))
        text += str(int(labels[k]))
        size = int(cell * g.uniform(*sizes))
        digit = np.asarray(Image.fromarray(images[k]).resize((size, size), Image.Resampling.BILINEAR), np.float32) / 255
        y = rows[0] + (rows[1] - size) // 2 + int(g.integers(-3, 4))
        x = left + i * cell + (cell - size) // 2 + int(g.integers(-3, 4))
        y0, x0 = max(y, 0), max(x, 0)
        part = digit[y0 - y :, x0 - x :][: ink.shape[0] - y0, : ink.shape[1] - x0]
        ink[y0 : y0 + part.shape[0], x0 : x0 + part.shape[1]] = np.maximum(
            ink[y0 : y0 + part.shape[0], x0 : x0 + part.shape[1]], part)
    return text


FORMS = ("comb", "ticks", "line", "ruled")


def form_photo(mnist: tuple, g: np.random.Generator, length: int, form: str) -> tuple[bytes, str]:
    """MNIST digits written on a printed form (`FORMS`), one per cell `cell` pixels wide, then photographed."""
    cell, width, tone = int(g.integers(36, 90)), int(g.choice([1, 2, 2, 3])), g.uniform(0.5, 1.0)
    H, W = int(cell * g.uniform(1.0, 1.4)), cell * length
    pad = int(g.choice([0, 0, int(g.integers(2, 12))]))
    ink = np.zeros((H + 2 * pad, W + 2 * pad), np.float32)
    text = write_digits(ink, mnist, g, length, cell, (pad, H), pad, (0.8, 1.15))
    level = 255
    if form == "ruled":  # ruled paper: a line under the digits and one above, lighter than the ink
        gap, level = int(H * g.uniform(0.9, 1.2)), int(255 * g.uniform(0.3, 0.7) / tone)
        ink, pad = np.pad(ink, ((gap, gap), (0, 0))), pad + gap
    frame = Image.new("L", ink.shape[::-1], 0)
    draw = ImageDraw.Draw(frame)
    bottom = pad + H - 1
    if form == "comb":
        draw.rectangle([pad, pad, pad + W - 1, bottom], outline=255, width=width)
        for i in range(1, length):
            draw.line([(pad + i * cell, pad), (pad + i * cell, bottom)], fill=255, width=width)
    elif form == "ticks":
        draw.line([(pad, bottom), (pad + W - 1, bottom)], fill=255, width=width)
        for i in range(length + 1):
            draw.line([(pad + i * cell, pad + int(H * 0.7)), (pad + i * cell, bottom)], fill=255, width=width)
    else:
        y = bottom - int(g.integers(0, max(1, H // 8)))
        for yy in ((y - gap, y, y + gap) if form == "ruled" else (y,)):
            draw.line([(0, yy), (ink.shape[1] - 1, yy)], fill=level, width=width)
    ink = np.maximum(ink, np.asarray(frame, np.float32) / 255 * tone)
    return synth.photo_of(ink, g), text


def squared_photo(mnist: tuple, g: np.random.Generator, length: int) -> tuple[bytes, str]:
    """MNIST digits written on squared paper, one to a square (28-70 px) or over two by two squares (16-40 px),
    then photographed. The lines are 1-2 px, 0.3-0.8 as dark as the ink; on a third of the sheets every fifth line
    is darker and wider (graph paper); the sheet shows 0.3-2.5 squares around the writing."""
    per = int(g.choice([1, 1, 2]))
    square = int(g.integers(28, 70)) if per == 1 else int(g.integers(16, 40))
    cell = square * per
    width, tone = int(g.choice([1, 1, 2])), g.uniform(0.5, 1.0)
    level = g.uniform(0.3, 0.8) / tone
    mx, my = int(g.uniform(0.3, 2.5) * square), int(g.uniform(0.3, 2.0) * square)
    H, W = cell + 2 * my, cell * length + 2 * mx
    ink = np.zeros((H, W), np.float32)
    major = int(g.choice([0, 0, 5]))
    text = write_digits(ink, mnist, g, length, cell, (my, cell), mx, (0.9, 1.3))
    frame = Image.new("L", (W, H), 0)
    draw = ImageDraw.Draw(frame)
    for i, x in enumerate(range(mx % square, W, square)):  # the digits sit in the grid's squares
        big = bool(major) and i % major == 0
        draw.line([(x, 0), (x, H - 1)], fill=255 if big else 170, width=width + big)
    for i, y in enumerate(range(my % square, H, square)):
        big = bool(major) and i % major == 0
        draw.line([(0, y), (W - 1, y)], fill=255 if big else 170, width=width + big)
    ink = np.maximum(ink, np.minimum(np.asarray(frame, np.float32) / 255 * level, 1.0) * tone)
    return synth.photo_of(ink, g), text


def dotted_photo(mnist: tuple, g: np.random.Generator, length: int) -> tuple[bytes, str]:
    """MNIST digits written on dotted paper (a bullet journal), one to a cell of 36-90 px, then photographed. The
    dots lie every 14-30 px both ways, 3 px across (5 px on a third of the sheets), 0.3-0.8 as dark as the ink."""
    cell, step = int(g.integers(36, 90)), int(g.integers(14, 30))
    radius, tone = int(g.choice([1, 1, 2])), g.uniform(0.5, 1.0)
    level = g.uniform(0.3, 0.8) / tone
    mx, my = int(g.uniform(0.1, 1.0) * cell), int(g.uniform(0.1, 0.8) * cell)
    H, W = cell + 2 * my, cell * length + 2 * mx
    ink = np.zeros((H, W), np.float32)
    text = write_digits(ink, mnist, g, length, cell, (my, cell), mx, (0.8, 1.1))
    frame = Image.new("L", (W, H), 0)
    draw = ImageDraw.Draw(frame)
    for y in range(my % step, H, step):
        for x in range(mx % step, W, step):
            draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=255)
    ink = np.maximum(ink, np.minimum(np.asarray(frame, np.float32) / 255 * level, 1.0) * tone)
    return synth.photo_of(ink, g), text


def read_right(engine, pictures: list, truths: list[str]) -> int:
    readings, _ = read_all(engine, pictures)
    return sum(r.number == t for r, t in zip(readings, truths, strict=True))


def _png(picture: Image.Image) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def predict_refused(engine, pictures: list[bytes]) -> int:
    pixels = np.stack([to_mnist(open_image(p)) for p in pictures])
    return sum(r is not None for r in refusals(pixels))


def predict_right(engine, pictures: list[bytes], truths: list[str]) -> int:
    pixels = torch.from_numpy(np.stack([to_mnist(open_image(p)) for p in pictures]))
    labels = predict_proba(engine, pixels).argmax(1).numpy()
    reasons = refusals(pixels.numpy())
    return sum(r is None and str(int(label)) == t for label, r, t in zip(labels, reasons, truths, strict=True))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=["train", "test"], default="train", help="MNIST digits cut tight")
    parser.add_argument("--seed", type=int, default=44, help="which digits, and the tight photos")
    parser.add_argument("--table-seed", type=int, default=7, help="number photos laid on a table (7: development)")
    parser.add_argument("--box-seed", type=int, default=45, help="number photos in a printed box (45: development)")
    parser.add_argument("--form-seed", type=int, default=46, help="numbers written on a form (46: development)")
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--model", default="strong")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    engine = load_engine(args.model)
    rows = []
    began = time.perf_counter()
    mnist = tuple(t.numpy() for t in load_idx_split(ROOT / "data" / "mnist", args.split))
    picks = np.random.default_rng(args.seed).choice(len(mnist[0]), args.n, replace=False)
    truths = [str(int(mnist[1][k])) for k in picks]
    for scale in (5, 2):
        pictures = [cut_to_ink(mnist[0][k], scale) for k in picks]
        rows.append((f"MNIST digit cut to its ink, x{scale}", args.n, read_right(engine, pictures, truths),
                     predict_right(engine, pictures, truths)))
    for length, n in ((1, args.n), (2, args.n // 3), (3, args.n // 3), (4, args.n // 3)):
        made = [tight_photo(mnist, np.random.default_rng([args.seed, length, k]), length) for k in range(n)]
        photos, texts = [p for p, _ in made], [t for _, t in made]
        rows.append((f"photo of {length} digit{'s' if length > 1 else ''} cut to its ink", n,
                     read_right(engine, photos, texts), predict_right(engine, photos, texts) if length == 1 else None))
    test = tuple(t.numpy() for t in load_idx_split(ROOT / "data" / "mnist", "test"))
    made = [synth.number_photo(test, np.random.default_rng([args.table_seed, L, k]), L)
            for L in range(1, 7) for k in range(args.n // 6)]
    photos, texts = [p for p, _ in made], [t for _, t in made]
    rows.append(("number photo as taken (lengths 1-6)", len(made), read_right(engine, photos, texts), None))
    ones = args.n // 6  # the first photos are of one digit
    for tone in (60, 120):
        tabled = [on_table(p, np.random.default_rng([args.table_seed, 500, k]), tone) for k, p in enumerate(photos)]
        rows.append((f"the same on a table of tone {tone}", len(made), read_right(engine, tabled, texts), None))
        pngs = [_png(t) for t in tabled[:ones]]
        rows.append((f"... of them, one digit on a table of tone {tone}", ones,
                     read_right(engine, tabled[:ones], texts[:ones]), predict_right(engine, pngs, texts[:ones])))
    for length in (1, 2, 3, 4, 6):
        made = [boxed_photo(mnist, np.random.default_rng([args.box_seed, length, k]), length) for k in range(ones)]
        photos, texts = [p for p, _ in made], [t for _, t in made]
        rows.append((f"photo of {length} digit{'s' if length > 1 else ''} in a printed box", ones,
                     read_right(engine, photos, texts), predict_right(engine, photos, texts) if length == 1 else None))
    for length in (1, 3):
        made = [boxed_photo(mnist, np.random.default_rng([args.box_seed, 800, length, k]), length, pencil=True)
                for k in range(ones)]
        photos, texts = [p for p, _ in made], [t for _, t in made]
        rows.append((f"photo of {length} digit{'s' if length > 1 else ''} in pencil in a printed box", ones,
                     read_right(engine, photos, texts), predict_right(engine, photos, texts) if length == 1 else None))
    for wide in (False, True):
        photos = [empty_box_photo(np.random.default_rng([args.box_seed, 900, wide, k]), wide) for k in range(ones)]
        rows.append((f"an empty printed box, {'as wide as a number' if wide else 'one cell'} (right: refused)",
                     ones, read_right(engine, photos, [""] * ones), predict_refused(engine, photos)))
    for form in FORMS:
        for length in (1, 3, 6):
            made = [form_photo(mnist, np.random.default_rng([args.form_seed, FORMS.index(form), length, k]), length,
                               form) for k in range(ones)]
            photos, texts = [p for p, _ in made], [t for _, t in made]
            predicted = predict_right(engine, photos, texts) if length == 1 else None
            rows.append((f"{length} digit{'s' if length > 1 else ''} on a form: {form}", ones,
                         read_right(engine, photos, texts), predicted))
    for write, key, paper in ((squared_photo, 10, "squared paper"), (dotted_photo, 11, "dotted paper")):
        for length in (1, 3, 6):
            made = [write(mnist, np.random.default_rng([args.form_seed, key, length, k]), length) for k in range(ones)]
            photos, texts = [p for p, _ in made], [t for _, t in made]
            predicted = predict_right(engine, photos, texts) if length == 1 else None
            rows.append((f"{length} digit{'s' if length > 1 else ''} on {paper}", ones,
                         read_right(engine, photos, texts), predicted))
    print(f"`python benchmarks/read_framing.py {' '.join(sys.argv[1:] if argv is None else argv)}` "
          f"(tight, boxed, forms: MNIST {args.split}, seeds {args.seed}, {args.box_seed}, {args.form_seed}; "
          f"table: number seed {args.table_seed}; model {args.model})\n")
    print("| pictures | n | `read` right | `predict` right |\n|---|---:|---:|---:|")
    for name, n, right, predicted in rows:
        print(f"| {name} | {n} | {right} ({right / n:.1%}) | "
              + (f"{predicted} ({predicted / n:.1%}) |" if predicted is not None else "|"))
    print(f"\n{time.perf_counter() - began:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
