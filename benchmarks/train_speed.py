"""Training speed, side by side in one run on this machine: digitlab against the obvious alternatives.

    python benchmarks/train_speed.py                 # everything (~10 min on 2 cores)
    python benchmarks/train_speed.py --quick         # throughput only (~2 min)

Contenders
  ceiling        fp32 2048^3 matrix product -> what the tutorial CNN could reach at 100% of that rate
  tutorial-loop  the tutorial as written: a Dataset that decodes one PNG per item with PIL, DataLoader,
                 batch 50, Adam 1e-3, fp32
  examples       pytorch/examples mnist/main.py's recipe (its Net, Adadelta lr 1.0, StepLR 0.7, batch 64),
                 written here as a baseline, fed from in-memory tensors
  digitlab       `digitlab train` (tutorial CNN): in-memory uint8 tensors, channels-last, bf16 where native,
                 Adam + one-cycle
  digitlab-fast  `digitlab train --arch fast`

For each: training images/second, and (without --quick) wall seconds until the MNIST test accuracy first
reaches 99.0% (checked after every epoch, on all 10,000 test digits), with a time budget per contender.
Writes benchmarks/results/train_speed.md (table) and train_speed.png (accuracy against seconds).
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from digitlab.data import load  # noqa: E402
from digitlab.models import build  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
TUTORIAL_FLOPS_PER_IMAGE = 3 * 2 * 2_840_000  # forward multiply-adds x 2 flops x ~3 for forward+backward


def matmul_gflops() -> float:
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    for _ in range(3):
        a @ b
    runs, start = 10, time.perf_counter()
    for _ in range(runs):
        a @ b
    return runs * 2 * 2048**3 / (time.perf_counter() - start) / 1e9


# -- the tutorial's loop, as written -------------------------------------------------------------------------


class PngDigits(Dataset):
    """One PNG per digit, decoded with PIL in __getitem__, like the tutorial's image-folder Dataset."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.files = []
        for image in images.numpy():
            buffer = io.BytesIO()
            Image.fromarray(image).save(buffer, format="PNG")
            self.files.append(buffer.getvalue())
        self.labels = labels

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        image = Image.open(io.BytesIO(self.files[i])).convert("L")
        x = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).unsqueeze(0)  # transforms.ToTensor()
        return x, int(self.labels[i])


# -- pytorch/examples' Net (re-written from its description) ------------------------------------------------


class ExamplesNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 32, 3, 1), nn.Conv2d(32, 64, 3, 1)
        self.dropout1, self.dropout2 = nn.Dropout(0.25), nn.Dropout(0.5)
        self.fc1, self.fc2 = nn.Linear(9216, 128), nn.Linear(128, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv1((x - 0.1307) / 0.3081))
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(self.dropout1(x), 1)
        return self.fc2(self.dropout2(F.relu(self.fc1(x))))


@torch.inference_mode()
def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    model.eval()
    x = images.unsqueeze(1).float() / 255
    correct = sum((model(x[i : i + 2000]).argmax(1) == labels[i : i + 2000]).sum().item()
                  for i in range(0, len(x), 2000))
    model.train()
    return correct / len(labels)


def run_loop(name: str, model: nn.Module, optimizer, scheduler, batches, epochs: int, budget: float,
             test: tuple[torch.Tensor, torch.Tensor]) -> dict:
    """Train epoch by epoch; after each, test. Stops at 99% or when the budget is spent."""
    curve, seen, train_time, start = [], 0, 0.0, time.perf_counter()
    reached = None
    for _ in range(epochs):
        epoch_start = time.perf_counter()
        for x, y in batches():
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            seen += len(y)
        if scheduler is not None:
            scheduler.step()
        train_time += time.perf_counter() - epoch_start
        acc = accuracy(model, *test)
        curve.append((time.perf_counter() - start, acc))
        print(f"  {name}: {curve[-1][0]:6.1f} s  test accuracy {acc:.4f}", flush=True)
        if acc >= 0.99 and reached is None:
            reached = curve[-1][0]
            break
        if time.perf_counter() - start > budget:
            break
    return {"name": name, "img_per_s": seen / train_time, "time_to_99": reached, "curve": curve,
            "final_accuracy": curve[-1][1]}


def tutorial_loop(train, test, epochs: int, budget: float, limit: int | None = None) -> dict:
    torch.manual_seed(0)
    n = limit or len(train.images)
    dataset = PngDigits(train.images[:n], train.labels[:n])
    loader = DataLoader(dataset, batch_size=50, shuffle=True)
    model = build("tutorial")
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    return run_loop("tutorial-loop", model, optimizer, None, lambda: iter(loader), epochs, budget, test)


def examples_loop(train, test, epochs: int, budget: float, limit: int | None = None) -> dict:
    torch.manual_seed(0)
    n = limit or len(train.images)
    model = ExamplesNet()
    optimizer = torch.optim.Adadelta(model.parameters(), lr=1.0)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.7)
    images, labels = train.images[:n], train.labels[:n]

    def batches():
        order = torch.randperm(n)
        for i in range(0, n, 64):
            idx = order[i : i + 64]
            yield images[idx].unsqueeze(1).float() / 255, labels[idx]

    return run_loop("examples", model, optimizer, scheduler, batches, epochs, budget, test)


