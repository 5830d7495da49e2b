"""Batch inference throughput on MNIST's 10,000 test digits: torch engine vs ONNX Runtime, per architecture.

    python benchmarks/inference_speed.py

This is what `digitlab evaluate` and `digitlab predict` spend their time on (after decoding). Each
contender runs the whole test set 5 times after a warm-up, in a process of its own; the median is reported. Writes
benchmarks/results/inference_speed.md.
"""

from __future__ import annotations

import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from digitlab.data import load  # noqa: E402
from digitlab.engine import CPU_CHUNK, Engine, OnnxEngine, TorchEngine  # noqa: E402
from digitlab.export import onnx_bytes  # noqa: E402
from digitlab.models import build  # noqa: E402


def images_per_second(engine: Engine, images: torch.Tensor) -> float:
    engine.logits(images[:2048])
    times = []
    for _ in range(5):
        start = time.perf_counter()
        engine.logits(images)
        times.append(time.perf_counter() - start)
    return len(images) / statistics.median(times)


def measure(arch: str, engine: str) -> float:
    """img/s of one (arch, engine) pair. Each pair runs in a fresh process, because torch's OpenMP threads
    and ONNX Runtime's pool both spin for a while after they work, and would slow whichever runs next."""
    test = load(ROOT / "data" / "mnist", "test")
    model = build(arch).eval()
    if engine == "torch":
        return images_per_second(TorchEngine(model), test.images)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.onnx"
        path.write_bytes(onnx_bytes(model))
        return images_per_second(OnnxEngine(path), test.images)


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--one":
        print(measure(sys.argv[2], sys.argv[3]))
        return
    rows = []
    for arch in ("tutorial", "fast", "strong"):
        rates = [float(subprocess.run([sys.executable, __file__, "--one", arch, engine], check=True,
                                      capture_output=True, text=True).stdout.split()[-1])
                 for engine in ("torch", "onnx")]
        rows.append((arch, *rates))
        print(f"{arch}: torch {rates[0]:,.0f} img/s, onnx {rates[1]:,.0f} img/s", flush=True)
    lines = [f"Machine: {platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}. "
             f"Whole MNIST test set (10,000 digits) through `Engine.logits` (chunks of {CPU_CHUNK}), fp32, "
             "median of 5 runs, each engine in its own process.", "",
             "| arch | torch img/s | onnxruntime img/s | onnx / torch |", "|---|---:|---:|---:|"]
    lines += [f"| {a} | {t:,.0f} | {o:,.0f} | {o / t:.2f}x |" for a, t, o in rows]
    table = "\n".join(lines)
    print("\n" + table)
    (ROOT / "benchmarks" / "results").mkdir(exist_ok=True)
    (ROOT / "benchmarks" / "results" / "inference_speed.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
