"""Lesson 5 — classification: a tiny network tells two clouds apart (after Morvan's 302_classification.py).

What it shows:

* Data: two Gaussian clouds of 100 points each (std 1), one around (2, 2) labelled 0 and one around
  (-2, -2) labelled 1.
* The network: 2 inputs → 10 hidden ReLUs → 2 outputs, one score per class, trained with plain SGD at
  learning rate 0.02 on the cross-entropy loss for 100 steps (the tutorial's numbers; all overridable).
* The points coloured by the class the net predicts, with the accuracy written on the figure, saved as
  `classification.gif` while it learns (one frame every 5 steps) and the final frame as `classification.png`.
  Points the net still gets wrong are ringed in black.

Run it with::

    digitlab lesson classification
    digitlab lesson classification --steps 20 --seed 3
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from rich.console import Console
from rich.text import Text

from digitlab.lessons import report

TITLE = "Lesson 5 · classification — two clouds, a 2→10→2 net"

# The tutorial's numbers.
POINTS = 100  # per cloud
HIDDEN = 10
LR = 0.02
STEPS = 100
CENTRE = 2.0  # The clouds sit at (CENTRE, CENTRE) and (-CENTRE, -CENTRE), std 1.


@dataclass
class ClassificationResult:
    """What the lesson computed, so tests and other code can check it."""

    seed: int
    points: int  # per cloud
    hidden: int
    lr: float
    steps: int
    losses: list[float]  # The training loss at every step, before that step's update.
    accuracies: list[float]  # The accuracy of the predictions made at every step, before its update.
    final_loss: float  # Cross-entropy of the trained net on the data.
    accuracy: float  # Fraction of the 2 × points the trained net classifies correctly.
    figures: list[Path] = field(default_factory=list)  # classification.png and .gif, when written.


class Net(torch.nn.Module):
    """The tutorial's network: one hidden layer of ReLUs, then one score ("logit") per class."""

    def __init__(self, n_feature: int, n_hidden: int, n_output: int) -> None:
        super().__init__()
        self.hidden = torch.nn.Linear(n_feature, n_hidden)
        self.out = torch.nn.Linear(n_hidden, n_output)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.hidden(x))
        return self.out(x)  # Raw scores: CrossEntropyLoss applies softmax itself.


def make_data(points: int) -> tuple[torch.Tensor, torch.Tensor]:
    """x: 2 × `points` rows of (x1, x2); y: their labels, 0 for the cloud at (2, 2), 1 for (-2, -2).

    The points come from torch's global generator, so seed it first for the same clouds every run.
    """
    n_data = torch.ones(points, 2)
    x0 = torch.normal(CENTRE * n_data, 1)  # class 0: centred on (2, 2)
    y0 = torch.zeros(points)
    x1 = torch.normal(-CENTRE * n_data, 1)  # class 1: centred on (-2, -2)
    y1 = torch.ones(points)
    # The tutorial wrote torch.cat(...).type(torch.FloatTensor) / .type(torch.LongTensor); .float() and
    # .long() say the same thing. CrossEntropyLoss wants class indices as 64-bit integers.
    x = torch.cat((x0, x1), 0).float()
    y = torch.cat((y0, y1)).long()
    return x, y


