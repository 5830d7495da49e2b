"""Start-up and wind-down of `digitlab train --arch fast`: how much of the wall time is training.

    python benchmarks/startup.py                 # seeds 0-4 (~1 min on 2 free cores)
    python benchmarks/startup.py --seeds 1
    python benchmarks/startup.py --baseline ../main/src   # also another checkout's code, alternating runs

Each run is a whole `digitlab train --arch fast` process, timed from outside. Its wall time splits into
  start-up     launch to the start of train(): the interpreter and imports (torch is most of it)
  setup        config, data loading, model build, run folder (metrics.json: setup_seconds)
  loop         the training loop, validation included (metrics.json: train_seconds)
  test         the test pass, to the printed accuracy
  exit         after the printed accuracy: model, metrics and the two figures written, process exit
The target (issue 14, item 3) is wall to exit / loop <= 1.3, with every seed still >= 99.0%.
Also prints `python -X importtime` of the modules the command imports, largest first.
Writes benchmarks/results/startup.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
PHASES = ("startup", "setup", "loop", "test", "exit")


def one_run(seed: int, out: Path, src: Path = ROOT / "src") -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "digitlab", "train", "--arch", "fast", "--seed", str(seed),
                                "--out", str(out)], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    printed = None
    for line in process.stdout:
        if line.startswith("test accuracy:"):
            printed = time.perf_counter() - start
    if process.wait() != 0 or printed is None:
        raise SystemExit(f"digitlab train --arch fast --seed {seed} failed")
    wall = time.perf_counter() - start
    m = json.loads((out / "metrics.json").read_text())
    startup = printed - m["total_seconds"]
    setup = m.get("setup_seconds", float("nan"))  # older code did not record it
    test = m["total_seconds"] - setup - m["train_seconds"]
    return {"wall": wall, "startup": startup, "setup": setup, "loop": m["train_seconds"],
            "test": test, "exit": wall - printed, "accuracy": m["test_accuracy"]}


def import_costs(top: int = 8) -> list[tuple[str, float]]:
    """Cumulative import seconds of the top-level modules `digitlab train` imports (python -X importtime)."""
    code = "import digitlab.cli, digitlab.train, digitlab.runfolder, digitlab.plots"
    result = subprocess.run([sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT / "src")}, check=True)
    costs = []
    for line in result.stderr.splitlines():
        match = re.match(r"import time:\s+\d+ \|\s+(\d+) \| ( *)(\S+)", line)
        if match and len(match.group(2)) <= 2:  # imported by the command itself, not by another package
            costs.append((match.group(3), int(match.group(1)) / 1e6))
    return sorted(costs, key=lambda c: -c[1])[:top]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--baseline", type=Path, help="another checkout's src/ to time the same way, for before/after")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="digitlab-startup-"))
    rows, before = [], []
    try:
        for seed in range(args.seeds):
            if args.baseline:
                old = one_run(seed, folder / f"old-{seed}", args.baseline.resolve())
                before.append(old)
                print(f"seed {seed}, baseline: wall {old['wall']:.2f} s, loop {old['loop']:.2f} s, exit "
                      f"{old['exit']:.2f} s, ratio {old['wall'] / old['loop']:.2f}", flush=True)
            row = one_run(seed, folder / f"seed-{seed}")
            rows.append(row)
            print(f"seed {seed}: " + ", ".join(f"{k} {row[k]:.2f} s" for k in ("wall", *PHASES))
                  + f", ratio {row['wall'] / row['loop']:.2f}, accuracy {row['accuracy']:.2%}", flush=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    med = {k: statistics.median(r[k] for r in rows) for k in ("wall", *PHASES)}
    ratio = statistics.median(r["wall"] / r["loop"] for r in rows)
    imports = import_costs()
    print(f"median: wall {med['wall']:.2f} s, loop {med['loop']:.2f} s, wall/loop {ratio:.2f} (target <= 1.3); "
          f"accuracy min {min(r['accuracy'] for r in rows):.2%}")
    print("imports: " + ", ".join(f"{name} {sec:.2f} s" for name, sec in imports))
    baseline = []
    if before:
        old = {k: statistics.median(r[k] for r in before) for k in ("wall", "loop", "exit")}
        old_ratio = statistics.median(r["wall"] / r["loop"] for r in before)
        baseline = ["", f"Baseline `{args.baseline}`, same seeds, runs alternating with the above: median wall "
                        f"{old['wall']:.2f} s, loop {old['loop']:.2f} s, after the printed accuracy "
                        f"{old['exit']:.2f} s, wall / loop {old_ratio:.2f}"]
        print(baseline[1])
    lines = [
        f"`digitlab train --arch fast`, whole processes, seeds 0-{args.seeds - 1}, {platform.machine()} "
        f"({os.cpu_count()} CPUs), python {platform.python_version()}:", "",
        "| seed | wall s | start-up | setup | loop | test | exit | wall / loop | test accuracy |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        *(f"| {i} | {r['wall']:.2f} | " + " | ".join(f"{r[k]:.2f}" for k in PHASES)
          + f" | {r['wall'] / r['loop']:.2f} | {r['accuracy']:.2%} |" for i, r in enumerate(rows)),
        f"| median | {med['wall']:.2f} | " + " | ".join(f"{med[k]:.2f}" for k in PHASES) + f" | {ratio:.2f} | |",
        *baseline,
        "", "Imports (`python -X importtime`, cumulative s): "
        + ", ".join(f"{name} {sec:.2f}" for name, sec in imports), "",
    ]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "startup.md").write_text("\n".join(lines))
    print(f"wrote {RESULTS / 'startup.md'}")


if __name__ == "__main__":
    main()
