"""How `digitlab read` reads numbers written with a minus sign, a decimal point or a comma.

    python benchmarks/read_marks.py                 # development (seed 51): what stop 50 was built on
    python benchmarks/read_marks.py --seed 5101     # a seed nobody tuned on

`digitlab.synth.number_photo(..., mark=...)` writes the mark with the same pen as the digits (a point on the
baseline between two digits, a comma reaching below it, a bar before the first digit), then photographs the
number as `read_numbers.py` does (MNIST test digits; gaps, sizes, drift, slant, broken strokes, paper, light,
noise, JPEG). Right = the exact number with its mark ("-5", "3.14"); a refusal is wrong. `read` reads a minus since
stop 50 (`digitlab.sign`) and a point or a comma since stop 51 (`digitlab.point`); "digits right, mark left out or
wrong" is what `read` gave for every mark before them.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from digitlab.data.idx import load_idx_split
from digitlab.engine import load_engine
from digitlab.synth import number_photo

sys.path.insert(0, str(Path(__file__).parent))
from read_numbers import read_all  # noqa: E402  (benchmarks/read_numbers.py: read_pictures 20 at a time)

ROOT = Path(__file__).resolve().parents[1]
MARKS = {".": "decimal point", ",": "decimal or thousands comma", "-": "minus sign"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=51)
    parser.add_argument("--n", type=int, default=40, help="numbers per mark and length")
    parser.add_argument("--model", default="strong")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    engine = load_engine(args.model)
    mnist = tuple(t.numpy() for t in load_idx_split(ROOT / "data" / "mnist", "test"))
    began = time.perf_counter()
    print(f"`python benchmarks/read_marks.py {' '.join(sys.argv[1:] if argv is None else argv)}` "
          f"(MNIST test digits, seed {args.seed}, model {args.model})\n")
    print("| mark | digits | n | exact, mark and all | digits right, mark left out or wrong | refused |")
    print("|---|---|---:|---:|---:|---:|")
    for mark, name in MARKS.items():
        lengths = (1, 2, 3, 4) if mark == "-" else (2, 3, 4, 5)
        made = [number_photo(mnist, np.random.default_rng([args.seed, ord(mark), length, k]), length, mark=mark)
                for length in lengths for k in range(args.n)]
        readings, _ = read_all(engine, [p for p, _ in made])
        texts = [t for _, t in made]
        n = len(made)
        exact = sum(r.number == t for r, t in zip(readings, texts, strict=True))
        digits = sum(r.number != t and r.number.strip(".,-") != "" and
                     "".join(c for c in r.number if c.isdigit()) == "".join(c for c in t if c.isdigit())
                     for r, t in zip(readings, texts, strict=True))
        refused = sum(r.reason is not None for r in readings)
        print(f"| {name} (`{mark}`) | {lengths[0]}-{lengths[-1]} | {n} | {exact} ({exact / n:.1%}) | "
              f"{digits} ({digits / n:.1%}) | {refused} ({refused / n:.1%}) |")
    print(f"\n{time.perf_counter() - began:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
