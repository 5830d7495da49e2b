"""The Kaggle path, measured: train on a Kaggle-sized train.csv, score on a held-out 28,000.

    python benchmarks/kaggle.py                  # defaults (tutorial), ~1 min on 2 free cores
    python benchmarks/kaggle.py --strong         # also the top-submission command: strong on all 42,000 (~20 min)

Kaggle's own test labels are hidden, so the competition is rebuilt from MNIST with its sizes
(digitlab.data.kaggle.make_competition): train.csv is 42,000 images drawn from MNIST's training set and
heldout.csv the other 28,000 (the rest of the training set and MNIST's test set). Nothing is tuned on
heldout.csv; each run is a whole `digitlab train` process as a user types it, then `digitlab evaluate`.
Writes benchmarks/results/kaggle.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT / "src"))

from digitlab.data.kaggle import make_competition  # noqa: E402

ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src")}


def digitlab(*args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "digitlab", *args], env=ENV, cwd=ROOT, capture_output=True,
                            text=True)
    if result.returncode != 0:
        raise SystemExit(f"digitlab {' '.join(args)} failed:\n{result.stderr}")
    return result.stdout


def measure(name: str, folder: Path, train_args: list[str]) -> dict:
    out = folder / name
    start = time.perf_counter()
    printed = digitlab("train", "--data", str(folder / "train.csv"), "--out", str(out), *train_args)
    seconds = time.perf_counter() - start
    chosen = [line for line in printed.splitlines() if " epochs (" in line]
    scored = json.loads(digitlab("evaluate", "--model", str(out), "--data", str(folder / "heldout.csv"),
                                 "--engine", "torch", "--json"))
    meta = json.loads((out / "model.json").read_text())
    row = {"name": name, "command": " ".join(["digitlab train --data train.csv", *train_args]),
           "epochs": meta["training"]["epochs"], "heldout_accuracy": scored["accuracy"], "heldout_n": scored["n"],
           "own_test_accuracy": json.loads((out / "metrics.json").read_text())["test_accuracy"],
           "seconds": seconds, "printed": chosen}
    print(f"{name}: {row['heldout_accuracy']:.2%} on the held-out {row['heldout_n']:,} ({row['epochs']} epochs, "
          f"{seconds:.0f} s)" + "".join(f"\n  digitlab printed: {line}" for line in chosen), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strong", action="store_true", help="also train the strong model on all 42,000")
    parser.add_argument("--folder", help="keep the CSVs and runs here (default: a temporary folder)")
    args = parser.parse_args()
    folder = Path(args.folder or tempfile.mkdtemp(prefix="digitlab-kaggle-"))
    if not (folder / "heldout.csv").is_file():
        make_competition(ROOT / "data" / "mnist", folder)
    rows = [measure("default", folder, [])]
    if args.strong:
        rows.append(measure("strong-all", folder, ["--arch", "strong", "--val-size", "0"]))
    lines = ["Kaggle-sized data rebuilt from MNIST: train.csv 42,000 images from MNIST's training set, "
             "heldout.csv the other 28,000 (`python benchmarks/kaggle.py`).", "",
             "| run | command | epochs | held-out accuracy (28,000) | wall s |", "|---|---|---:|---:|---:|",
             *(f"| {r['name']} | `{r['command']}` | {r['epochs']} | {r['heldout_accuracy']:.2%} | "
               f"{r['seconds']:.0f} |" for r in rows), ""]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "kaggle.md").write_text("\n".join(lines))
    print(f"wrote {RESULTS / 'kaggle.md'}")


if __name__ == "__main__":
    main()
