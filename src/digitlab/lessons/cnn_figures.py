"""The figures of lesson 6 (`cnn.py`): filters, feature maps, the map of digits, mistakes and confusion.

Every function draws onto a figure it is given — an off-screen Agg figure or a live window, see
`report.new_figure` — with one image per panel, so a test can count the panels and read back what each shows.
The map of digits also needs its projection to 2-D (`pca_2d`) and a number for how far apart the digits lie
in it (`separation`); both live here beside the plot they serve.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure, SubFigure

# Ten clearly different colours, one per digit, in the map of digits and its labels.
DIGIT_COLOURS = "tab10"
# Figure sizes in inches; mistakes.png has room for four rows of eight digits.
FIGSIZES = {
    "filters.png": (8, 2.6),
    "feature_maps.png": (8, 7.5),
    "mistakes.png": (10, 7.2),
    "confusion.png": (6.2, 5.4),
}


def image_grid(
    fig: Figure | SubFigure,
    images: np.ndarray,
    cols: int,
    *,
    cmap: str,
    vmin: float,
    vmax: float,
    titles: Sequence[str] | None = None,
) -> list[Axes]:
    """Draw `images` (N, H, W) as a grid of `cols` columns, one panel each; returns the panels' axes.

    One shared colour scale (`vmin`..`vmax`) for the whole grid, so a pale panel really is a weak one.
    """
    rows = max(1, math.ceil(len(images) / cols))
    axes = fig.subplots(rows, cols, squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if i < len(images):
            ax.imshow(images[i], cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
            if titles is not None:
                ax.set_title(titles[i], fontsize=7)
    return list(axes.flat[: len(images)])


def panel_count(fig: Figure) -> int:
    """How many image panels `fig` holds: the grid counts the lesson reports and the tests check."""
    return sum(1 for ax in fig.axes if ax.images)


def draw_filters(fig: Figure, weight: np.ndarray) -> None:
    """conv1's filters (16, 1, 5, 5) as 5×5 images: red where the filter adds ink, blue where it subtracts."""
    limit = float(np.abs(weight).max()) or 1.0
    image_grid(
        fig,
        weight[:, 0],
        cols=8,
        cmap="RdBu_r",
        vmin=-limit,
        vmax=limit,
        titles=[f"filter {i + 1}" for i in range(len(weight))],
    )
    fig.suptitle(f"conv1: the {len(weight)} filters, 5×5 weights each (red +, blue −)", fontsize=11)
    fig.tight_layout()


def draw_feature_maps(
    fig: Figure,
    digit: np.ndarray,
    label: int,
    before_pool: np.ndarray,
    after_pool1: np.ndarray,
    after_pool2: np.ndarray,
    shown: int,
) -> None:
    """One digit inside the net: the input, what pooling does to one map, then all 16 and all 32 maps.

    `before_pool` is conv1 → ReLU (16, 28, 28); `after_pool1` the same after 2×2 max-pooling (16, 14, 14);
    `after_pool2` the maps after conv2 → ReLU → pool (32, 7, 7); `shown` is the map drawn large at the top.
    """
    top, middle, bottom = fig.subfigures(3, 1, height_ratios=[1.5, 1.3, 2.2])
    ax_in, ax_before, ax_after = top.subplots(1, 3)
    ax_in.imshow(digit, cmap="gray", vmin=0, vmax=1)
    ax_in.set_title(f"the input: a {label}, 28×28", fontsize=9)
    scale = float(before_pool[shown].max()) or 1.0
    ax_before.imshow(before_pool[shown], cmap="magma", vmin=0, vmax=scale, interpolation="nearest")
    ax_before.set_title(f"conv1 map {shown + 1}, 28×28", fontsize=9)
    ax_after.imshow(after_pool1[shown], cmap="magma", vmin=0, vmax=scale, interpolation="nearest")
    ax_after.set_title("after 2×2 max-pool, 14×14", fontsize=9)
    for ax in (ax_in, ax_before, ax_after):
        ax.set_axis_off()

    image_grid(middle, after_pool1, cols=8, cmap="magma", vmin=0, vmax=float(after_pool1.max()) or 1.0)
    middle.suptitle("conv1 → ReLU → pool: 16 maps of 14×14", fontsize=10)
    image_grid(bottom, after_pool2, cols=8, cmap="magma", vmin=0, vmax=float(after_pool2.max()) or 1.0)
    bottom.suptitle("conv2 → ReLU → pool: 32 maps of 7×7 = 1,568 numbers for the last layer", fontsize=10)


