"""Every figure digitlab draws, saved as PNG (never shown: training runs headless).

Figures are `matplotlib.figure.Figure` objects rendered by Agg, not pyplot: no GUI backend is looked
for, nothing is registered globally, and importing this module costs a third of what pyplot does.
"""

from __future__ import annotations

import io
import os

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from digitlab.fileio import atomic_write_bytes


def _figure(width: float, height: float) -> tuple[Figure, object]:
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig, fig.subplots()


def _save(fig: Figure, path: str | os.PathLike) -> None:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    atomic_write_bytes(path, buffer.getvalue())


def loss_curve(steps: list[int], losses: list[float], path: str | os.PathLike,
               val_steps: list[int] | None = None, val_losses: list[float] | None = None) -> None:
    """The tutorial's loss plot: training loss against step, with validation loss per epoch."""
    fig, ax = _figure(7, 4)
    ax.plot(steps, losses, label="train loss", color="tab:blue", linewidth=1)
    if val_steps:
        ax.plot(val_steps, val_losses, "o-", label="validation loss", color="tab:red")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy loss")
    ax.set_yscale("log")
    ax.grid(True, alpha=0.3)
    ax.legend()
    _save(fig, path)


def confusion(matrix: list[list[int]], path: str | os.PathLike, title: str = "") -> None:
    """Counts of true (rows) against predicted (columns) digits; the diagonal is dimmed to show errors."""
    import numpy as np

    counts = np.asarray(matrix)
    off = counts.copy()
    np.fill_diagonal(off, 0)
    fig, ax = _figure(6.2, 5.4)
    image = ax.imshow(off, cmap="Reds")
    for i in range(10):
        for j in range(10):
            ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=7,
                    color="gray" if i == j else ("white" if off[i, j] > off.max() / 2 else "black"))
    ax.set_xticks(range(10))
    ax.set_yticks(range(10))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or "confusion matrix (off-diagonal = errors)")
    fig.colorbar(image, ax=ax, fraction=0.046)
    _save(fig, path)


def reliability(diagrams: list[tuple[str, dict]], path: str | os.PathLike, title: str = "") -> None:
    """Reliability diagrams side by side, one per (label, `digitlab.calibrate.reliability` data): per confidence
    bin, the accuracy against the diagonal a calibrated model sits on, with the ECE and the bin counts."""
    from matplotlib.figure import Figure  # no pyplot: nothing global, nothing to close

    fig = Figure(figsize=(4.2 * len(diagrams), 4.4))
    axes = fig.subplots(1, len(diagrams), squeeze=False)[0]
    for ax, (label, data) in zip(axes, diagrams, strict=True):
        width = 1 / data["bins"]
        lefts = data["edges"][:-1]
        filled = [i for i, c in enumerate(data["count"]) if c]
        ax.plot([0, 1], [0, 1], "--", color="gray", linewidth=1, label="calibrated")
        ax.bar([lefts[i] for i in filled], [data["accuracy"][i] for i in filled], width=width, align="edge",
               color="tab:blue", edgecolor="white", label="accuracy")
        # What each bin claims, as a mark across its bar: the gap to the bar's top is the miscalibration.
        ax.hlines([data["confidence"][i] for i in filled], [lefts[i] for i in filled],
                  [lefts[i] + width for i in filled], color="tab:red", linewidth=2, label="mean confidence")
        for i in filled:
            ax.text(lefts[i] + width / 2, 0.02, f"{data['count'][i]:,}", rotation=90, ha="center", va="bottom",
                    fontsize=6, color="white" if data["accuracy"][i] > 0.15 else "black")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_aspect("equal")
        ax.set_xlabel("confidence (bins of 1/15; counts at the foot)")
        ax.set_ylabel("accuracy")
        ax.set_title(f"{label}: ECE {data['ece']:.2%}\nmean confidence {data['mean_confidence']:.2%}, "
                     f"accuracy {data['accuracy_all']:.2%}", fontsize=9)
        ax.grid(True, alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=8, bbox_to_anchor=(0.5, -0.06))
    if title:
        fig.suptitle(title, fontsize=10)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    atomic_write_bytes(path, buffer.getvalue())
