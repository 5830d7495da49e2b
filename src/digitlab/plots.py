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
