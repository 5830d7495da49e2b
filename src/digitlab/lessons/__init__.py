"""The PyTorch tutorial's six lessons, after Morvan's scripts 201–401, for today's PyTorch.

Each lesson is one short module meant to be read top to bottom:

1. `tensors`        — NumPy ↔ torch, the same maths on both sides, and the torch.dot trap.
2. `autograd`       — requires_grad, the computational graph, backward() and the gradient v/2.
3. `activations`    — relu, sigmoid, tanh, softplus in the tutorial's 2×2 figure; softmax on its own.
4. `regression`     — a 1→10→1 net fits y = x² + noise, drawn as it learns.
5. `classification` — a 2→10→2 net separates two Gaussian clouds, drawn as it learns.
6. `cnn`            — the tutorial's CNN opened up: filters, feature maps, its map of digits, its mistakes.

From the command line::

    digitlab lesson regression --steps 200
    digitlab lesson cnn --model tutorial       # the shipped CNN, opened up without training it
    digitlab lesson all --out lessons-out      # all six, plus lessons-out/index.html

From Python every lesson is a function that returns its numbers and draws nothing unless given `out`::

    from digitlab.lessons import regression
    result = regression.lesson(seed=3)           # RegressionResult(final_mse=..., stuck=..., ...)

This module holds only the glue the command line needs: `add_arguments` and `run`.
"""

from __future__ import annotations

import argparse
import importlib
import os
from pathlib import Path
from types import ModuleType

from rich.console import Console

from digitlab.errors import DigitlabError

__all__ = ["LESSONS", "add_arguments", "lesson_module", "run"]

# The lessons in the tutorial's order; `lesson all` runs them in this order too. The modules are imported
# only when a lesson runs, so building the `digitlab` command line does not pay for matplotlib.
LESSONS: tuple[str, ...] = ("tensors", "autograd", "activations", "regression", "classification", "cnn")


def lesson_module(name: str) -> ModuleType:
    return importlib.import_module(f"digitlab.lessons.{name}")


