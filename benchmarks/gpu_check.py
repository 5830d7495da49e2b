"""The GPU checks, as one prepared script for a session that has a CUDA machine for a few minutes.

    python benchmarks/gpu_check.py                          # on the GPU machine: ~6 min on an H100
    python benchmarks/gpu_check.py --device cpu --smoke     # the same steps on tiny subsets, to test the script

Steps, each a whole `digitlab` process timed from launch (so start-up and data loading count):
  1. cuda-bf16   `digitlab train` (tutorial CNN) on CUDA with bf16 autocast: accuracy, img/s, seconds
  2. cuda-fp32   the same in fp32, to show what autocast buys
  3. fast        `digitlab train --arch fast`: seconds from launch to the printed >= 99% accuracy
  4. nccl        `torchrun --nproc_per_node=1` + DDP over nccl (the multi-GPU code path, world size 1)
  5. ensemble    `digitlab train --arch strong --ensemble N`, if the time budget still allows it
Each result is printed as it arrives and the table is rewritten after every step to --report (default
$OUT/gpu_check.md when $OUT is set, else benchmarks/results/gpu_check.md), so a run cut short by the
device's time limit still leaves its finished rows behind.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def run(name: str, command: list[str], out: Path, timeout: float) -> dict:
    """Run one digitlab process; returns its metrics plus the wall seconds to the printed accuracy and to exit."""
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    reported, tail = None, []
    try:
        for line in process.stdout:
            tail = (tail + [line.rstrip()])[-20:]
            if line.startswith(("test accuracy:", "ensemble of")):
                reported = time.perf_counter() - start
        code = process.wait(timeout=max(1.0, timeout - (time.perf_counter() - start)))
    except subprocess.TimeoutExpired:
        process.kill()
        code = None
    wall = time.perf_counter() - start
    if code != 0:
        print("\n".join(tail), file=sys.stderr)
        return {"name": name, "ok": False, "wall_s": wall}
    summary = out / "ensemble.json"
    metrics = json.loads((summary if summary.is_file() else out / "metrics.json").read_text())
    return {"name": name, "ok": True, "wall_s": wall, "reported_s": reported, **metrics}


def table(rows: list[dict], header: str) -> str:
    lines = [header, "", "| step | launch to accuracy (s) | launch to exit (s) | train img/s | test accuracy |",
             "|---|---:|---:|---:|---:|"]
    for r in rows:
        if not r["ok"]:
            lines.append(f"| {r['name']} | FAILED | {r['wall_s']:.1f} | | |")
            continue
        accuracy = f"{r.get('ensemble_test_accuracy', r.get('test_accuracy')):.2%}"
        if "member_test_accuracy" in r:
            accuracy += f" (members {r['member_mean']:.2%} ± {r['member_std']:.2%})"
        speed = f"{r['train_images_per_second']:,}" if "train_images_per_second" in r else ""
        lines.append(f"| {r['name']} | {r['reported_s'] or 0:.1f} | {r['wall_s']:.1f} | {speed} | {accuracy} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--budget", type=float, default=540, help="seconds for all steps together")
    parser.add_argument("--members", type=int, default=5, help="ensemble size for step 5")
    parser.add_argument("--smoke", action="store_true", help="tiny subsets and one epoch: tests the script")
    parser.add_argument("--report", type=Path)
    args = parser.parse_args()
    out_root = Path(os.environ.get("OUT") or ROOT / "benchmarks" / "results")
    report = args.report or out_root / "gpu_check.md"
    work = out_root / ".gpu-runs"
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("error: no CUDA device here (use --device cpu --smoke to test the script)")
    what = torch.cuda.get_device_name() if args.device == "cuda" else "CPU"
    header = (f"`python benchmarks/gpu_check.py` on {what}, torch {torch.__version__}; "
              f"MNIST test set, 10,000 digits.")
    print(header, flush=True)
    small = ["--limit", "2000", "--epochs", "1"] if args.smoke else []
    py = [sys.executable, "-m", "digitlab", "train", "--device", args.device]
    steps = [
        ("cuda-bf16", [*py, "--precision", "auto", *small]),
        ("cuda-fp32", [*py, "--precision", "fp32", *small]),
        ("fast", [*py, "--arch", "fast", *small]),
        ("nccl", [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1",
                  "-m", "digitlab", "train", "--device", args.device, *small]),
        ("ensemble", [*py, "--arch", "strong", "--ensemble", str(args.members),
                      *(["--limit", "1000", "--epochs", "1"] if args.smoke else [])]),
    ]
    started, rows = time.perf_counter(), []
    for name, command in steps:
        left = args.budget - (time.perf_counter() - started)
        if left < 20:
            print(f"{name}: skipped, {left:.0f} s of the budget left", flush=True)
            continue
        out = work / name
        row = run(name, [*command, "--out", str(out)], out, left)
        rows.append(row)
        accuracy = row.get("ensemble_test_accuracy", row.get("test_accuracy"))
        print(f"{name}: {'ok' if row['ok'] else 'FAILED'} in {row['wall_s']:.1f} s"
              + (f", test accuracy {accuracy:.2%}" if row["ok"] else ""), flush=True)
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(table(rows, header))
    print("\n" + table(rows, header))
    if not all(r["ok"] for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
