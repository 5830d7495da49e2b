"""One process against two (torchrun + DDP, gloo) at the same global batch, on this machine's CPU.

    python benchmarks/ddp_scaling.py                 # tutorial CNN, default recipe, global batch 128

Each run is a whole `digitlab train` process (or torchrun with its two workers), timed from launch to
exit. Writes benchmarks/results/ddp_scaling.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def timed(command: list[str], out: Path) -> tuple[float, dict]:
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start, json.loads((out / "metrics.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="tutorial")
    parser.add_argument("--global-batch", type=int, default=128)
    args = parser.parse_args()
    rows = []
    for nproc in (1, 2):
        out = RESULTS / f".ddp-{nproc}"
        base = ["train", "--arch", args.arch, "--out", str(out), "--quiet",
                "--batch-size", str(args.global_batch // nproc)]
        command = [sys.executable, "-m", "digitlab", *base] if nproc == 1 else \
            [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
             "-m", "digitlab", *base]
        wall, metrics = timed(command, out)
        rows.append((nproc, wall, metrics))
        print(f"{nproc} process(es): {wall:.1f} s, test accuracy {metrics['test_accuracy']:.2%}", flush=True)
    lines = [f"`digitlab train --arch {args.arch}`, global batch {args.global_batch}, CPU (2 cores), gloo.", "",
             "| processes | per-process batch | wall s (launch to exit) | train img/s | test accuracy |",
             "|---:|---:|---:|---:|---:|"]
    lines += [f"| {n} | {args.global_batch // n} | {wall:.1f} | {m['train_images_per_second']:,} | "
              f"{m['test_accuracy']:.2%} |" for n, wall, m in rows]
    table = "\n".join(lines)
    print("\n" + table)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "ddp_scaling.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
