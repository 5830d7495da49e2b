"""What the line reader's second opinion costs `digitlab read`: the same photos read with and without it.

    python benchmarks/read_line_cost.py [--n 100] [--seed 9]

For numbers of 1, 3 and 6 MNIST test digits (digitlab.synth), `read_pictures` in batches of 20, once with
`line=None` (the chain alone) and once with the shipped line reader, alternating, best of `--repeats`; prints
numbers per second and the ratio, measured side by side in one run.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from digitlab.data.idx import load_idx_split
from digitlab.engine import load_engine
from digitlab.read import read_pictures
from digitlab.synth import number_photo

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100, help="photos per length")
    parser.add_argument("--seed", type=int, default=9)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--model", default="strong")
    args = parser.parse_args()
    torch.set_num_threads(max(1, min(4, torch.get_num_threads())))
    mnist = tuple(t.numpy() for t in load_idx_split(ROOT / "data" / "mnist", "test"))
    engine = load_engine(args.model)
    print("| digits | chain alone, numbers/s | with the line reader | ratio |\n|---|---:|---:|---:|")
    for length in (1, 3, 6):
        photos = [number_photo(mnist, np.random.default_rng([args.seed, length, k]), length)[0]
                  for k in range(args.n)]
        read_pictures(engine, photos[:20])  # warm up: load the shipped models once
        best = {"chain": 0.0, "line": 0.0}
        for _ in range(args.repeats):
            for name, line in (("chain", None), ("line", "shipped")):
                began = time.perf_counter()
                for a in range(0, len(photos), 20):
                    read_pictures(engine, photos[a:a + 20], line=line)
                best[name] = max(best[name], len(photos) / (time.perf_counter() - began))
        print(f"| {length} | {best['chain']:.1f} | {best['line']:.1f} | {best['line'] / best['chain']:.2f} |")


if __name__ == "__main__":
    main()