def digitlab_run(arch: str, extra: list[str], budget: float) -> dict:
    """The whole `digitlab train` process, timed from outside: from launch (interpreter start-up, imports
    and data loading included) to the moment it prints its test accuracy. Writing the run folder's files
    afterwards is timed too, as `exit_s`."""
    out = RESULTS / f".run-{arch}"
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "digitlab", "train", "--arch", arch, "--out", str(out),
                                *extra], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    reported = None
    for line in process.stdout:
        if line.startswith("test accuracy:"):
            reported = time.perf_counter() - start
    if process.wait(timeout=budget * 3) != 0 or reported is None:
        raise RuntimeError(f"digitlab train --arch {arch} failed")
    exit_s = time.perf_counter() - start
    metrics = json.loads((out / "metrics.json").read_text())
    reached = reported if metrics["test_accuracy"] >= 0.99 else None
    return {"name": f"digitlab-{arch}" if arch != "tutorial" else "digitlab", "img_per_s":
            metrics["train_images_per_second"], "time_to_99": reached, "curve": [(reported, metrics["test_accuracy"])],
            "final_accuracy": metrics["test_accuracy"], "exit_s": exit_s}


def fast_seeds(n: int) -> list[tuple[int, float, float, float]]:
    """Whole-process wall seconds and test accuracy of `digitlab train --arch fast` for seeds 0..n-1."""
    results = []
    for seed in range(n):
        row = digitlab_run("fast", ["--seed", str(seed)], 120)
        results.append((seed, row["curve"][-1][0], row["final_accuracy"], row["exit_s"]))
        print(f"  fast seed {seed}: {results[-1][1]:.1f} s to the reported accuracy ({row['exit_s']:.1f} s to exit), "
              f"{results[-1][2]:.2%}", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="throughput only, on subsets")
    parser.add_argument("--budget", type=float, default=240, help="seconds per contender")
    parser.add_argument("--seeds", type=int, default=5, help="seeds of `--arch fast` timed end to end")
    args = parser.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    train, test = load(ROOT / "data" / "mnist", "train"), load(ROOT / "data" / "mnist", "test")
    testset = (test.images, test.labels)
    gflops = matmul_gflops()
    ceiling = gflops * 1e9 / TUTORIAL_FLOPS_PER_IMAGE
    print(f"fp32 matmul: {gflops:.0f} GFLOP/s -> tutorial CNN training ceiling {ceiling:,.0f} img/s", flush=True)
    rows = []
    if args.quick:
        rows.append(tutorial_loop(train, testset, 1, args.budget, limit=6000))
        rows.append(examples_loop(train, testset, 1, args.budget, limit=6000))
        rows.append(digitlab_run("tutorial", ["--epochs", "1"], args.budget))
    else:
        rows.append(tutorial_loop(train, testset, 10, args.budget))
        rows.append(examples_loop(train, testset, 14, args.budget))
        rows.append(digitlab_run("tutorial", [], args.budget))
        rows.append(digitlab_run("fast", [], args.budget))
    base = rows[0]
    lines = [
        f"Machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
        f"torch {torch.__version__}; fp32 matmul {gflops:.0f} GFLOP/s; tutorial-CNN ceiling {ceiling:,.0f} img/s.",
        "Time to 99%: tutorial-loop and examples are timed in-process from the start of training, tested after "
        "every epoch; digitlab rows are whole processes, launch to the printed test accuracy (start-up and data "
        "loading included).",
        "",
        "| contender | train img/s | img/s vs tutorial-loop | % of ceiling | time to 99% (s) "
        "| faster to 99% than tutorial-loop | than examples | final test acc |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    examples = next((r for r in rows if r["name"] == "examples"), None)

    def speedup(row: dict, baseline: dict | None) -> str:
        if baseline is None or not row["time_to_99"] or not baseline["time_to_99"]:
            return "-"
        return f"{baseline['time_to_99'] / row['time_to_99']:.1f}x"

    for row in rows:
        t99 = f"{row['time_to_99']:.1f}" if row["time_to_99"] else "not reached"
        share = f"{100 * row['img_per_s'] / ceiling:.0f}%" if row["name"] in ("digitlab", "tutorial-loop") else "-"
        lines.append(f"| {row['name']} | {row['img_per_s']:,.0f} | {row['img_per_s'] / base['img_per_s']:.1f}x | "
                     f"{share} | {t99} | {speedup(row, base)} | {speedup(row, examples)} | "
                     f"{row['final_accuracy']:.2%} |")
    if not args.quick and args.seeds:
        seeds = fast_seeds(args.seeds)
        walls, accs = sorted(s[1] for s in seeds), sorted(s[2] for s in seeds)
        exits = sorted(s[3] for s in seeds)
        lines += ["", "`digitlab train --arch fast`, whole process: launch to the printed test accuracy "
                  f"(and to exit, after writing the run folder), seeds 0-{args.seeds - 1}:",
                  "", "| seed | wall s to accuracy | wall s to exit | test accuracy |", "|---:|---:|---:|---:|"]
        lines += [f"| {seed} | {wall:.1f} | {end:.1f} | {acc:.2%} |" for seed, wall, acc, end in seeds]
        mid = len(walls) // 2
        lines += [f"| median | {walls[mid]:.1f} | {exits[mid]:.1f} | {accs[mid]:.2%} |",
                  f"| worst | {walls[-1]:.1f} | {exits[-1]:.1f} | {accs[0]:.2%} |"]
    table = "\n".join(lines)
    print("\n" + table)
    RESULTS.mkdir(exist_ok=True)
    name = "train_speed_quick" if args.quick else "train_speed"
    (RESULTS / f"{name}.md").write_text(table + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for row in rows:
        xs, ys = zip(*row["curve"], strict=True)
        ax.plot(xs, [100 * y for y in ys], "o-", label=row["name"])
    ax.axhline(99.0, color="gray", linestyle="--", linewidth=1)
    ax.set_xlabel("wall seconds")
    ax.set_ylabel("MNIST test accuracy (%)")
    ax.set_ylim(97, 100)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.savefig(RESULTS / f"{name}.png", dpi=100, bbox_inches="tight")


if __name__ == "__main__":
    main()
