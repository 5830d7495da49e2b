"""Lesson 3 — activations: the bends that make a network more than a line (after Morvan's 203_activation.py).

What it shows:

* relu, sigmoid, tanh and softplus evaluated on 200 points from -5 to 5 and drawn in the tutorial's 2×2
  figure, with the tutorial's y-limits (`activations.png`).
* softmax, which the tutorial only mentioned in a comment because it is not a curve but a way to turn a
  vector of scores into a probability distribution: drawn separately as ten digit scores and the
  probabilities softmax makes of them (`softmax.png`).

Run it with::

    digitlab lesson activations --out lessons-out
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from rich.console import Console
from rich.table import Table
from rich.text import Text

from digitlab.lessons import report

TITLE = "Lesson 3 · activations — relu, sigmoid, tanh, softplus and softmax"

# The points at which the printed table samples each curve.
SAMPLE_X = (-5.0, -1.0, 0.0, 1.0, 5.0)

# Scores ("logits") that a digit classifier might give an image of a 3: it also sees something of an 8 and
# a 5. Softmax turns them into probabilities.
DIGIT_LOGITS = (-1.0, 0.5, 1.2, 4.0, -0.5, 2.1, -1.5, 0.3, 2.8, 0.0)


@dataclass
class ActivationsResult:
    """What the lesson computed, so tests and other code can check it."""

    x: list[float]  # The 200 inputs, linspace(-5, 5, 200).
    curves: dict[str, list[float]]  # Activation name → its 200 outputs.
    samples: dict[str, list[float]]  # Activation name → outputs at SAMPLE_X.
    softmax: list[float]  # softmax(DIGIT_LOGITS): ten probabilities that sum to 1.
    figures: list[Path] = field(default_factory=list)  # activations.png and softmax.png, when written.


def lesson(
    *, out: Path | None = None, show: bool = False, console: Console | None = None
) -> ActivationsResult:
    """Run the lesson, print it, draw its figures into `out` (none when None) and return its numbers."""
    console = console or report.make_console()

    # --- 1. Four activation functions on the same inputs -----------------------------------------------
    # The tutorial wrapped x in Variable and read results with .data.numpy(); since PyTorch 0.4 (2018) plain
    # tensors do both jobs. F.sigmoid and F.tanh were deprecated in 0.4.1 (2018) for torch.sigmoid/torch.tanh.
    x = torch.linspace(-5, 5, 200)
    curves = {
        "relu": torch.relu(x),
        "sigmoid": torch.sigmoid(x),
        "tanh": torch.tanh(x),
        "softplus": F.softplus(x),
    }

    samples_in = torch.tensor(SAMPLE_X)
    samples = {
        "relu": torch.relu(samples_in),
        "sigmoid": torch.sigmoid(samples_in),
        "tanh": torch.tanh(samples_in),
        "softplus": F.softplus(samples_in),
    }
    table = Table(title=Text("each activation at a few inputs"), title_justify="left")
    table.add_column("x", justify="right")
    for name in samples:
        table.add_column(name, justify="right")
    for i, value in enumerate(SAMPLE_X):
        table.add_row(f"{value:g}", *(f"{samples[name][i].item():.4f}" for name in samples))
    console.print(table)
    console.print(
        Text(
            "relu cuts negatives to 0; sigmoid squeezes into (0, 1) and tanh into (-1, 1); softplus is a "
            "smooth relu, log(1 + eˣ), never quite 0."
        )
    )
    console.print()

    # --- 2. Softmax: scores in, probabilities out ------------------------------------------------------
    # softmax(z)_i = exp(z_i) / Σ_j exp(z_j): every output is positive and they sum to 1. Since PyTorch 0.3
    # (2017) softmax wants to be told the dimension to normalise over; leaving dim out is deprecated.
    logits = torch.tensor(DIGIT_LOGITS)
    probs = F.softmax(logits, dim=0)

    table = Table(title=Text("softmax turns ten digit scores into probabilities"), title_justify="left")
    table.add_column("digit", justify="right")
    table.add_column("score (logit)", justify="right")
    table.add_column("softmax", justify="right")
    for digit, (score, p) in enumerate(zip(DIGIT_LOGITS, probs.tolist(), strict=True)):
        table.add_row(str(digit), f"{score:+.1f}", f"{p:.4f}")
    table.add_row("sum", "", f"{probs.sum().item():.4f}")
    console.print(table)
    console.print(
        Text(
            f"The largest score wins most of the probability (digit {int(probs.argmax())}: "
            f"{probs.max().item():.0%}), but softmax keeps the order and never gives exactly 0."
        )
    )

    result = ActivationsResult(
        x=x.tolist(),
        curves={name: y.tolist() for name, y in curves.items()},
        samples={name: y.tolist() for name, y in samples.items()},
        softmax=probs.tolist(),
    )

    # --- 3. The figures --------------------------------------------------------------------------------
    if out is None and not show:
        return result
    fig = report.new_figure(show, figsize=(8, 6))
    draw_activations(fig, x, curves)
    fig2 = report.new_figure(show, figsize=(8, 3.6))
    draw_softmax(fig2, logits, probs)
    if show:
        report.hold_window(fig, fig2)
    else:
        result.figures.append(report.save_png(fig, out / "activations.png"))
        result.figures.append(report.save_png(fig2, out / "softmax.png"))
    return result


def draw_activations(fig: Figure, x: torch.Tensor, curves: dict[str, torch.Tensor]) -> None:
    """The tutorial's 2×2 figure: one activation per panel, red line, legend, the tutorial's y-limits."""
    ylims = {"relu": (-1, 5), "sigmoid": (-0.2, 1.2), "tanh": (-1.2, 1.2), "softplus": (-0.2, 6)}
    for position, (name, y) in enumerate(curves.items(), start=1):
        ax = fig.add_subplot(2, 2, position)
        ax.plot(x.numpy(), y.numpy(), c="red", label=name)
        ax.set_ylim(ylims[name])
        ax.legend(loc="best")
    fig.tight_layout()


def draw_softmax(fig: Figure, logits: torch.Tensor, probs: torch.Tensor) -> None:
    """Two bar charts: the raw scores, and the probability distribution softmax makes of them."""
    digits = range(len(logits))
    ax1 = fig.add_subplot(1, 2, 1)
    ax1.bar(digits, logits.numpy(), color=["tab:red" if s < 0 else "tab:blue" for s in logits.tolist()])
    ax1.axhline(0, color="black", lw=0.8)
    ax1.set_title("scores (logits): any real numbers")
    ax1.set_xlabel("digit")
    ax1.set_xticks(list(digits))

    ax2 = fig.add_subplot(1, 2, 2)
    ax2.bar(digits, probs.numpy(), color="tab:green")
    ax2.set_ylim(0, 1)
    ax2.set_title("softmax: positive, sums to 1")
    ax2.set_xlabel("digit")
    ax2.set_xticks(list(digits))
    for digit, p in enumerate(probs.tolist()):
        if p >= 0.05:
            ax2.text(digit, p + 0.02, f"{p:.2f}", ha="center", fontsize=8)
    fig.tight_layout()