def pca_2d(features: torch.Tensor, previous: np.ndarray | None) -> np.ndarray:
    """Project (N, 1568) features onto their two main directions of spread (PCA), as (N, 2).

    A principal direction has no preferred sign, so each axis is flipped to agree with the previous frame
    and the animation does not mirror itself between frames.
    """
    # pca_lowrank is randomised; a private generator state makes it repeatable without touching training's.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        _, _, directions = torch.pca_lowrank(features, q=4, center=True, niter=4)
    xy = ((features - features.mean(0)) @ directions[:, :2]).numpy()
    if previous is not None:
        xy *= np.where((xy * previous).sum(0) < 0, -1.0, 1.0)
    return xy


def separation(xy: np.ndarray, labels: np.ndarray) -> float:
    """Between-cluster spread over all spread in the map: 0 when the digits are mixed, 1 when each is a point."""
    centre = xy.mean(0)
    total = ((xy - centre) ** 2).sum()
    between = sum((labels == d).sum() * ((xy[labels == d].mean(0) - centre) ** 2).sum() for d in np.unique(labels))
    return float(between / total) if total > 0 else 0.0


class EmbeddingPlot:
    """The map of digits: one dot per test digit at its 2-D PCA position, coloured by its true label.

    Built once; each frame moves the dots and the ten digit labels (drawn at each digit's median position)
    and rescales the axes, because the features grow as the network trains.
    """

    def __init__(self, fig: Figure, labels: np.ndarray) -> None:
        self.ax = fig.add_subplot(1, 1, 1)
        self.labels = labels
        self.dots = self.ax.scatter(
            np.zeros(len(labels)), np.zeros(len(labels)), c=labels, cmap=DIGIT_COLOURS, vmin=-0.5, vmax=9.5,
            s=5, lw=0,
        )
        self.names = [
            self.ax.text(0, 0, str(d), fontsize=14, weight="bold", ha="center", va="center",
                         color=self.dots.cmap(d / 10 + 0.05), bbox={"fc": "white", "ec": "none", "alpha": 0.7})
            for d in range(10)
        ]
        self.ax.set_xticks([])
        self.ax.set_yticks([])
        self.ax.set_xlabel("first principal component")
        self.ax.set_ylabel("second principal component")
        self.title = self.ax.set_title(" ", fontsize=10)
        fig.tight_layout()

    def update(self, xy: np.ndarray, title: str) -> None:
        self.dots.set_offsets(xy)
        for digit, name in enumerate(self.names):
            mine = xy[self.labels == digit]
            name.set_visible(len(mine) > 0)
            if len(mine):
                name.set_position(np.median(mine, axis=0))
        # Frame the middle 99% of the dots, so one far-flung digit does not shrink all the others.
        low, high = np.percentile(xy, [0.5, 99.5], axis=0)
        margin = 0.08 * (high - low) + 1e-6
        self.ax.set_xlim(low[0] - margin[0], high[0] + margin[0])
        self.ax.set_ylim(low[1] - margin[1], high[1] + margin[1])
        self.title.set_text(title)


def draw_mistakes(fig: Figure, images: np.ndarray, mistakes: Sequence, total: int) -> None:
    """A gallery of misread digits, each titled "true read as x" with the net's two most likely answers.

    `mistakes` holds one `cnn.Mistake` (true, read, p_read, second, p_second, ...) per image.
    """
    if len(images) == 0:
        fig.text(0.5, 0.5, "no mistakes on the test digits", ha="center", va="center", fontsize=14)
        return
    titles = [f"{m.true} read as {m.read}\n{m.read}: {m.p_read:.0%}  {m.second}: {m.p_second:.0%}" for m in mistakes]
    image_grid(fig, images, cols=8, cmap="gray", vmin=0, vmax=1, titles=titles)
    fig.suptitle(
        f"the {len(images)} most confident of its {total} mistakes on the test digits "
        "(true label, then its top two answers)",
        fontsize=10,
    )
    fig.tight_layout()


def draw_confusion(fig: Figure, counts: np.ndarray) -> None:
    """Counts of true (rows) against read (columns) digits; the diagonal, the right answers, is greyed out."""
    ax = fig.add_subplot(1, 1, 1)
    off = counts.copy()
    np.fill_diagonal(off, 0)
    image = ax.imshow(off, cmap="Reds", vmin=0, vmax=max(1, int(off.max())))
    for i in range(10):
        for j in range(10):
            colour = "gray" if i == j else ("white" if off[i, j] > off.max() / 2 else "black")
            ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=7, color=colour)
    ax.set_xticks(range(10))
    ax.set_yticks(range(10))
    ax.set_xlabel("read as")
    ax.set_ylabel("true digit")
    ax.set_title("confusion matrix: off the diagonal are the mistakes", fontsize=10)
    fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
