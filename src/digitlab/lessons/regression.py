"""Lesson 4 — regression: a tiny network learns to draw a parabola (after Morvan's 301_regression.py).

What it shows:

* Data: 100 points x in [-1, 1] and y = x² + 0.2·U(0, 1) noise.
* The network: 1 input → 10 hidden ReLUs → 1 output (Linear, ReLU, Linear), trained with plain SGD at
  learning rate 0.5 on the mean squared error for 100 steps (the tutorial's numbers; all overridable).
* The fit drawn as it learns — a red line over the scatter with the loss written on it — saved as
  `regression.gif` (one frame every 5 steps) and the final frame as `regression.png`.
* Honesty about the noise floor: the uniform noise alone has variance 0.2²/12 ≈ 0.0033, so no curve can
  be expected to get the MSE below that. With lr 0.5 a few seeds get stuck far above it because most hidden
  ReLUs "die" during training; the lesson says so, and why, instead of hiding those seeds.

Run it with::

    digitlab lesson regression
    digitlab lesson regression --steps 200 --lr 0.2 --seed 1
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
from matplotlib.figure import Figure
from rich.console import Console
from rich.text import Text

from digitlab.lessons import report

TITLE = "Lesson 4 · regression — fitting y = x² with a 1→10→1 net"

# The tutorial's numbers.
POINTS = 100
HIDDEN = 10
LR = 0.5
STEPS = 100
NOISE = 0.2  # y = x² + NOISE · U(0, 1)

# The part of the noise no curve can predict: the variance of NOISE · U(0, 1) is NOISE² / 12 (its mean,
# NOISE / 2, is just an offset the net learns). An MSE within a few times this is a good fit.
NOISE_FLOOR = NOISE**2 / 12
# Far above the floor (more than this many times it) the seed did not just learn slowly: it got stuck.
STUCK_FACTOR = 5


@dataclass
class RegressionResult:
    """What the lesson computed, so tests and other code can check it."""

    seed: int
    points: int
    hidden: int
    lr: float
    steps: int
    losses: list[float]  # The training loss at every step, before that step's update (as the tutorial drew).
    final_mse: float  # MSE of the trained net on the data, after the last update.
    noise_floor: float  # NOISE² / 12 ≈ 0.0033: the best any curve can do on this noise.
    dead_at_start: int  # Hidden ReLUs that output 0 for every x before training.
    dead_at_end: int  # ... and after training.
    dead_per_step: list[int]  # ... after each step: a ReLU that dies stays dead, so this never goes down.
    stuck: bool  # final_mse > STUCK_FACTOR × noise_floor (or not a number at all).
    figures: list[Path] = field(default_factory=list)  # regression.png and regression.gif, when written.


class Net(torch.nn.Module):
    """The tutorial's network: one hidden layer of ReLUs and a linear output."""

    def __init__(self, n_feature: int, n_hidden: int, n_output: int) -> None:
        super().__init__()
        self.hidden = torch.nn.Linear(n_feature, n_hidden)
        self.predict = torch.nn.Linear(n_hidden, n_output)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.hidden(x))  # The tutorial's F.relu; torch.relu is the same function.
        return self.predict(x)


def make_data(points: int) -> tuple[torch.Tensor, torch.Tensor]:
    """x: `points` evenly spaced in [-1, 1], shape (points, 1); y = x² plus uniform noise.

    The noise comes from torch's global generator, so seed it first for the same points every run.
    """
    # Linear layers want a batch of rows, so the 1-D linspace becomes a column: shape (points,) → (points, 1).
    x = torch.unsqueeze(torch.linspace(-1, 1, points), dim=1)
    y = x.pow(2) + NOISE * torch.rand(x.size())
    return x, y


