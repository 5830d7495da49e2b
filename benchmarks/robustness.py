"""Robustness before/after: the old and the current preprocessing, and a plain crop-and-centre, on the same pictures.

    python benchmarks/robustness.py [--limit 200] [--seed 0] [--model DIR]

Every family x severity of `digitlab.robustness_families` is drawn once from `--limit` MNIST test digits and
given to each column:
  legacy   benchmarks/legacy_preprocess.py (to_mnist before issue 11) + the shipped strong model
  plain    a 20-line crop-and-centre (invert, crop to the ink, fit 20 px, centre by mass) + shipped strong:
           what is left of each failure once the preprocessing does no harm is the model's share
  current  digitlab's open_image -> to_mnist + shipped strong
  --model  current preprocessing + another model (e.g. one retrained with the handwriting augmentation)
Writes benchmarks/results/robustness.md, robustness.json (every column) and robustness.png.
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import legacy_preprocess  # noqa: E402

from digitlab.data import load  # noqa: E402
from digitlab.engine import load_engine  # noqa: E402
from digitlab.fileio import atomic_write_text  # noqa: E402
from digitlab.robustness import choose, markdown, plot, run, user_path  # noqa: E402


def legacy(data: bytes) -> np.ndarray:
    return legacy_preprocess.to_mnist(legacy_preprocess.open_image(data))


def plain(data: bytes) -> np.ndarray:
    """Invert to white on black, crop to the ink, fit the longer side to 20 px, paste centred by mass."""
    gray = np.asarray(Image.open(io.BytesIO(data)).convert("L"), dtype=np.float32) / 255.0
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    if np.median(border) > 0.5:
        gray, border = 1.0 - gray, 1.0 - border
    ink = np.clip(gray - np.median(border), 0.0, None)
    ink = ink / max(float(ink.max()), 1e-6)
    rows, cols = np.nonzero(ink > 0.5)
    if rows.size == 0:
        return np.zeros((28, 28), dtype=np.uint8)
    crop = ink[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    h, w = crop.shape
    size = (max(1, round(20 * w / max(h, w))), max(1, round(20 * h / max(h, w))))
    small = np.asarray(Image.fromarray(crop, mode="F").resize(size, Image.Resampling.BOX), dtype=np.float32)
    cy = (small.sum(1) * np.arange(size[1])).sum() / max(small.sum(), 1e-6)
    cx = (small.sum(0) * np.arange(size[0])).sum() / max(small.sum(), 1e-6)
    top, left = int(np.clip(round(14 - cy), 0, 28 - size[1])), int(np.clip(round(14 - cx), 0, 28 - size[0]))
    out = np.zeros((28, 28), dtype=np.float32)
    out[top : top + size[1], left : left + size[0]] = small
    return np.clip(np.rint(out * 255), 0, 255).astype(np.uint8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--limit", type=int, default=200, help="test digits per family and severity")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", help="a run folder: also measure it with the current preprocessing")
    parser.add_argument("--results", default=str(ROOT / "benchmarks" / "results"))
    args = parser.parse_args()

    test = load(ROOT / "data" / "mnist", "test")
    indices = choose(len(test), args.limit, args.seed)
    strong = load_engine("strong", "auto")
    columns = {"legacy preprocessing": (strong, legacy), "plain crop-and-centre": (strong, plain),
               "current to_mnist": (strong, user_path)}
    if args.model:
        columns[f"current + {Path(args.model).name}"] = (load_engine(args.model, "auto"), user_path)
    start = time.perf_counter()
    results = run(columns, test.images.numpy(), test.labels.numpy(), indices, args.seed,
                  progress=lambda step: print(f"  {step}", file=sys.stderr, flush=True))
    seconds = time.perf_counter() - start
    text = markdown(results)
    print(text)
    results_dir = Path(args.results)
    header = (f"# Robustness: accuracy % per family and severity\n\n"
              f"`python benchmarks/robustness.py --limit {args.limit} --seed {args.seed}"
              f"{' --model ' + args.model if args.model else ''}`: {args.limit} MNIST test digits (a seeded draw) "
              f"per family and severity, each drawn as a PNG/JPEG picture (`digitlab.robustness_families`) and "
              f"given to every column; model: the shipped `strong` unless the column says otherwise. "
              f"{seconds:.0f} s on {platform.processor() or platform.machine()} "
              f"({len(columns)} columns, shared CPU). The target (issue 11) is >= 98.5% for every family at "
              f"moderate severity.\n\n")
    atomic_write_text(results_dir / "robustness.md", header + text)
    # Each column in the layout of `digitlab evaluate --robustness --json` (its families, mean, clean).
    atomic_write_text(results_dir / "robustness.json", json.dumps(
        {"seed": args.seed, "n": args.limit, "seconds": round(seconds), "columns": results}, indent=1) + "\n")
    plot(results, results_dir / "robustness.png",
         f"{args.limit} test digits per family and severity, shipped strong model (dashed: 98.5%)")
    print(f"wrote {results_dir / 'robustness.md'} and robustness.png ({seconds:.0f} s)", file=sys.stderr)


if __name__ == "__main__":
    main()