# Tiny nets train fastest on one thread; the decorator restores torch's thread count afterwards.
@report.single_threaded
def lesson(
    *,
    seed: int = 0,
    steps: int = STEPS,
    lr: float = LR,
    points: int = POINTS,
    hidden: int = HIDDEN,
    out: Path | None = None,
    show: bool = False,
    console: Console | None = None,
) -> ClassificationResult:
    """Train the net, print how it went, draw into `out` (nothing when None) and return the numbers."""
    console = console or report.make_console()
    lr = report.check_training(seed=seed, steps=steps, points=points, hidden=hidden, lr=lr)

    # --- 1. Data and network ---------------------------------------------------------------------------
    # One seed fixes both the clouds and the network's random initial weights, so a run is the same every
    # time. (The tutorial's torch.manual_seed(1) did the same.)
    torch.manual_seed(seed)
    x, y = make_data(points)
    net = Net(n_feature=2, n_hidden=hidden, n_output=2)
    optimizer = torch.optim.SGD(net.parameters(), lr=lr)
    # Cross-entropy: softmax turns the two scores into probabilities, and the loss is -log(probability of
    # the right class). It is what classifiers are trained on.
    loss_func = torch.nn.CrossEntropyLoss()

    # --- 2. The drawing, if any ------------------------------------------------------------------------
    drawing = out is not None or show
    if drawing:
        fig = report.new_figure(show, figsize=(6.4, 4.8))
        plot = CloudPlot(fig, x)
        movie = report.Movie(fig, show)
        every = report.frame_every(steps)

    # --- 3. Training -----------------------------------------------------------------------------------
    losses: list[float] = []
    accuracies: list[float] = []
    for step in range(steps):
        scores = net(x)  # Forward: two scores per point.
        loss = loss_func(scores, y)

        optimizer.zero_grad()  # Gradients add up across backward() calls, so clear last step's first.
        loss.backward()  # Backpropagation.
        optimizer.step()  # Move every weight a little against its gradient.

        # The predicted class is the one with the larger score. The tutorial took
        # torch.max(F.softmax(out), 1)[1]; softmax never changes which score is largest, so argmax agrees.
        predicted = scores.argmax(dim=1)
        accuracy = (predicted == y).float().mean().item()
        # The tutorial read loss.data[0]; since PyTorch 0.4 (2018) a one-number tensor gives it with .item().
        losses.append(loss.item())
        accuracies.append(accuracy)
        if drawing and step % every == 0:
            plot.update(predicted, y, accuracy, f"step {step}/{steps}")
            movie.frame()

    with torch.no_grad():
        scores = net(x)
        final_loss = loss_func(scores, y).item()
        predicted = scores.argmax(dim=1)
    accuracy = (predicted == y).float().mean().item()
    wrong = int((predicted != y).sum())

    # --- 4. What happened ------------------------------------------------------------------------------
    console.print(
        Text(
            f"seed {seed}: 2 × {points} points, net 2→{hidden}→2, SGD lr {lr:g}, {steps} steps\n"
            f"loss at step 0: {losses[0]:.4f}   final loss: {final_loss:.4f}\n"
            f"accuracy at step 0: {accuracies[0]:.1%}   final accuracy: {accuracy:.1%} "
            f"({wrong} of {2 * points} points on the wrong side)"
        )
    )
    if not math.isfinite(final_loss):
        console.print(Text(f"Training diverged: the loss became {final_loss}; try a smaller --lr."))
    elif accuracy < 0.97:
        console.print(
            Text(
                f"{wrong} points are still on the wrong side: the net has not separated the clouds yet. "
                "More --steps or a larger --lr would finish the job."
            )
        )
    elif wrong:
        console.print(
            Text(
                "The clouds overlap a little (each has std 1), so a point or two far from its centre can sit "
                "on the other side of any sensible boundary; those are ringed in black on the figure."
            )
        )

    result = ClassificationResult(
        seed=seed,
        points=points,
        hidden=hidden,
        lr=lr,
        steps=steps,
        losses=losses,
        accuracies=accuracies,
        final_loss=final_loss,
        accuracy=accuracy,
    )

    # --- 5. The final frame: the trained classifier ----------------------------------------------------
    if drawing:
        plot.update(predicted, y, accuracy, f"step {steps}/{steps}")
        movie.frame()
        if show:
            report.hold_window(fig)
        else:
            result.figures.append(report.save_png(fig, out / "classification.png"))
            result.figures.append(movie.save(out / "classification.gif"))
    return result


class CloudPlot:
    """The tutorial's figure: every point coloured by the class the net predicts, and the accuracy.

    Built once; each frame only recolours the points and rewrites the texts (the tutorial redrew it all
    after plt.cla(), which looks the same and is slower).
    """

    def __init__(self, fig: Figure, x: torch.Tensor) -> None:
        ax = fig.add_subplot(1, 1, 1)
        self.xy = x.numpy()
        # The tutorial's colours: cmap "RdYlGn" maps class 0 to red and class 1 to green.
        self.points = ax.scatter(
            self.xy[:, 0], self.xy[:, 1], c=np.zeros(len(self.xy)), s=60, lw=0, cmap="RdYlGn", vmin=0, vmax=1
        )
        self.wrong = ax.scatter([], [], s=140, facecolors="none", edgecolors="black", lw=1.5)
        ax.set_aspect("equal", adjustable="datalim")
        # The tutorial wrote the accuracy at data point (1.5, -4); axes coordinates keep it in view.
        self.accuracy_text = ax.text(
            0.97, 0.05, "", transform=ax.transAxes, ha="right", fontdict={"size": 20, "color": "red"}
        )
        self.title = ax.set_title(" ", fontsize=11)
        fig.tight_layout()

    def update(self, predicted: torch.Tensor, y: torch.Tensor, accuracy: float, label: str) -> None:
        self.points.set_array(predicted.numpy().astype(float))
        wrong = (predicted != y).numpy()
        self.wrong.set_offsets(self.xy[wrong].reshape(-1, 2))
        self.accuracy_text.set_text(f"Accuracy={accuracy:.2f}")
        self.title.set_text(f"coloured by prediction: red = class 0, green = class 1 · {label}")