def dead_relus(net: Net, x: torch.Tensor) -> int:
    """How many hidden ReLUs output 0 for every x — they get no gradient, so SGD can never revive them."""
    with torch.no_grad():
        activations = torch.relu(net.hidden(x))
    return int((activations.max(dim=0).values == 0).sum())


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
) -> RegressionResult:
    """Train the net, print how it went, draw into `out` (nothing when None) and return the numbers."""
    console = console or report.make_console()
    lr = report.check_training(seed=seed, steps=steps, points=points, hidden=hidden, lr=lr)

    # --- 1. Data and network ---------------------------------------------------------------------------
    # One seed fixes both the noise in the data and the network's random initial weights, so a run is
    # the same every time. (The tutorial's torch.manual_seed(1) did the same.)
    torch.manual_seed(seed)
    x, y = make_data(points)
    net = Net(n_feature=1, n_hidden=hidden, n_output=1)
    optimizer = torch.optim.SGD(net.parameters(), lr=lr)
    loss_func = torch.nn.MSELoss()  # Mean squared error: the usual loss for regression.
    dead_at_start = dead_relus(net, x)

    # --- 2. The drawing, if any ------------------------------------------------------------------------
    drawing = out is not None or show
    if drawing:
        fig = report.new_figure(show, figsize=(6.4, 4.8))
        plot = FitPlot(fig, x, y)
        movie = report.Movie(fig, show)
        every = report.frame_every(steps)

    # --- 3. Training -----------------------------------------------------------------------------------
    losses: list[float] = []
    dead_per_step: list[int] = []
    for step in range(steps):
        prediction = net(x)  # Forward: the net's guess for every x.
        loss = loss_func(prediction, y)  # How far off, on average, squared.

        optimizer.zero_grad()  # Gradients add up across backward() calls, so clear last step's first.
        loss.backward()  # Backpropagation: d(loss)/d(weight) for every weight.
        optimizer.step()  # Move every weight a little against its gradient.

        # The tutorial read loss.data[0]; since PyTorch 0.4 (2018) a one-number tensor gives it with .item().
        losses.append(loss.item())
        dead_per_step.append(dead_relus(net, x))  # Kept to explain a stuck run afterwards.
        if drawing and step % every == 0:
            plot.update(prediction.detach(), loss.item(), f"step {step}/{steps}")
            movie.frame()

    with torch.no_grad():
        final_mse = loss_func(net(x), y).item()
        final_prediction = net(x)
    dead_at_end = dead_relus(net, x)
    # A NaN loss (a learning rate so large the weights blew up) counts as stuck too.
    stuck = not final_mse <= STUCK_FACTOR * NOISE_FLOOR

    # --- 4. What happened ------------------------------------------------------------------------------
    console.print(
        Text(
            f"seed {seed}: {points} points, net 1→{hidden}→1, SGD lr {lr:g}, {steps} steps\n"
            f"loss at step 0: {losses[0]:.4f}   final MSE: {final_mse:.4f}   "
            f"noise floor: {NOISE_FLOOR:.4f} ({final_mse / NOISE_FLOOR:.1f}× the floor)\n"
            f"dead ReLUs (output 0 for every x): {dead_at_start} of {hidden} at the start, "
            f"{dead_at_end} of {hidden} at the end"
        )
    )
    if not math.isfinite(final_mse):
        console.print(
            Text(
                f"Training diverged: the loss became {final_mse}. Each step of lr {lr:g} overshot by more "
                "than it corrected until the weights overflowed; try a smaller --lr such as 0.5 or 0.2."
            )
        )
    elif stuck and dead_at_end >= max(1, hidden // 2):
        # Most ReLUs dead: the usual way lr 0.5 strands a seed. Say when they died.
        died_by = dead_per_step.index(dead_at_end) + 1
        console.print(
            Text(
                f"This seed got stuck: the final MSE is {final_mse / NOISE_FLOOR:.0f}× the noise floor. "
                f"{dead_at_end} of the {hidden} hidden ReLUs are dead — their input is negative for every x, "
                "so they output 0, get zero gradient, and no number of further steps can revive them. "
                f"{dead_at_end - dead_at_start} of them died during training (the last at step {died_by}): "
                f"one large step (lr {lr:g}) can push a unit's weights to where its input is negative for "
                "all x, and from there it never comes back. "
                + _what_is_left(hidden - dead_at_end)
                + " Try --lr 0.2 --steps 200, or another --seed."
            )
        )
    elif stuck:
        # Most ReLUs alive: not death but a slow stretch (too few steps, or a plateau).
        recent = losses[max(0, len(losses) - 11)]
        console.print(
            Text(
                f"This run is still far from the noise floor ({final_mse / NOISE_FLOOR:.0f}× it), but most "
                f"ReLUs are alive, so it is slow rather than dead: over the last 10 steps the loss went from "
                f"{recent:.4f} to {losses[-1]:.4f}. "
                + (
                    "It is still falling; more --steps should get there."
                    if losses[-1] < 0.95 * recent
                    else "It has nearly stopped falling: a plateau. Try more --steps, another --lr or --seed."
                )
            )
        )
    elif final_mse > 2 * NOISE_FLOOR:
        console.print(
            Text("A fair fit, still a little above the noise floor: more --steps would close the gap.")
        )
    else:
        console.print(Text("The fit has reached the noise floor: what is left is the random noise itself."))

    result = RegressionResult(
        seed=seed,
        points=points,
        hidden=hidden,
        lr=lr,
        steps=steps,
        losses=losses,
        final_mse=final_mse,
        noise_floor=NOISE_FLOOR,
        dead_at_start=dead_at_start,
        dead_at_end=dead_at_end,
        dead_per_step=dead_per_step,
        stuck=stuck,
    )

    # --- 5. The final frame: the trained fit -----------------------------------------------------------
    if drawing:
        label = f"step {steps}/{steps}" + (f" · stuck: {dead_at_end}/{hidden} ReLUs dead" if stuck else "")
        plot.update(final_prediction, final_mse, label)
        movie.frame()
        if show:
            report.hold_window(fig)
        else:
            result.figures.append(report.save_png(fig, out / "regression.png"))
            result.figures.append(movie.save(out / "regression.gif"))
    return result


def _what_is_left(live: int) -> str:
    """Say in words what shapes a net with `live` working ReLUs can still draw."""
    if live == 0:
        return "With none left the net outputs the same number for every x: a flat line."
    if live == 1:
        return "With one left the net can bend its line only once: a hockey stick, not a parabola."
    return f"With only {live} left the net has too few bends to follow the parabola."


class FitPlot:
    """The tutorial's figure: blue scatter of the data, the net's current fit as a thick red line, the loss.

    The tutorial cleared and redrew the whole plot each frame (plt.cla()); building the axes once and only
    moving the line and rewriting the texts looks the same and is several times faster.
    """

    def __init__(self, fig: Figure, x: torch.Tensor, y: torch.Tensor) -> None:
        ax = fig.add_subplot(1, 1, 1)
        ax.scatter(x.numpy(), y.numpy(), s=16)
        (self.line,) = ax.plot(x.numpy(), torch.zeros_like(x).numpy(), "r-", lw=5)
        # Fixed limits keep the frames of the animation from jumping around.
        ax.set_xlim(-1.1, 1.1)
        ax.set_ylim(y.min().item() - 0.3, y.max().item() + 0.25)
        # The tutorial wrote the loss at data point (0.5, 0); axes coordinates keep it inside the frame.
        self.loss_text = ax.text(
            0.97, 0.06, "", transform=ax.transAxes, ha="right", fontdict={"size": 20, "color": "red"}
        )
        self.title = ax.set_title(" ", fontsize=11)
        fig.tight_layout()

    def update(self, prediction: torch.Tensor, loss: float, label: str) -> None:
        self.line.set_ydata(prediction.numpy())
        self.loss_text.set_text(f"Loss={loss:.4f}")
        self.title.set_text(f"y = x² + noise · {label}")
