"""How a lesson shows its work: checked arguments, figures, animated GIFs and the `index.html` page.

The lessons themselves stay short because everything about *where* pictures go lives here:

* Headless (the default) a lesson draws on a plain `matplotlib.figure.Figure` rendered by the Agg backend,
  so nothing touches pyplot's global state or needs a display, and the PNGs and GIFs are written atomically
  (temp file beside the target, then `os.replace`) through `digitlab.fileio.atomic_write`.
* With `--show` the same drawing code runs on a pyplot figure in a live window, the way the tutorial's
  `plt.ion()` / `plt.pause(0.1)` loop did, and no files are written.
* `write_index` turns the printed text and the figures of several lessons into one self-contained page.
"""

from __future__ import annotations

import functools
import html
import math
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ParamSpec, TypeVar

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image
from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from digitlab.errors import DigitlabError
from digitlab.fileio import atomic_write, atomic_write_text

# Stills are saved sharp enough for a README; animation frames are rendered smaller so a GIF of ~20
# frames stays around a hundred kilobytes.
PNG_DPI = 100
GIF_DPI = 70
# The tutorial paused 0.1 s between frames; the last frame is held so the result can be read.
FRAME_MS = 100
LAST_FRAME_MS = 2000
# About this many frames per animation, whatever --steps is (the tutorial drew every 5th of 100 steps).
TARGET_FRAMES = 20

# Backends that draw into files only; if pyplot resolves to one of these, --show cannot open a window.
_FILE_ONLY_BACKENDS = {"agg", "cairo", "pdf", "pgf", "ps", "svg", "template"}


# ---------------------------------------------------------------------------------------------------------
# Speed: tiny networks train fastest on one thread.
# ---------------------------------------------------------------------------------------------------------

_P = ParamSpec("_P")
_R = TypeVar("_R")


def single_threaded(fn: Callable[_P, _R]) -> Callable[_P, _R]:
    """Run `fn` with torch on one CPU thread, then restore the previous thread count.

    The lessons' networks are tiny (a few hundred numbers per step), so splitting each step across threads
    costs more in synchronisation than it saves; on a busy two-core machine it made training ~8× slower.
    """

    @functools.wraps(fn)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        previous = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return fn(*args, **kwargs)
        finally:
            torch.set_num_threads(previous)

    return wrapper


# ---------------------------------------------------------------------------------------------------------
# Checking the numbers a learner passes on the command line.
# ---------------------------------------------------------------------------------------------------------