# Lessons that draw figures, and the overrides each lesson that trains a net takes.
DRAWING = ("activations", "regression", "classification", "cnn")
OVERRIDES = ("steps", "lr", "points", "hidden")
TAKES: dict[str, tuple[str, ...]] = {
    "regression": OVERRIDES,
    "classification": OVERRIDES,
    "cnn": ("steps", "lr"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the `lesson` subcommand's arguments to `parser`."""
    if parser.description is None:
        parser.description = (
            "Run one of the PyTorch tutorial's six lessons (after Morvan's scripts 201-401), or all of "
            "them. Figures are written as PNG and GIF files into --out; 'all' also writes index.html there."
        )
    parser.add_argument(
        "lesson",
        choices=[*LESSONS, "all"],
        metavar="LESSON",
        help=f"one of {', '.join(LESSONS)}, or all",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("lessons-out"),
        metavar="DIR",
        help="folder for the figures and index.html (default: ./lessons-out)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        metavar="N",
        help="seed for the data and the initial weights (default: 0)",
    )
    parser.add_argument(
        "--show",
        action="store_true",
        help="open live matplotlib windows instead of writing files (needs a display)",
    )
    group = parser.add_argument_group(
        "lesson overrides", "for regression, classification and cnn; by default the tutorial's own numbers"
    )
    group.add_argument("--steps", type=int, metavar="N", help="training steps (tutorial: 100; cnn: 400)")
    group.add_argument(
        "--lr",
        type=float,
        metavar="RATE",
        help="learning rate (tutorial: SGD 0.5 regression, 0.02 classification; Adam 0.001 cnn)",
    )
    group.add_argument(
        "--points",
        type=int,
        metavar="N",
        help="data points: regression in all, classification per cloud (tutorial: 100)",
    )
    group.add_argument("--hidden", type=int, metavar="N", help="hidden ReLUs (tutorial: 10)")
    group = parser.add_argument_group("cnn lesson")
    group.add_argument(
        "--model",
        metavar="NAME|DIR",
        help="open up a trained tutorial CNN instead of training one: 'tutorial' (shipped) or a run folder",
    )
    group.add_argument("--data", metavar="PATH", help="MNIST folder, Kaggle CSV or image folder (default: MNIST)")


def run(args: argparse.Namespace) -> int:
    """Run the lesson(s) named in `args`, print them to stdout and return the exit code (0).

    Raises DigitlabError for bad input: an override out of range or for a lesson that takes none, --show
    without a display, or an --out that cannot be used as a folder.
    """
    from digitlab.lessons import report

    name: str = args.lesson
    names = list(LESSONS) if name == "all" else [name]
    out = Path(getattr(args, "out", None) or "lessons-out")
    show = bool(getattr(args, "show", False))
    seed = report.check_int("--seed", getattr(args, "seed", 0), 0, 2**63 - 1)
    overrides = _overrides(args, names)
    cnn_options = _cnn_options(args, names, overrides)

    # Check everything that can fail before the first lesson runs, so a bad option costs no waiting.
    drawing = any(n in DRAWING for n in names)
    if show and drawing:
        report.require_display()
    if not show and drawing:
        _prepare_folder(out)

    console = report.make_console(record=True)
    sections: list[report.Section] = []
    for number, lesson_name in enumerate(names, start=1):
        module = lesson_module(lesson_name)
        console.rule(module.TITLE if len(names) == 1 else f"{module.TITLE}   ({number}/{len(names)})")
        console.export_text(clear=True)  # The rule is for the terminal; the page has its own headings.

        result = _run_lesson(
            lesson_name,
            seed=seed,
            out=None if show else out,
            show=show,
            console=console,
            overrides=overrides,
            cnn_options=cnn_options,
        )
        # Rich pads table rows to the console width; the page does not need the trailing spaces.
        text = "\n".join(line.rstrip() for line in console.export_text(clear=True).splitlines())
        # The page explains each lesson with its module docstring, minus the first line (the title).
        intro = (module.__doc__ or "").split("\n\n", 1)[-1]
        sections.append(report.Section(lesson_name, module.TITLE, intro, text, list(result.figures)))
        for figure in result.figures:
            console.print(f"wrote {figure}", markup=False, highlight=False)
        console.print()
        console.export_text(clear=True)

    if name == "all" and not show:
        index = report.write_index(out, sections)
        console.print(f"wrote {index} — open it in a browser to read the tutorial as one page", markup=False)
    return 0


def _overrides(args: argparse.Namespace, names: list[str]) -> dict[str, object]:
    """The --steps/--lr/--points/--hidden the learner gave, checked; an error if no chosen lesson takes one."""
    from digitlab.lessons import report

    given = {key: getattr(args, key) for key in OVERRIDES if getattr(args, key, None) is not None}
    for key in given:
        if not any(key in TAKES.get(n, ()) for n in names):
            takers = [n for n in LESSONS if key in TAKES.get(n, ())]
            which = " and ".join([", ".join(takers[:-1]), takers[-1]])
            raise DigitlabError(f"--{key} only applies to the {which} lessons, not {names[0]}")
    if "steps" in given:
        report.check_int("--steps", given["steps"], 1, 100_000)
    if "points" in given:
        report.check_int("--points", given["points"], 2, 100_000)
    if "hidden" in given:
        report.check_int("--hidden", given["hidden"], 1, 4096)
    if "lr" in given:
        given["lr"] = report.check_lr(given["lr"])
    return given


def _cnn_options(args: argparse.Namespace, names: list[str], overrides: dict[str, object]) -> dict[str, object]:
    """--model and --data for the cnn lesson, checked before any lesson runs."""
    from digitlab.models import describe_models

    options = {key: getattr(args, key) for key in ("model", "data") if getattr(args, key, None) is not None}
    if options and "cnn" not in names:
        raise DigitlabError(f"--{next(iter(options))} only applies to the cnn lesson, not {names[0]}")
    if "data" in options and not Path(options["data"]).exists():
        raise DigitlabError(f"--data {options['data']}: no such file or folder")
    if "model" in options:
        if names == ["cnn"] and ("steps" in overrides or "lr" in overrides):
            raise DigitlabError("--steps and --lr train the CNN, but --model loads a trained one; give one or other")
        arch = describe_models([options["model"]])["arch"]
        if arch != "tutorial":
            raise DigitlabError(
                f"--model {options['model']} is a '{arch}' model; the cnn lesson opens up the tutorial's CNN "
                "(--model tutorial, or the folder of a `digitlab train --arch tutorial` run)"
            )
    return options


def _prepare_folder(out: Path) -> None:
    """Make sure `out` is a folder we can write into, creating it if needed."""
    if out.exists() and not out.is_dir():
        raise DigitlabError(f"--out {out} exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DigitlabError(f"cannot create --out folder {out}: {exc.strerror or exc}") from exc
    if not os.access(out, os.W_OK | os.X_OK):
        raise DigitlabError(f"cannot write into --out folder {out}: permission denied")


def _run_lesson(
    name: str,
    *,
    seed: int,
    out: Path | None,
    show: bool,
    console: Console,
    overrides: dict[str, object],
    cnn_options: dict[str, object] | None = None,
) -> object:
    """Call one lesson with the arguments it takes."""
    if name not in LESSONS:
        raise DigitlabError(f"unknown lesson {name!r}; choose one of {', '.join(LESSONS)} or all")
    module = lesson_module(name)
    if name in ("tensors", "autograd"):
        return module.lesson(console=console)
    if name == "activations":
        return module.lesson(out=out, show=show, console=console)
    takes = {key: value for key, value in overrides.items() if key in TAKES[name]}
    if name == "cnn":
        cnn_options = cnn_options or {}
        if "model" in cnn_options:
            takes = {}  # `all --model ... --steps N`: the steps are for the lessons that train.
        return module.lesson(seed=seed, out=out, show=show, console=console, **takes, **cnn_options)
    return module.lesson(seed=seed, out=out, show=show, console=console, **takes)
