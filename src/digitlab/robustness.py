"""The robustness suite: accuracy on MNIST test digits as people write them and as pictures are taken.

    digitlab evaluate --robustness [--model strong|DIR] [--limit 500] [--seed 0] [--out runs/robustness] [--json]

Each of `limit` test digits (a seeded draw from the test set) is drawn by every family of
`digitlab.robustness_families` at every severity, encoded to PNG or JPEG, and sent through the path a user's
file takes: `open_image(bytes)` -> `to_mnist` -> model. Prints a table (family x severity), writes
robustness.json and robustness.png into --out. `--baseline OLD.json` (a robustness.json of an earlier run)
adds its numbers beside the new ones, as before/after bars.

`run` takes columns of (engine, preprocess) so that benchmarks/robustness.py can compare preprocessing
functions and models on the very same pictures.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from digitlab.engine import Engine
from digitlab.errors import DigitlabError
from digitlab.robustness_families import FAMILIES, SEVERITIES, clean_picture, picture

Preprocess = Callable[[bytes], np.ndarray]  # encoded picture -> uint8 (28, 28), white ink on black
Column = tuple[Engine, Preprocess]


def user_path(data: bytes) -> np.ndarray:
    """What `digitlab predict`, the web page and the API do with a file."""
    from digitlab.data.images import open_image, to_mnist

    return to_mnist(open_image(data))


def choose(n: int, limit: int, seed: int) -> np.ndarray:
    """A seeded draw of `limit` indices out of n, sorted (MNIST's test set is easier in its first half)."""
    if not 1 <= limit <= n:
        raise DigitlabError(f"--limit must be between 1 and {n:,}, got {limit}")
    return np.sort(np.random.default_rng(seed).permutation(n)[:limit])


def run(columns: dict[str, Column], images: np.ndarray, labels: np.ndarray, indices: np.ndarray,
        seed: int = 0, families: Sequence[str] | None = None,
        progress: Callable[[str], None] | None = None) -> dict[str, dict[str, Any]]:
    """Accuracy of every column on the pictures of `images[indices]`, per family and severity.

    Each picture is generated once and given to every column. Returns {column: {"clean", "families":
    {family: {severity: accuracy}}, "mean": {severity: accuracy}, "overall"}}; "clean" is the plain digit
    drawn black on white, the reference for the rest.
    """
    families = list(families or FAMILIES)
    digits, truth = images[indices], labels[indices]
    cells = [("clean", "")] + [(f, s) for f in families for s in SEVERITIES]
    inputs: dict[str, list[np.ndarray]] = {name: [] for name in columns}
    for family, severity in cells:
        if progress and family != "clean":
            progress(f"{family} {severity}")
        # The digit's index in the test set, not its place in this draw, seeds its picture: a digit
        # looks the same whatever --limit chose alongside it.
        pictures = ([clean_picture(d) for d in digits] if family == "clean" else
                    [picture(family, severity, d, seed, int(i)) for d, i in zip(digits, indices, strict=True)])
        for name, (_, preprocess) in columns.items():
            inputs[name].append(np.stack([preprocess(data) for data in pictures]))
    out: dict[str, dict[str, Any]] = {}
    for name, (engine, _) in columns.items():
        # One call per column: the engine batches far better than one call per cell of a few digits.
        predicted = engine.logits(np.concatenate(inputs[name])).argmax(1).numpy().reshape(len(cells), -1)
        correct = (predicted == truth).mean(1)
        table: dict[str, dict[str, float]] = {f: {} for f in families}
        for (family, severity), accuracy in zip(cells[1:], correct[1:].tolist(), strict=True):
            table[family][severity] = accuracy
        mean = {s: float(np.mean([table[f][s] for f in families])) for s in SEVERITIES}
        out[name] = {"clean": float(correct[0]), "families": table, "mean": mean,
                     "overall": float(np.mean(list(mean.values())))}
    return out


def plot(results: dict[str, dict[str, Any]], path: str | os.PathLike, title: str = "") -> None:
    """One panel per severity: bars per family, one colour per column (e.g. before/after)."""
    import matplotlib

    matplotlib.use("Agg")
    import io

    import matplotlib.pyplot as plt

    from digitlab.fileio import atomic_write_bytes

    names = list(results)
    families = list(results[names[-1]]["families"])  # a baseline may lack families added since
    x = np.arange(len(families) + 1)
    width = 0.8 / len(names)
    fig, axes = plt.subplots(len(SEVERITIES), 1, figsize=(max(10, 0.7 * len(x) * max(1, len(names) / 2)), 9),
                             sharex=True)
    for ax, severity in zip(axes, SEVERITIES, strict=True):
        for k, name in enumerate(names):
            table = results[name]["families"]
            values = [100 * table.get(f, {}).get(severity, np.nan) for f in families]
            values.append(100 * results[name]["mean"][severity])
            ax.bar(x + (k - (len(names) - 1) / 2) * width, values, width, label=name)
        ax.set_ylabel(f"{severity}\naccuracy %")
        low = np.nanmin([r["families"].get(f, {}).get(severity, np.nan) for r in results.values() for f in families])
        ax.set_ylim(max(0.0, 100 * low - 5), 100.5)
        ax.axhline(98.5, color="gray", linewidth=0.6, linestyle="--")
        ax.grid(True, axis="y", alpha=0.3)
    axes[-1].set_xticks(x, families + ["mean"], rotation=40, ha="right")
    axes[0].legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    axes[0].set_title(title or "accuracy per family and severity (dashed: 98.5%)")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())