def check_int(option: str, value: int, low: int, high: int) -> int:
    """Return `value` if `low <= value <= high`, else raise a DigitlabError naming the option."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise DigitlabError(f"{option} must be a whole number, got {value!r}")
    if not low <= value <= high:
        raise DigitlabError(f"{option} must be between {low} and {high}, got {value}")
    return value


def check_lr(value: float) -> float:
    """Return a usable learning rate: finite, positive and not absurdly large."""
    value = float(value)
    if not math.isfinite(value) or value <= 0 or value > 100:
        raise DigitlabError(f"--lr must be a positive number up to 100, got {value}")
    return value


def check_training(*, seed: int, steps: int, points: int, hidden: int, lr: float) -> float:
    """Check the settings of a lesson that trains a net; returns the learning rate as a float."""
    check_int("--seed", seed, 0, 2**63 - 1)
    check_int("--steps", steps, 1, 100_000)
    check_int("--points", points, 2, 100_000)
    check_int("--hidden", hidden, 1, 4096)
    return check_lr(lr)


def frame_every(steps: int) -> int:
    """How many training steps lie between two animation frames (5 for the tutorial's 100 steps)."""
    return max(1, math.ceil(steps / TARGET_FRAMES))


def make_console(record: bool = False) -> Console:
    """A rich console for lesson output: the terminal's width, or 100 columns when output is redirected.

    Rich falls back to 80 columns off a terminal, which wraps the NumPy-vs-torch rows mid-array.
    """
    console = Console(record=record)
    if not console.is_terminal:
        console.width = 100
    return console


class TrainingLog:
    """A progress bar under the lines a training loop prints, which leaves only the lines behind.

    Rich records every refresh of a live display, so on a terminal a plain progress bar would land in the
    index page as dozens of half-drawn bars. Here the lines and the bar are one transient display while the
    console's recording is paused; when training ends the display vanishes and the same lines are printed
    once more, for good and for the record. Off a terminal there is no bar: each line is printed as it comes.

        with report.TrainingLog(console, total=steps) as log:
            for step in ...:
                log.advance()
                log.print(f"step {step} | loss ...")
    """

    def __init__(self, console: Console, total: int, label: str = "training") -> None:
        self.console = console
        self.lines: list[Text] = []
        self.bar = Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        self.task = self.bar.add_task(label, total=total)
        self.live: Live | None = None
        self.recording = console.record

    def __enter__(self) -> TrainingLog:
        if self.console.is_terminal:
            self.console.record = False
            self.live = Live(console=self.console, transient=True, refresh_per_second=8)
            self.live.update(Group(*self.lines, self.bar))
            self.live.start()
        return self

    def print(self, line: str) -> None:
        text = Text(line)
        if self.live is None:
            self.console.print(text)
            return
        self.lines.append(text)
        self.live.update(Group(*self.lines, self.bar))

    def advance(self) -> None:
        self.bar.advance(self.task)

    def __exit__(self, *exc: object) -> None:
        if self.live is None:
            return
        self.live.stop()
        self.console.record = self.recording
        for line in self.lines:
            self.console.print(line)


# ---------------------------------------------------------------------------------------------------------
# Figures: headless Agg by default, a live pyplot window with --show.
# ---------------------------------------------------------------------------------------------------------


def require_display() -> None:
    """Raise a DigitlabError unless a live matplotlib window can be opened here."""
    has_display = os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    if sys.platform.startswith("linux") and not has_display:
        raise DigitlabError(
            "--show needs a display, but neither DISPLAY nor WAYLAND_DISPLAY is set; "
            "run without --show to write PNG and GIF files instead"
        )
    import matplotlib.pyplot as plt

    backend = plt.get_backend().lower()
    if backend in _FILE_ONLY_BACKENDS:
        raise DigitlabError(
            f"--show needs an interactive matplotlib backend, but matplotlib is using {backend!r} "
            "(install tkinter or a Qt binding, or unset MPLBACKEND); run without --show to write files"
        )


def new_figure(show: bool, figsize: tuple[float, float]) -> Figure:
    """A figure to draw on: a pyplot window when `show`, otherwise an off-screen Agg figure."""
    if show:
        import matplotlib.pyplot as plt

        require_display()
        fig = plt.figure(figsize=figsize)
        plt.ion()  # Like the tutorial: draw without blocking so the training loop keeps running.
        return fig
    fig = Figure(figsize=figsize, dpi=GIF_DPI)
    FigureCanvasAgg(fig)  # Attaching the canvas is what lets us render frames without pyplot.
    return fig


def save_png(fig: Figure, path: Path) -> Path:
    """Write `fig` to `path` as a PNG, atomically."""
    with atomic_write(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=PNG_DPI)
    return path


def hold_window(*figs: Figure) -> None:
    """With --show: leave the finished figures open until the learner closes them."""
    import matplotlib.pyplot as plt

    plt.ioff()
    plt.show(block=True)
    for fig in figs:
        plt.close(fig)


class Movie:
    """Collects the frames of a learning animation.

    Headless, each `frame()` renders the figure into a palette image and `save()` writes them all as one
    looping GIF. With `show`, each `frame()` instead refreshes the live window and pauses briefly, which is
    exactly what the tutorial's `plt.pause(0.1)` did.
    """

    def __init__(self, fig: Figure, show: bool, frame_ms: int = FRAME_MS, colors: int = 64) -> None:
        self.fig = fig
        self.show = show
        self.frame_ms = frame_ms
        self.colors = colors
        self.frames: list[Image.Image] = []

    def frame(self) -> None:
        if self.show:
            import matplotlib.pyplot as plt

            plt.pause(self.frame_ms / 1000)
            return
        canvas = self.fig.canvas
        canvas.draw()
        rgb = Image.fromarray(np.asarray(canvas.buffer_rgba())).convert("RGB")
        # A 64-colour adaptive palette is plenty for flat plots and keeps the file small.
        self.frames.append(rgb.quantize(colors=self.colors, method=Image.Quantize.MEDIANCUT))

    def save(self, path: Path) -> Path:
        if not self.frames:
            raise ValueError("no frames were recorded")
        durations = [self.frame_ms] * (len(self.frames) - 1) + [LAST_FRAME_MS]
        with atomic_write(path, "wb") as fh:
            self.frames[0].save(
                fh,
                format="GIF",
                save_all=True,
                append_images=self.frames[1:],
                duration=durations,
                loop=0,
                optimize=True,
            )
        return path


# ---------------------------------------------------------------------------------------------------------
# The index page of `digitlab lesson all`.
# ---------------------------------------------------------------------------------------------------------


@dataclass
class Section:
    """One lesson as it appears on the index page."""

    name: str
    title: str
    intro: str
    text: str
    figures: list[Path] = field(default_factory=list)


_CSS = """
body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem;
       line-height: 1.5; color: #222; }
pre { background: #f6f8fa; border: 1px solid #ddd; border-radius: 6px; padding: 0.8rem; overflow-x: auto;
      font-size: 0.85rem; line-height: 1.3; }
figure { margin: 1rem 0; }
figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 0.85rem; color: #666; }
nav a { margin-right: 1rem; }
"""


def docstring_html(doc: str) -> str:
    """Render a lesson's docstring (paragraphs, `* ` bullets, `code`, `::` blocks) as a little HTML."""

    def inline(text: str) -> str:
        pieces = html.escape(" ".join(text.split())).split("`")
        # Odd pieces were between backticks.
        return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(pieces))

    out: list[str] = []
    literal_next = False
    for block in (b for b in doc.strip("\n").split("\n\n") if b.strip()):
        lines = [line.strip() for line in block.strip("\n").splitlines()]
        if literal_next:
            out.append("<pre>" + html.escape("\n".join(lines)) + "</pre>")
            literal_next = False
            continue
        if lines[0].startswith("* "):
            items: list[str] = []
            for line in lines:
                if line.startswith("* "):
                    items.append(line[2:])
                else:
                    items[-1] += " " + line
            out.append("<ul>" + "".join(f"<li>{inline(item)}</li>" for item in items) + "</ul>")
            continue
        text = " ".join(lines)
        if text.endswith("::"):
            literal_next = True
            text = text[:-1]
        out.append(f"<p>{inline(text)}</p>")
    return "\n".join(out)


