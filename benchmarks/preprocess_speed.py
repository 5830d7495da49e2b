"""How long `to_mnist` takes per picture: the frozen pre-issue-11 version beside today's, in one run.

    python benchmarks/preprocess_speed.py [--repeat 200]

Three pictures made from an MNIST test digit: a 280x280 canvas PNG (what the drawing page sends), a 1000x750
JPEG photo with the digit small on uneven paper, and a 28x28 digit. Each is decoded once; the timed call is
to_mnist on the decoded image (median of --repeat calls, after warm-up; wall clock and the
thread's CPU time), single-threaded. Writes
benchmarks/results/preprocess_speed.md. Issue 11's target: <= 3 ms for the canvas.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import legacy_preprocess as legacy  # noqa: E402
from digitlab.data import images  # noqa: E402
from digitlab.data.idx import load_idx_split  # noqa: E402


def pictures(digit: np.ndarray) -> dict[str, bytes]:
    canvas = io.BytesIO()
    # The page draws black strokes on white and sends the canvas as it is.
    big = Image.fromarray(255 - digit).resize((280, 280), Image.Resampling.BILINEAR)
    big.save(canvas, format="PNG")
    g = np.random.default_rng(0)
    h, w = 750, 1000
    yy, xx = np.mgrid[0:h, 0:w]
    paper = 190 + 40 * xx / w - 30 * yy / h + g.normal(0, 5, (h, w))
    ink = np.zeros((h, w))
    ink[300:420, 500:620] = np.asarray(Image.fromarray(digit).resize((120, 120), Image.Resampling.BICUBIC)) / 255
    photo = io.BytesIO()
    Image.fromarray(np.clip(paper * (1 - 0.75 * ink), 0, 255).astype(np.uint8)).save(photo, format="JPEG")
    small = io.BytesIO()
    Image.fromarray(digit).save(small, format="PNG")
    return {"280x280 canvas PNG": canvas.getvalue(), "1000x750 photo JPEG": photo.getvalue(),
            "28x28 digit PNG": small.getvalue()}


def milliseconds(function, image, repeat: int) -> tuple[float, float]:
    """Median wall-clock and CPU ms per call. The CPU time is what the call costs on an otherwise idle core;
    on a busy machine the wall clock also counts the time spent waiting for one."""
    for _ in range(5):
        function(image)
    wall, cpu = [], []
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.thread_time()
        function(image)
        wall.append(time.perf_counter() - start)
        cpu.append(time.thread_time() - start_cpu)
    return statistics.median(wall) * 1000, statistics.median(cpu) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()
    digit = load_idx_split(ROOT / "data" / "mnist", "test")[0][0].numpy()
    load = os.getloadavg()[0]
    lines = [f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC · {platform.processor() or platform.machine()}, "
             f"{os.cpu_count()} cores, 1-minute load average {load:.1f} (other work on the machine slows both "
             f"columns alike) · median of {args.repeat} calls of to_mnist on the decoded picture", "",
             "| picture | legacy ms | new ms | legacy / new | legacy CPU ms | new CPU ms | legacy / new (CPU) |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for name, data in pictures(digit).items():
        (old, old_cpu) = milliseconds(legacy.to_mnist, legacy.open_image(data), args.repeat)
        (new, new_cpu) = milliseconds(images.to_mnist, images.open_image(data), args.repeat)
        lines.append(f"| {name} | {old:.2f} | {new:.2f} | {old / new:.1f}x | {old_cpu:.2f} | {new_cpu:.2f} | "
                     f"{old_cpu / new_cpu:.1f}x |")
        print(lines[-1], flush=True)
    lines += ["", f"Reproduce: `python benchmarks/preprocess_speed.py --repeat {args.repeat}`"]
    out = ROOT / "benchmarks" / "results" / "preprocess_speed.md"
    out.write_text("# to_mnist speed, legacy vs new (issue 11)\n\n" + "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
