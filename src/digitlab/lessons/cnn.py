"""Lesson 6 — the tutorial's CNN, opened up (after Morvan's 401_CNN.py).

What it shows:

* The network: conv 1→16 (5×5) → ReLU → 2×2 max-pool → conv 16→32 (5×5) → ReLU → 2×2 max-pool → linear
  1568→10, and its parameters layer by layer: 416 + 12,832 + 15,690 = 28,938.
* Training it live, briefly: 400 steps of Adam (lr 0.001) on batches of 50 MNIST training digits, with the
  loss and the accuracy on 2,000 test digits printed every 50 steps, as the tutorial did. With `--model`
  (`tutorial`, or the folder of a `digitlab train` run) it opens up a trained model instead and skips training.
* `filters.png`: the 16 5×5 filters of the first layer — what it learned to look for.
* `feature_maps.png`: one test digit inside the net, 16 maps after the first convolution and pooling, 32
  after the second, and what pooling does when the digit moves by a pixel.
* `embedding.gif`: the 1,568 numbers the last layer reads, for 2,000 test digits, projected to 2-D (PCA) and
  coloured by label, one frame every 50 steps; the last frame is also `embedding.png`. The tutorial drew the
  same with t-SNE. The clusters pulling apart is the network learning.
* `mistakes.png` and `confusion.png`: the test digits it misreads, with its two most likely answers, and
  which digits it takes for which.

Run it with::

    digitlab lesson cnn
    digitlab lesson cnn --steps 200 --seed 1
    digitlab lesson cnn --model tutorial
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from rich.console import Console
from rich.table import Table
from rich.text import Text
from torch import nn

from digitlab import data as datasets
from digitlab.errors import DigitlabError
from digitlab.evaluate import confusion_matrix
from digitlab.lessons import report
from digitlab.lessons.cnn_figures import (
    FIGSIZES,
    EmbeddingPlot,
    draw_confusion,
    draw_feature_maps,
    draw_filters,
    draw_mistakes,
    panel_count,
    pca_2d,
    separation,
)
from digitlab.models import build, count_parameters, load_model

TITLE = "Lesson 6 · the CNN — filters, feature maps, its map of digits, its mistakes"

# The tutorial's numbers: Adam at lr 0.001, batches of 50, a print every 50 steps, 2,000 test digits
# to watch. It trained a whole epoch (1,200 steps); 400 steps already reach ~97% and keep the lesson short.
STEPS = 400
BATCH_SIZE = 50
LR = 0.001
EVERY = 50
WATCHED = 2000  # The first 2,000 test digits, as in the tutorial.
GALLERY = 32  # The most confident mistakes shown in mistakes.png.
DIGIT = 0  # The test digit shown inside the net (a 7).
LAYERS = ("conv1", "conv2", "out")


@dataclass
class Checkpoint:
    """One look at the watched test digits during training (and one frame of embedding.gif)."""

    step: int  # Updates made so far; 0 is the untrained net.
    train_loss: float | None  # Mean training loss over the steps since the last checkpoint (None at 0).
    test_loss: float  # Cross-entropy on the watched test digits.
    test_accuracy: float  # ... and the fraction of them read correctly.
    separation: float  # Share of the 2-D map's spread that lies between the digit clusters (0..1).


class Mistake(NamedTuple):
    """A misread test digit and the net's two most likely answers."""

    index: int  # In the test set.
    true: int
    read: int
    p_read: float
    second: int
    p_second: float


@dataclass
class CnnResult:
    """What the lesson computed, so tests and other code can check it."""

    seed: int
    steps: int  # 0 when a trained model was loaded.
    lr: float
    model: str | None  # The --model that was loaded, or None when the lesson trained its own.
    parameters: dict[str, int]  # Per layer: conv1 416, conv2 12,832, out 15,690.
    total_parameters: int  # Every parameter of the network: 28,938.
    losses: list[float]  # The training loss at every step.
    checkpoints: list[Checkpoint]  # At 0, every EVERY steps and the last step; just one when a model was loaded.
    embedding: np.ndarray  # The last frame: (watched, 2) PCA coordinates of the watched test digits.
    filter_change: float | None  # How far training moved conv1's weights, relative to their random start.
    shift_change: tuple[float, float, float]  # How much a 1-pixel shift changes the conv1, pool1, pool2 maps.
    accuracy: float  # On the whole test set.
    confusion: list[list[int]]  # counts[true][read] on the whole test set.
    mistakes: list[Mistake]  # Every misread test digit, the most confident first.
    most_confused: tuple[int, int]  # The two digits most often taken for each other, both ways (a < b).
    panels: dict[str, int] = field(default_factory=dict)  # Image panels in each PNG written.
    figures: list[Path] = field(default_factory=list)