def write_index(out: Path, sections: Sequence[Section]) -> Path:
    """Write `out/index.html`: every lesson's printed output and figures, in order, with relative links."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        '<head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>digitlab — the PyTorch tutorial's six lessons</title>",
        f"<style>{_CSS}</style></head>",
        "<body>",
        "<h1>The PyTorch tutorial's six lessons</h1>",
        "<p>After Morvan's PyTorch tutorial (scripts 201–401), rewritten for today's PyTorch. "
        "Each section shows what the lesson printed and the figures it drew.</p>",
        "<nav>"
        + "".join(f'<a href="#{html.escape(s.name)}">{html.escape(s.title)}</a>' for s in sections)
        + "</nav>",
    ]
    for section in sections:
        parts.append(f'<section id="{html.escape(section.name)}">')
        parts.append(f"<h2>{html.escape(section.title)}</h2>")
        parts.append(docstring_html(section.intro))
        parts.append("<p><strong>What it printed:</strong></p>")
        parts.append(f"<pre>{html.escape(section.text.rstrip())}</pre>")
        for figure in section.figures:
            # Links are relative to the page, so the output folder can be moved or zipped as a whole.
            rel = os.path.relpath(figure, out).replace(os.sep, "/")
            name = html.escape(rel, quote=True)
            parts.append(
                f'<figure><img src="{name}" alt="{html.escape(section.title)}: {name}" loading="lazy">'
                f"<figcaption>{name}</figcaption></figure>"
            )
        parts.append("</section>")
    parts.append("</body></html>")
    path = out / "index.html"
    atomic_write_text(path, "\n".join(parts) + "\n")
    return path
