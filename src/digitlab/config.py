"""Training's options, written once: `TrainConfig`'s fields are the `digitlab train` flags.

    cfg = TrainConfig(arch="fast")                   # the library; None means "the arch's recipe"
    add_arguments(parser)                            # the CLI: one flag per field, help from its metadata
    cfg = resolve(given, stored, explicit)           # --resume: what may change, what is refused

`resolve` and `fill` are pure (no files, no torch state), so the rules are tested without training.
This module imports neither torch nor the models, so building the parser stays cheap.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from digitlab.errors import DigitlabError

PER_ARCH = "(default: per arch)"


def option(default: Any, help: str, **flag: Any) -> Any:
    """A dataclass field that is also a command-line flag; `flag` is passed on to argparse."""
    return field(default=default, metadata={"help": help, **flag})


@dataclass
class TrainConfig:
    data: str | None = option(None, "MNIST folder, Kaggle train.csv or image folder (default: see README)")
    arch: str = option("tutorial", "tutorial, fast, strong or vgg")
    epochs: int | None = option(None, "passes over the training set (default: per arch on MNIST, more for "
                                      "a smaller set; the run prints what it chose)")
    batch_size: int | None = option(None, "images per step and process " + PER_ARCH)
    lr: float | None = option(None, "peak learning rate of the OneCycle schedule " + PER_ARCH)
    seed: int = option(0, "seed of every random choice")
    device: str = option("auto", "auto, cpu, cuda or mps")
    precision: str = option("auto", "auto (bf16 where native), fp32 or bf16")
    out: str = option("runs/latest", "output folder")
    resume: bool = option(False, "continue from the last checkpoint in --out")
    val_size: int = option(5000, "validation images held out of training (0: none)")
    log_every: int = option(50, "log the training loss every N steps")
    checkpoint_every: int = option(0, "also checkpoint every N steps (0: per epoch)")
    augment: bool | None = option(None, "random rotation/scale/shift (default: per arch, and on for a set smaller "
                                        "than MNIST's)")
    # off for every arch: it measured worse (benchmarks/results/strong_ensemble.md)
    elastic: float = option(0.0, "add elastic distortion of this strength to --augment (Simard's 34; 0: off)",
                            metavar="PIXELS")
    label_smoothing: float | None = option(None, PER_ARCH)
    handwriting: bool | None = option(None, "vary stroke width, blur, resolution and contrast as other pens "
                                            "and scans do, and break strokes as skipping pens and light "
                                            "pencils do (default: on for strong and vgg)")
    hands: int = option(0, "also train on the handwriting fonts' digits (data/hands, training families), N "
                             "elastically distorted copies of each (0: MNIST alone)", metavar="N")
    cuts: int = option(0, "also train on the digits read would cut out of N photos of numbers written with the "
                          "training digits (digitlab.data.cuts; 0: none)", metavar="N")
    hand_cuts: int = option(0, "also train on the digits read would cut out of N photos of numbers written in the "
                               "handwriting fonts' training families, one font per number (0: none)", metavar="N")
    limit: int | None = option(None, "train on the first N images only (quick checks)")
    sync_bn: bool = option(False, "SyncBatchNorm across processes")
    quiet: bool = option(False, "print nothing but errors")


FIELDS = tuple(f.name for f in dataclasses.fields(TrainConfig))
# On --resume these follow the new command line; every other option is the stored run's, and giving a
# different value is an error, since it would silently train something other than what was asked.
FOLLOW_COMMAND_LINE = frozenset({"device", "precision", "quiet", "log_every", "checkpoint_every"})
RECIPE_FIELDS = ("batch_size", "lr", "augment", "label_smoothing", "handwriting")


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field. Defaults are SUPPRESSed so the namespace holds only what was typed."""
    for f in dataclasses.fields(TrainConfig):
        extra = {k: v for k, v in f.metadata.items() if k != "help"}
        help_text = f.metadata["help"]
        if f.default is not None and f.default is not False and "default:" not in help_text:
            help_text += f" (default: {f.default})"
        kind = f.type.replace(" | None", "")
        if kind == "bool" and f.default is None:
            action: dict[str, Any] = {"action": argparse.BooleanOptionalAction}
        elif kind == "bool":
            action = {"action": "store_true"}
        else:
            action = {"type": {"int": int, "float": float, "str": str}[kind]}
        parser.add_argument(flag(f.name), default=argparse.SUPPRESS, help=help_text, **action, **extra)


def from_namespace(args: argparse.Namespace) -> tuple[TrainConfig, frozenset[str]]:
    """The config the command line asks for, and the names of the options that were actually typed."""
    explicit = frozenset(k for k in vars(args) if k in FIELDS)
    return TrainConfig(**{k: getattr(args, k) for k in explicit}), explicit


def resolve(given: TrainConfig, stored: dict[str, Any] | None, explicit: frozenset[str] = frozenset()
            ) -> TrainConfig:
    """The configuration a run uses: `given`, or on resume the stored run's with the allowed changes.

    `stored` is the run folder's train-config.json (None for a fresh run); `explicit` names the options
    the user typed. More epochs, another device, precision or verbosity are honoured; any other typed
    option that differs from the stored run is refused with an error naming it.
    """
    if not given.resume or stored is None:
        return given
    values = {k: v for k, v in stored.items() if k in FIELDS}
    for name in FOLLOW_COMMAND_LINE:
        values[name] = getattr(given, name)
    for name in sorted(explicit - FOLLOW_COMMAND_LINE - {"resume", "out"}):
        new, old = getattr(given, name), stored.get(name)
        if new == old:
            continue
        if name == "epochs" and new is not None and old is not None and new > old:
            values["epochs"] = new  # train on: the schedule is stretched to the new length
            continue
        raise DigitlabError(f"{flag(name)} cannot change on --resume (stored {old!r}, given {new!r}); "
                            f"start a new run with another --out to change it")
    values.update(resume=True, out=given.out)
    return TrainConfig(**values)