def markdown(results: dict[str, dict[str, Any]]) -> str:
    """Markdown tables: moderate severity for every column side by side, then family x severity per column."""
    names = list(results)
    families = list(next(iter(results.values()))["families"])
    lines = ["| moderate | " + " | ".join(names) + " |", "|---" + "|---:" * len(names) + "|"]
    for family in families:
        lines.append(f"| {family} | " + " | ".join(f"{100 * results[n]['families'][family]['moderate']:.1f}"
                                                   for n in names) + " |")
    lines.append("| **mean** | " + " | ".join(f"**{100 * results[n]['mean']['moderate']:.1f}**" for n in names)
                 + " |")
    lines.append("| clean (no variation) | " + " | ".join(f"{100 * results[n]['clean']:.1f}" for n in names)
                 + " |")
    for name in names:
        lines += ["", f"**{name}**", "", "| family | " + " | ".join(SEVERITIES) + " |",
                  "|---" + "|---:" * len(SEVERITIES) + "|"]
        table = results[name]["families"]
        for family in families:
            lines.append(f"| {family} | " + " | ".join(f"{100 * table[family][s]:.1f}" for s in SEVERITIES) + " |")
        lines.append("| **mean** | " + " | ".join(f"**{100 * results[name]['mean'][s]:.1f}**" for s in SEVERITIES)
                     + " |")
    return "\n".join(lines) + "\n"


def _read_baseline(path: str) -> dict[str, Any]:
    try:
        baseline = json.loads(Path(path).read_text())
        complete = all(set(v) == set(SEVERITIES) for v in baseline["families"].values())
        complete = complete and set(baseline["mean"]) == set(SEVERITIES) and baseline["clean"] >= 0
        if baseline["families"] and complete:
            return baseline
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass
    raise DigitlabError(f"{path}: not a robustness.json written by `digitlab evaluate --robustness`")


def _print_table(result: dict[str, Any], baseline: dict[str, Any] | None, title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    table.add_column("family")
    for severity in SEVERITIES:
        table.add_column(severity, justify="right")

    def cell(value: float, before: float | None) -> str:
        style = "green" if value >= 0.985 else ("yellow" if value >= 0.95 else "red")
        text = f"[{style}]{100 * value:.1f}[/]"
        return text if before is None else f"{text} [dim]({100 * before:.1f})[/]"

    for family, row in result["families"].items():
        old = baseline["families"].get(family) if baseline else None
        table.add_row(family, *(cell(row[s], old[s] if old else None) for s in SEVERITIES))
    table.add_row("[bold]mean[/]", *(cell(result["mean"][s], baseline["mean"][s] if baseline else None)
                                     for s in SEVERITIES))
    console = Console(highlight=False)
    console.print(table)
    before = f" (baseline {100 * baseline['clean']:.1f})" if baseline else ""
    console.print(f"clean digits drawn black on white: {100 * result['clean']:.1f}%{before}; "
                  f"mean over all families and severities: {100 * result['overall']:.2f}%")


def main(args: argparse.Namespace) -> int:
    """`digitlab evaluate --robustness`: the table, robustness.json and robustness.png in --out."""
    from digitlab.data import load_labelled
    from digitlab.device import pick_device
    from digitlab.engine import load_engine
    from digitlab.models import describe_models

    baseline = _read_baseline(args.baseline) if args.baseline else None
    if args.limit < 1:
        raise DigitlabError(f"--limit must be at least 1, got {args.limit}")
    digits = load_labelled(args.data)
    indices = choose(len(digits), min(args.limit, len(digits)), args.seed)
    device = pick_device(args.device)
    meta = describe_models(args.model)
    engine = load_engine(args.model, args.engine, device)
    done = [0]

    def progress(step: str) -> None:
        done[0] += 1
        if not args.json:
            print(f"\r[{done[0]}/{len(FAMILIES) * len(SEVERITIES)}] {step:<28}", end="", file=sys.stderr,
                  flush=True)

    results = run({"model": (engine, user_path)}, digits.images.numpy(), digits.labels.numpy(), indices,
                  args.seed, progress=progress)
    if not args.json:
        print(file=sys.stderr)
    model = [str(m) for m in args.model] if args.model else "shipped"
    result = {"model": model, "arch": meta["arch"], "data": digits.source, "seed": args.seed,
              "n": len(indices), "severities": list(SEVERITIES), **results["model"]}
    out = Path(args.out)
    from digitlab.fileio import atomic_write_text

    atomic_write_text(out / "robustness.json", json.dumps(result, indent=1) + "\n")
    columns = {"baseline": baseline, "this model": result} if baseline else {str(meta["arch"]): result}
    plot(columns, out / "robustness.png", f"{meta['arch']}: accuracy on {len(indices):,} test digits per "
                                          "family and severity (dashed: 98.5%)")
    if args.json:
        print(json.dumps(result))
        return 0
    _print_table(result, baseline, f"{meta['arch']} on {len(indices):,} MNIST test digits per family and "
                                   "severity, accuracy % " + ("(in brackets: baseline)" if baseline else ""))
    print(f"wrote {out / 'robustness.json'} and {out / 'robustness.png'}", file=sys.stderr)
    return 0
