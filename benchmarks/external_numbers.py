"""Whole numbers from writers and pens outside MNIST: how `digitlab read` does on digits it never saw the like of.

    pip download scikit-learn --no-deps -d /tmp/skl     # the UCI digits ship inside scikit-learn's wheel
    python benchmarks/external_numbers.py --wheel /tmp/skl/scikit_learn-*.whl [--n 200] [--seed 303]

`benchmarks/read_numbers.py` writes its numbers with MNIST's test digits: the writers MNIST's training set
came from. Issue 12 also asks for >= 88% exact on numbers "from other writers", and users' numbers are often
printed (a house number, a price tag). Here the same photo generator (`digitlab.synth.number_photo`: gaps,
sizes, drift, slant, broken strokes, paper, light, noise, JPEG) writes numbers with digits from two other
sources, each first brought to 28x28 by the same `to_mnist` every picture goes through:

- *other writers*: the UCI optical digits (13 writers of NIST forms, 1,797 digits; 8x8 as stored, scaled up to
  32x32 as in benchmarks/external_digits.py), a number mixing digits of several of them;
- *printed*: the digits 0-9 typeset in each TrueType font on this machine (DejaVu and Liberation here: sans,
  serif, mono, condensed, bold, oblique), one font per number.

Nothing in digitlab was trained or tuned on either; this script only measures. It writes
benchmarks/results/external_numbers.md.
"""

from __future__ import annotations

import argparse
import io
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

sys.path.insert(0, str(Path(__file__).parent))
from external_digits import load, picture  # noqa: E402  (benchmarks/external_digits.py)
from read_numbers import edit_distance, read_all  # noqa: E402  (benchmarks/read_numbers.py)

from digitlab.data.images import open_image, to_mnist  # noqa: E402
from digitlab.engine import load_engine  # noqa: E402
from digitlab.fileio import atomic_write_text  # noqa: E402
from digitlab.synth import number_photo  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
LENGTHS = range(1, 7)


def uci_digits(wheel: Path | None, csv: Path | None) -> tuple[np.ndarray, np.ndarray]:
    values, labels = load(wheel, csv)
    return np.stack([to_mnist(open_image(picture(v, 32))) for v in values]), labels


def fonts(folder: Path = Path("/usr/share/fonts")) -> list[Path]:
    """The TrueType fonts under `folder`, less DejaVu's maths font (its digits are the sans ones again)."""
    return sorted(p for p in folder.rglob("*.ttf") if "Math" not in p.name)


def typeset(font: Path) -> np.ndarray:
    """The ten digits in `font`, each dark on white at 96 px, through to_mnist: (10, 28, 28)."""
    face = ImageFont.truetype(str(font), 96)
    out = []
    for digit in "0123456789":
        page = Image.new("L", (160, 160), 255)
        ImageDraw.Draw(page).text((80, 80), digit, fill=0, font=face, anchor="mm")
        buffer = io.BytesIO()
        page.save(buffer, format="PNG")
        out.append(to_mnist(open_image(buffer.getvalue())))
    return np.stack(out)


def measure(engine, pools: list[tuple[np.ndarray, np.ndarray]], seed: int, n: int) -> list[tuple]:
    """Per length: (length, numbers, exact, digits right, refused, numbers/s, exact with nothing refused); each
    number is drawn from one pool."""
    rows = []
    for length in LENGTHS:
        g = np.random.default_rng([seed, length])
        made = [number_photo(pools[int(g.integers(len(pools)))], np.random.default_rng([seed, length, k]), length)
                for k in range(n)]
        photos, truths = [photo for photo, _ in made], [number for _, number in made]
        readings, seconds = read_all(engine, photos)
        exact = sum(r.number == t for r, t in zip(readings, truths, strict=True)) / n
        digits = 1 - sum(edit_distance(r.number, t) for r, t in zip(readings, truths, strict=True)) / (n * length)
        refused = sum(r.reason is not None for r in readings) / n
        everything, _ = read_all(engine, photos, accept_all=True)
        accepted = sum(r.number == t for r, t in zip(everything, truths, strict=True)) / n
        rows.append((length, n, exact, digits, refused, n / seconds, accepted))
        print(f"length {length}: {exact:.1%} exact, {refused:.1%} refused", file=sys.stderr)
    return rows


def table(title: str, rows: list[tuple]) -> list[str]:
    total = sum(r[1] for r in rows)
    exact = sum(r[1] * r[2] for r in rows) / total
    refused = sum(r[1] * r[4] for r in rows) / total
    accepted = sum(r[1] * r[6] for r in rows) / total
    return [f"### {title}", "",
            "| digits | numbers | exact number | digits right (1 - edit distance / length) | refused "
            "| exact with --accept-all | numbers/s |",
            "|---|---|---|---|---|---|---|",
            *[f"| {length} | {n} | {e:.1%} | {d:.1%} | {r:.1%} | {a:.1%} | {s:.1f} |"
              for length, n, e, d, r, s, a in rows],
            "", f"**Exact over lengths 1-6: {exact:.1%}** ({round(exact * total)}/{total}); refused {refused:.1%}; "
            f"exact with nothing refused (`--accept-all`) {accepted:.1%}.", ""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel", type=Path)
    parser.add_argument("--csv", type=Path)
    parser.add_argument("--seed", type=int, default=303)
    parser.add_argument("--n", type=int, default=200, help="numbers per length (1-6) from each source")
    parser.add_argument("--model", default="strong")
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "external_numbers.md"))
    args = parser.parse_args()
    torch.set_num_threads(max(1, min(4, torch.get_num_threads())))
    began = time.perf_counter()
    engine = load_engine(args.model)
    found = fonts()
    if not found:
        raise SystemExit("error: no TrueType fonts under /usr/share/fonts (apt-get install fonts-dejavu-core)")
    digits = np.arange(10)
    uci = measure(engine, [uci_digits(args.wheel, args.csv)], args.seed, args.n)
    printed = measure(engine, [(typeset(font), digits) for font in found], args.seed + 1, args.n)
    command = "python benchmarks/external_numbers.py " + " ".join(sys.argv[1:])
    lines = [
        "# `digitlab read` on numbers by other writers and in print (issue 12's \"other writers\" check)",
        "",
        f"`{command.strip()}` (model `{args.model}`); {platform.machine()}, Python {platform.python_version()}; "
        f"took {time.perf_counter() - began:.0f} s. Photos from `digitlab.synth.number_photo`, as in "
        "read_numbers.md, but written with digits from outside MNIST; never trained or tuned on. Target for "
        "numbers from other writers: >= 88% exact.",
        "",
        *table("Other writers: UCI optical digits (13 writers, 8x8 scaled to 32x32)", uci),
        *table(f"Printed: the digits of {len(found)} fonts ({', '.join(sorted({f.stem for f in found}))})",
               printed),
    ]
    report = "\n".join(lines)
    print(report)
    atomic_write_text(args.output, report)


if __name__ == "__main__":
    main()