def checkpoint_steps(steps: int, every: int) -> list[int]:
    """The steps after which the lesson looks at the test digits: 0 (untrained), every `every`th, the last."""
    return sorted({*range(0, steps, every), steps})


def to_input(images: torch.Tensor) -> torch.Tensor:
    """uint8 digits (N, 28, 28) → the float (N, 1, 28, 28) in [0, 1] the model takes, channels-last.

    Channels-last memory lets the CPU convolutions vectorise over the channels: ~1.5× faster here.
    """
    return (images.unsqueeze(1).float() / 255).contiguous(memory_format=torch.channels_last)


def last_layer_input(net: nn.Module, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The 1568 numbers the last layer reads for each digit, and its 10 scores: the model's forward, split.

    Batches of 100 keep each layer's output in the CPU cache (2.5× faster than all 2,000 at once).
    """
    features, logits = [], []
    with torch.no_grad():
        for batch in images.split(100):
            h = net.conv2(net.conv1(net.norm(to_input(batch)))).flatten(1)
            features.append(h)
            logits.append(net.out(h))
    return torch.cat(features), torch.cat(logits)


def load_digits(data: str | os.PathLike | None, need_train: bool) -> tuple[datasets.Digits | None, datasets.Digits]:
    """(train, test) digits from `data` (default: the shipped MNIST); test is carved from train if absent."""
    test = datasets.load(data, "test")
    train = datasets.load(data, "train") if need_train or test is None else None
    if test is None:
        # A Kaggle train.csv or a plain image folder has one labelled split: hold out a sixth of it for testing.
        train_index, test_index = datasets.split_validation(len(train), len(train) // 6, seed=0)
        train, test = train.subset(train_index), train.subset(test_index)
    for digits in (train, test):
        if digits is not None and (digits.labels is None or len(digits) < 10):
            raise DigitlabError(f"{digits.source}: the cnn lesson needs at least 10 labelled digits per split")
    return train, test


@report.single_threaded
def lesson(
    *,
    seed: int = 0,
    steps: int | None = None,
    lr: float = LR,
    every: int | None = None,
    model: str | os.PathLike | None = None,
    data: str | os.PathLike | None = None,
    test_digits: int | None = None,
    out: Path | None = None,
    show: bool = False,
    console: Console | None = None,
) -> CnnResult:
    """Train (or load) the CNN, print what it shows, draw into `out` (nothing when None), return the numbers.

    `test_digits` keeps only the first N test digits (all by default), so that tests run in seconds.
    """
    console = console or report.make_console()
    # Read at call time, so a test can shorten the whole `lesson all` by setting cnn.STEPS and cnn.EVERY.
    steps = STEPS if steps is None else steps
    every = EVERY if every is None else every
    report.check_int("--seed", seed, 0, 2**63 - 1)
    report.check_int("--steps", steps, 1, 100_000)
    report.check_int("every", every, 1, 100_000)
    lr = report.check_lr(lr)

    def say(text: str) -> None:
        console.print(Text(text), end="\n\n")

    # --- 1. The network, layer by layer ----------------------------------------------------------------
    torch.manual_seed(seed)  # Fixes the initial weights; the batches have their own seeded generator below.
    net, meta = (build("tutorial"), {"arch": "tutorial"}) if model is None else load_model(model)
    if meta["arch"] != "tutorial":
        raise DigitlabError(f"--model {model} is a '{meta['arch']}' model; this lesson opens up the tutorial CNN")
    net = net.to(memory_format=torch.channels_last)
    start = net.conv1[0].weight.detach().clone()
    with torch.no_grad():  # One blank digit through the net, to read off each layer's output shape.
        h1 = net.conv1(net.norm(torch.zeros(1, 1, 28, 28)))
        h2 = net.conv2(h1)
        shapes = [h1, h2, net.out(h2.flatten(1))]
    parameters = {name: count_parameters(getattr(net, name)) for name in LAYERS}
    table = Table(title=Text("the tutorial's CNN, layer by layer"), title_justify="left")
    for column in ("layer", "does", "output", "weights + biases", "parameters"):
        table.add_column(column, justify="right" if column == "parameters" else "left")
    does = ("filters → ReLU → 2×2 max-pool", "filters → ReLU → 2×2 max-pool", "linear: one score per digit")
    for name, what, output in zip(LAYERS, does, shapes, strict=True):
        weight, bias = getattr(net, name).parameters()
        table.add_row(
            name, f"{weight.shape[0]} {what}" if name != "out" else what, "×".join(map(str, output.shape[1:])),
            "·".join(map(str, weight.shape)) + f" + {bias.numel()}", f"{parameters[name]:,}",
        )
    console.print(table)
    total = count_parameters(net)
    say(
        f"parameters: {' + '.join(f'{n:,}' for n in parameters.values())} = {sum(parameters.values()):,} "
        f"(counted on the whole model: {total:,}). {parameters['out'] / total:.0%} of them sit in the "
        f"last layer, which reads {net.out.in_features:,} numbers per digit."
    )

    # --- 2. The digits: training batches, the test digits watched while it learns, the whole test set --
    train, test = load_digits(data, need_train=model is None)
    if test_digits is not None:
        test = test.subset(torch.arange(min(report.check_int("test_digits", test_digits, 10, 10**9), len(test))))
    watched = test.subset(torch.arange(min(WATCHED, len(test))))
    watched_labels = watched.labels.numpy()
    drawing = out is not None or show
    if drawing:  # Few frames, so each stays half a second; ten digit colours need more than 64 in the palette.
        embedding_fig = report.new_figure(show, figsize=(6.4, 5.6))
        plot = EmbeddingPlot(embedding_fig, watched_labels)
        movie = report.Movie(embedding_fig, show, frame_ms=500, colors=128)
    checkpoints: list[Checkpoint] = []
    xy: np.ndarray | None = None

    def look(step: int, train_loss: float | None) -> Checkpoint:
        """Read the watched digits with the net as it is now and draw a frame of its map of digits."""
        nonlocal xy
        features, logits = last_layer_input(net, watched.images)
        xy = pca_2d(features, xy)
        point = Checkpoint(
            step=step,
            train_loss=train_loss,
            test_loss=F.cross_entropy(logits, watched.labels).item(),
            test_accuracy=(logits.argmax(1) == watched.labels).float().mean().item(),
            separation=separation(xy, watched_labels),
        )
        checkpoints.append(point)
        if drawing:
            when = f"step {step}/{steps}" if model is None else f"--model {model}"
            plot.update(xy, f"{when} · accuracy {point.test_accuracy:.1%} on these {len(xy):,} test digits")
            movie.frame()
        return point

    # --- 3. Training, live -----------------------------------------------------------------------------
    losses: list[float] = []
    if model is None:
        console.print(Text(
            f"Training for {steps} steps of Adam (lr {lr:g}) on batches of {BATCH_SIZE}; every {every} steps the "
            f"net reads the first {len(watched):,} test digits, which it never trains on. 'clusters' is how much "
            "of the spread in its map of digits (embedding.gif) lies between the digits."
        ))
        optimizer = torch.optim.Adam(net.parameters(), lr=lr)
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))
        wanted = set(checkpoint_steps(steps, every))
        with report.TrainingLog(console, total=steps) as log:
            for step in range(steps + 1):
                if step > 0:
                    # A fresh pass over the shuffled training set whenever the last one runs out.
                    index = order[torch.arange((step - 1) * BATCH_SIZE, step * BATCH_SIZE) % len(train)]
                    loss = F.cross_entropy(net(to_input(train.images[index])), train.labels[index])
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
                    losses.append(loss.item())
                    log.advance()
                if step in wanted:
                    since = checkpoints[-1].step if checkpoints else 0
                    point = look(step, float(np.mean(losses[since:])) if step else None)
                    train_loss = "     —" if point.train_loss is None else f"{point.train_loss:.4f}"
                    log.print(
                        f"step {step:4d} | train loss: {train_loss} | test loss: {point.test_loss:.4f} | "
                        f"test accuracy: {point.test_accuracy:.2f} | clusters: {point.separation:.0%}"
                    )
        net.eval()
        console.print()
    else:
        point = look(0, None)
        say(
            f"Loaded --model {model}: a trained tutorial CNN, so nothing is trained here. On the first "
            f"{len(watched):,} test digits: loss {point.test_loss:.4f}, accuracy {point.test_accuracy:.2%}."
        )

    # --- 4. What the first layer learned: its 16 filters -----------------------------------------------
    weight = net.conv1[0].weight.detach()
    filter_change = float((weight - start).norm() / start.norm()) if model is None else None
    say(
        f"filters.png — the {len(weight)} filters of conv1. Each is 25 weights laid over every 5×5 patch of the "
        "digit; red weights add the ink under them and blue ones subtract it, so a filter red on one side and "
        f"blue on the other answers to an edge. The weights span {weight.min():+.2f} to {weight.max():+.2f}"
        + (f"; training moved them {filter_change:.0%} away from their random start." if model is None else ".")
    )

    # --- 5. One digit inside the net: conv1 → pool → conv2 → pool --------------------------------------
    digit = test.images[DIGIT : DIGIT + 1]
    moved = torch.roll(digit, shifts=1, dims=2)  # The same digit one pixel to the right (MNIST has black edges).
    (conv_a, relu_a, pool_a), (conv_b, relu_b, pool_b) = net.conv1, net.conv2
    with torch.no_grad():
        maps1 = [relu_a(conv_a(net.norm(to_input(d)))) for d in (digit, moved)]  # 16×28×28
        pooled1 = [pool_a(m) for m in maps1]  # 16×14×14
        maps2 = [relu_b(conv_b(p)) for p in pooled1]  # 32×14×14
        pooled2 = [pool_b(m) for m in maps2]  # 32×7×7
    shift_change = tuple(float((b - a).norm() / a.norm()) for a, b in (maps1, pooled1, pooled2))
    label = int(test.labels[DIGIT])
    say(
        f"feature_maps.png — test digit {DIGIT} (a {label}) inside the net: 16 maps of 28×28 after conv1, 16 of "
        "14×14 after pooling, 32 of 7×7 after conv2 and pooling. Max-pooling keeps the largest of each 2×2 "
        f"block, so it quarters the numbers ({_size(maps1[0])} → {pooled1[0].numel():,}, and {_size(maps2[0])} → "
        f"{pooled2[0].numel():,}) and forgives small moves: shift the digit one pixel right and the conv1 maps "
        f"change by {shift_change[0]:.0%}, by {shift_change[1]:.0%} after the first pool and "
        f"{shift_change[2]:.0%} after the second."
    )

    # --- 6. Its map of digits -----------------------------------------------------------------------------
    first, last = checkpoints[0], checkpoints[-1]
    present = np.unique(watched_labels)
    centres = np.stack([np.median(xy[watched_labels == d], axis=0) for d in present])
    gaps = np.linalg.norm(centres[:, None] - centres[None], axis=2) + np.diag(np.full(len(present), np.inf))
    near = sorted(int(present[i]) for i in np.unravel_index(gaps.argmin(), gaps.shape))  # The closest two.
    story = (
        "There is one frame per line above. Even untrained, the random filters pass on what the pixels show "
        f"(a 1 has little ink), so at step 0 the clusters already hold {first.separation:.0%} of the spread; "
        f"training pulls them apart to {last.separation:.0%} by step {last.step}. "
        if model is None
        else f"Here {last.separation:.0%} of the spread lies between the digit clusters. (A loaded model has no "
        "training to animate, so there is no embedding.gif.) "
    )
    say(
        f"embedding.{'gif' if model is None else 'png'} — the {net.out.in_features:,} numbers the last layer "
        f"reads, for {len(watched):,} test digits, flattened to 2-D by PCA (the two directions they spread most "
        f"in) and coloured by label. {story}Two directions cannot keep ten digits apart, so some still overlap "
        f"in the picture ({near[0]} and {near[1]} sit closest); the last layer sees all "
        f"{net.out.in_features:,} numbers and tells them apart {last.test_accuracy:.0%} of the time."
    )

    # --- 7. The digits it gets wrong --------------------------------------------------------------------
    _, logits = last_layer_input(net, test.images)
    top = logits.softmax(1).topk(2, dim=1)
    counts = confusion_matrix(test.labels, top.indices[:, 0]).numpy()
    wrong = torch.nonzero(top.indices[:, 0] != test.labels).flatten()
    wrong = wrong[top.values[wrong, 0].argsort(descending=True, stable=True)]  # Most confident first.
    answers, chances = top.indices.tolist(), top.values.tolist()
    mistakes = [Mistake(i, int(test.labels[i]), answers[i][0], chances[i][0], answers[i][1], chances[i][1])
                for i in wrong.tolist()]
    accuracy = float(np.trace(counts) / counts.sum())
    both_ways = counts + counts.T
    np.fill_diagonal(both_ways, 0)
    a, b = sorted(int(v) for v in np.unravel_index(both_ways.argmax(), both_ways.shape))
    second_guess = sum(1 for m in mistakes if m.second == m.true)
    say(
        f"mistakes.png, confusion.png — on all {len(test):,} test digits it reads {accuracy:.2%} correctly and "
        f"misreads {len(mistakes)}. "
        + (
            f"The most confused pair is {a} and {b}: {_digits(counts[a, b], a)} read as {b} and "
            f"{_digits(counts[b, a], b)} read as {a}, {both_ways[a, b]} of the {len(mistakes)} mistakes. For "
            f"{second_guess} of the {len(mistakes)} the right answer was its second guess. The gallery shows "
            f"the {min(GALLERY, len(mistakes))} it was surest about; some would fool a person too."
            if mistakes
            else "It reads every one of them correctly."
        )
    )

    result = CnnResult(
        seed=seed,
        steps=steps if model is None else 0,
        lr=lr,
        model=None if model is None else str(model),
        parameters=parameters,
        total_parameters=total,
        losses=losses,
        checkpoints=checkpoints,
        embedding=xy,
        filter_change=filter_change,
        shift_change=shift_change,
        accuracy=accuracy,
        confusion=counts.tolist(),
        mistakes=mistakes,
        most_confused=(a, b),
    )

    # --- 8. The figures ----------------------------------------------------------------------------------
    if not drawing:
        return result
    figures = {name: report.new_figure(show, figsize=size) for name, size in FIGSIZES.items()}
    draw_filters(figures["filters.png"], weight.numpy())
    strongest = int(maps1[0][0].amax(dim=(1, 2)).argmax())  # The conv1 map drawn large, before and after pooling.
    draw_feature_maps(
        figures["feature_maps.png"], digit[0].numpy() / 255, label, maps1[0][0].numpy(), pooled1[0][0].numpy(),
        pooled2[0][0].numpy(), shown=strongest,
    )
    gallery = mistakes[:GALLERY]
    draw_mistakes(
        figures["mistakes.png"], test.images[[m.index for m in gallery]].numpy() / 255, gallery, len(mistakes)
    )
    draw_confusion(figures["confusion.png"], counts)
    result.panels = {name: panel_count(fig) for name, fig in figures.items()}
    figures["embedding.png"] = embedding_fig
    if show:
        report.hold_window(*figures.values())
        return result
    for name, fig in figures.items():
        result.figures.append(report.save_png(fig, out / name))
    if model is None:
        result.figures.append(movie.save(out / "embedding.gif"))
    return result


def _size(maps: torch.Tensor) -> str:
    """'16×28×28 = 12,544' for a batch of one digit's feature maps."""
    return f"{'×'.join(map(str, maps.shape[1:]))} = {maps.numel():,}"


def _digits(count: int, digit: int) -> str:
    """'27 7s', '1 7', 'no 7s'."""
    return f"{count or 'no'} {digit}{'' if count == 1 else 's'}"
