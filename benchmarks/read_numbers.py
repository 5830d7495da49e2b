"""How well `digitlab read` reads made-up photos of numbers, and what it does with things that are not digits.

    python benchmarks/read_numbers.py [--seed 101] [--n 200] [--non-digits 50] [--singles 1000] [--model strong]

Numbers of 1-8 MNIST test digits and non-digit pictures come from `digitlab.synth` (gaps from touching to
wide, sizes, drift, slant, broken strokes, paper, light, noise, JPEG); each goes through `read_pictures`
as bytes, as `digitlab read` reads a file. Reported: exact-number accuracy by length, digit accuracy
(1 - edit distance / length), how often the digit count is wrong (segmentation), how often a real number is
refused, how often blanks and each kind of non-digit are refused, single MNIST test digits (28x28, as
`predict` reads them) right with a refusal counted as an error, and numbers per second. Prints a markdown
report and writes it to benchmarks/results/read_numbers.md. Use a seed nobody tuned `read` on.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from digitlab.data.idx import load_idx_split
from digitlab.engine import load_engine
from digitlab.fileio import atomic_write_text
from digitlab.read import read_pictures
from digitlab.synth import NON_DIGIT_KINDS, non_digit_photo, number_photo

ROOT = Path(__file__).resolve().parents[1]
LENGTHS = range(1, 9)
BATCH = 20  # pictures per read_pictures call, as a folder given to `digitlab read` is read in batches


def edit_distance(a: str, b: str) -> int:
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
    return row[-1]


def describe(info: dict) -> list[str]:
    """The conditions a number was drawn under, as table rows."""
    pen = {-1: "thin", 0: "MNIST's", 1: "thick", 2: "very thick"}[info["pen"]]
    return [f"gaps {info['gaps']}", f"digit size {'<' if info['size'] < 2 else '>='} 56 px",
            "broken strokes" if info["broken"] else "unbroken", "shadow" if info["shadow"] else "no shadow",
            "light on dark" if info["inverted"] else "dark on light", f"{pen} pen",
            "JPEG q<60" if (info["jpeg"] or 100) < 60 else "JPEG q>=60 or PNG",
            "blurred" if info["blurred"] else "sharp", f"slant {'>' if abs(info['slant']) > 0.15 else '<='} 0.15"]


def read_all(engine, pictures: list, accept_all: bool = False) -> tuple[list, float]:
    start, readings = time.perf_counter(), []
    for k in range(0, len(pictures), BATCH):
        readings += read_pictures(engine, pictures[k:k + BATCH], accept_all=accept_all)
    return readings, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=101)
    parser.add_argument("--n", type=int, default=200, help="numbers per length (1-6; half that for 7-8)")
    parser.add_argument("--non-digits", type=int, default=50, help="pictures per non-digit kind")
    parser.add_argument("--singles", type=int, default=1000, help="single MNIST test digits")
    parser.add_argument("--model", default="strong")
    parser.add_argument("--engine", default="auto")
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "read_numbers.md"))
    args = parser.parse_args()
    torch.set_num_threads(max(1, min(4, torch.get_num_threads())))
    images, labels = (t.numpy() for t in load_idx_split(ROOT / "data" / "mnist", "test"))
    engine = load_engine(args.model, args.engine)
    began = time.perf_counter()

    rows, exact_1_6, total_1_6 = [], 0, 0
    conditions: dict[tuple[int, str], list[bool]] = {}  # exact or not, for lengths 1-6, by what the generator drew
    for length in LENGTHS:
        n = args.n if length <= 6 else max(1, args.n // 2)
        # Each picture has its own seed: any single one can be regenerated to look at it.
        infos = [{} for _ in range(n)]
        made = [number_photo((images, labels), np.random.default_rng([args.seed, length, k]), length,
                             info=infos[k]) for k in range(n)]
        readings, seconds = read_all(engine, [photo for photo, _ in made])
        truths = [number for _, number in made]
        exact = sum(r.number == t for r, t in zip(readings, truths, strict=True))
        digits = 1 - sum(edit_distance(r.number, t) for r, t in zip(readings, truths, strict=True)) / (n * length)
        count = sum(len(r.number or r.digits) != length for r in readings)
        refused = sum(r.reason is not None for r in readings)
        rows.append((length, n, exact / n, digits, count / n, refused / n, n / seconds))
        if length <= 6:
            exact_1_6, total_1_6 = exact_1_6 + exact, total_1_6 + n
            for info, r, t in zip(infos, readings, truths, strict=True):
                for group, name in enumerate(describe(info)):
                    conditions.setdefault((group, name), []).append(r.number == t)
        print(f"length {length}: {exact}/{n} exact, {n / seconds:.1f} numbers/s", file=sys.stderr)

    kinds = []
    for kind in NON_DIGIT_KINDS if args.non_digits > 0 else []:
        made = [non_digit_photo(np.random.default_rng([args.seed, 100 + NON_DIGIT_KINDS.index(kind), k]), kind)[0]
                for k in range(args.non_digits)]
        readings, _ = read_all(engine, made)
        reasons = [r.reason for r in readings]
        kinds.append((kind, sum(r is not None for r in reasons) / len(reasons),
                      sum(r == "blank" for r in reasons) / len(reasons),
                      [r.number for r in readings if r.reason is None][:6]))
        print(f"{kind}: {kinds[-1][1]:.0%} refused", file=sys.stderr)

    g = np.random.default_rng([args.seed, 200])
    picks = g.choice(len(images), min(args.singles, len(images)), replace=False)
    readings, _ = read_all(engine, [images[k] for k in picks])
    # --singles 0 or --non-digits 0 leave that part out (a quicker run on the numbers alone).
    singles = sum(r.number == str(int(labels[k])) for r, k in zip(readings, picks, strict=True)) / max(len(picks), 1)
    singles_refused = sum(r.reason is not None for r in readings) / max(len(picks), 1)
    elapsed = time.perf_counter() - began

    command = "python benchmarks/read_numbers.py " + " ".join(sys.argv[1:])
    lines = [
        "# `digitlab read` on made-up photos of numbers (issue 12, item 5)",
        "",
        f"`{command.strip()}` (seed {args.seed}, model `{args.model}`, engine `{type(engine).__name__}`); "
        f"{platform.machine()}, {torch.get_num_threads()} torch threads, Python {platform.python_version()}; "
        f"took {elapsed:.0f} s. Pictures: `digitlab.synth` (MNIST test digits).",
        "",
        "| digits | numbers | exact number | digits right (1 - edit distance / length) | digit count wrong "
        "| refused | numbers/s |",
        "|---|---|---|---|---|---|---|",
        *[f"| {length} | {n} | {exact:.1%} | {digits:.1%} | {count:.1%} | {refused:.1%} | {speed:.1f} |"
          for length, n, exact, digits, count, refused, speed in rows],
        "",
        f"**Exact over lengths 1-6: {exact_1_6 / total_1_6:.1%}** ({exact_1_6}/{total_1_6}; target >= 97%).",
        "",
        "Exact over lengths 1-6 by what the generator drew (each number counts once in each group):",
        "",
        "| condition | numbers | exact number |",
        "|---|---|---|",
        *[f"| {name} | {len(hits)} | {np.mean(hits):.1%} |" for (_, name), hits in sorted(conditions.items())],
        "",
        f"Single MNIST test digits (28x28, {len(picks)}): {singles:.1%} right counting a refusal as an error "
        f"(target >= 98%); {singles_refused:.1%} refused.",
        "",
        f"Non-digit pictures ({args.non_digits} of each kind; target: every blank and >= 85% of all refused):",
        "",
        "| kind | refused | of which as blank | some numbers read instead |",
        "|---|---|---|---|",
        *[f"| {kind} | {refused:.0%} | {blank:.0%} | {', '.join(read) or '-'} |"
          for kind, refused, blank, read in kinds],
        "",
        f"All non-digits refused: {np.mean([k[1] for k in kinds]) if kinds else float('nan'):.1%}.",
        "",
    ]
    report = "\n".join(lines)
    print(report)
    atomic_write_text(args.output, report)


if __name__ == "__main__":
    main()