def fill(cfg: TrainConfig, recipe: Any, train_images: int | None = None) -> TrainConfig:
    """`cfg` with the recipe in place of every unset (None) option, checked.

    Unset epochs come from the recipe's budget of images (`epochs_for`), so a smaller training set
    (Kaggle's 42,000 rows) is not under-trained; an unset --augment is switched on for such a set when the
    recipe has none (`small_set_augments`).
    `train_images` is the training set's size once known (None: the recipe's MNIST epochs).
    """
    values = dataclasses.asdict(cfg)
    augmented_here = cfg.augment is None and small_set_augments(recipe, train_images, cfg.limit)
    for name in RECIPE_FIELDS:
        if values[name] is None:
            values[name] = getattr(recipe, name)
    if augmented_here:
        values["augment"] = True
    if values["epochs"] is None:
        values["epochs"] = recipe.epochs
        if train_images and cfg.limit is None:  # --limit is for quick checks: keep them quick
            values["epochs"] = epochs_for(recipe, train_images, augmented_here)
    out = TrainConfig(**values)
    check(out)
    return out


def epochs_for(recipe: Any, train_images: int, augmented_here: bool = False) -> int:
    """Default epochs on `train_images` images: more passes for a set smaller than MNIST's 55,000.

    The recipe's images (its MNIST epochs x 55,000) grow by the size ratio, up to double: a smaller set is
    seen both as often as MNIST's images are and with as many optimizer steps, roughly. The cap keeps a tiny
    folder from training for hours. `augmented_here` (augmentation switched on for this set by
    `small_set_augments`, not by the recipe) doubles that: a warped image is new every epoch, and fitting them
    takes longer. Chosen on the validation splits of a 42,000-row train.csv (benchmarks/kaggle.py, seeds 1
    and 2, tutorial): plain 5 / 6 / 8 epochs 98.85% / 98.92% / 98.89% (the plain model stops there);
    augmented 8 / 10 / 12 / 16 epochs 99.09% / 99.23% / 99.22% / 99.28%: 10 (this rule) is where it levels.
    """
    from digitlab.models.recipe import MNIST_TRAIN_IMAGES

    ratio = min(2.0, MNIST_TRAIN_IMAGES / train_images)
    epochs = max(recipe.epochs, math.ceil(recipe.budget_images * ratio / train_images))
    return 2 * epochs if augmented_here else epochs


def small_set_augments(recipe: Any, train_images: int | None, limit: int | None) -> bool:
    """Whether a recipe without augmentation gets it anyway: on a training set smaller than MNIST's.

    The tutorial CNN trained on a Kaggle train.csv (37,000 images once 5,000 are held out) stops near 98.9%
    however long it trains; with the random rotation, scale and shift it passes 99.0% (see `epochs_for`).
    Not for --limit runs (quick checks) and never against a typed --no-augment.
    """
    from digitlab.models.recipe import MNIST_TRAIN_IMAGES

    return not recipe.augment and limit is None and bool(train_images) and train_images < MNIST_TRAIN_IMAGES


def check(cfg: TrainConfig) -> None:
    """Refuse option values no run can use, before anything is loaded or written."""
    for name, low in (("epochs", 1), ("batch_size", 1), ("val_size", 0), ("log_every", 1),
                      ("checkpoint_every", 0), ("limit", 1), ("hands", 0), ("cuts", 0),
                      ("hand_cuts", 0)):
        value = getattr(cfg, name)
        if value is not None and value < low:
            raise DigitlabError(f"{flag(name)} must be at least {low}, got {value}")
    if cfg.lr is not None and not (cfg.lr > 0 and math.isfinite(cfg.lr)):
        raise DigitlabError(f"--lr must be a positive number, got {cfg.lr}")
    if not (cfg.elastic >= 0 and math.isfinite(cfg.elastic)):
        raise DigitlabError(f"--elastic must be a number of pixels >= 0, got {cfg.elastic}")
    if cfg.elastic > 0 and cfg.augment is False:
        raise DigitlabError("--elastic adds to the augmentation, so it needs --augment")


def to_argv(cfg: TrainConfig, explicit: frozenset[str]) -> list[str]:
    """The `digitlab train` arguments that give `cfg` again: the typed options, in field order.

    `--nproc` launches workers with these, built from the parsed config rather than by editing sys.argv,
    so abbreviations, `main(argv)` and --nproc itself cannot leak through to the workers.
    """
    argv: list[str] = []
    for f in dataclasses.fields(TrainConfig):
        if f.name not in explicit:
            continue
        value = getattr(cfg, f.name)
        if isinstance(value, bool):
            if f.default is None:
                argv.append(flag(f.name) if value else "--no-" + flag(f.name)[2:])
            elif value:
                argv.append(flag(f.name))
        elif value is not None:
            argv += [flag(f.name), str(value)]
    return argv
