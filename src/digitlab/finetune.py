"""Fine-tuning a trained model on a few hundred of your own digits: `digitlab train --init MODEL --data DIR`.

    digitlab serve                      # confirm or correct answers in the page; samples go to the feedback folder
    digitlab train --init strong --data ~/.local/share/digitlab/feedback --out runs/my-handwriting
    digitlab serve --model runs/my-handwriting        # or the page's "Use runs/my-handwriting" button

`--init` is a shipped model's name or a model folder; `--data` is any labelled image folder (`DIR/<digit>/*.png`,
which is what the page's feedback folder is). The result is an ordinary model folder of the same architecture,
so `predict`, `read`, `evaluate`, `export` and `serve --model` take it.

How it learns a handwriting in seconds without forgetting MNIST:
- Only the head trains: the last convolution block and the classifier (HEAD_BLOCKS). Everything below it is
  frozen, so its output for every image is computed once, and each training step is a matrix product.
  Full fine-tuning took 6 minutes here and cost 0.56 points on MNIST test; the head alone does not.
- BatchNorm stays in eval mode (its running statistics are MNIST's, and 300 samples would overwrite them).
- Replay with distillation: each step also sees MNIST training digits, and the head is pulled towards what
  the initial model answered on them (soft targets, temperature KD_TEMPERATURE), so it keeps reading MNIST.
- A quarter of your samples of each digit is held out and never trained on; accuracy on them and on MNIST's
  test set is printed before and after. MNIST test is run through the frozen part once: before and after
  differ only in the head, so the same features serve both measurements.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from rich.console import Console
from rich.table import Table
from torch import nn

from digitlab import runfolder
from digitlab.data import Digits, augment, load
from digitlab.engine import as_input
from digitlab.errors import DigitlabError
from digitlab.models import load_model, save_model

HEAD_BLOCKS = 1       # convolution blocks trained, counted from the top; below them the model is frozen
KD_TEMPERATURE = 2.0  # softens the initial model's answers on replay digits (Hinton et al., 2015)
FEATURE_CHUNK = 1000  # images per forward pass of the frozen part: large chunks are fastest on a CPU


@dataclass
class FinetuneConfig:
    init: str
    data: str | None
    out: str = "runs/latest"
    steps: int = 200
    lr: float = 3e-3
    batch_size: int = 32          # your samples per step; each step also takes 4x as many replay digits
    replay: str | None = None     # MNIST (train split) for replay and its test split; default: as `train` finds it
    replay_limit: int = 15000     # replay digits, a seeded sample of MNIST train (5,000: MNIST test -0.09 points)
    holdout: float = 0.25         # share of each digit's samples held out for the before/after measurement
    copies: int = 8               # jittered copies of each training sample (small rotation, scale, shift)
    kd_weight: float = 30.0   # distillation weight against your samples: MNIST test -0.12 points at 10, -0.06 at 30
    eval_limit: int | None = None  # measure on the first N MNIST test digits only (quick checks)
    seed: int = 0
    device: str = "auto"
    quiet: bool = False


def split_head(model: nn.Module, blocks: int = HEAD_BLOCKS) -> tuple[nn.Module, nn.Module]:
    """(frozen, head) with model(x) == head(frozen(x)); they share the model's modules, so training the head
    trains the model. The head is the last `blocks` convolution blocks and the classifier."""
    if hasattr(model, "features"):  # strong, fast, vgg: norm -> features -> out
        layers = list(model.features)
        convs = [i for i, m in enumerate(layers) if any(isinstance(s, nn.Conv2d) for s in m.modules())]
        cut = convs[-min(blocks, len(convs))]
        return nn.Sequential(model.norm, *layers[:cut]), nn.Sequential(*layers[cut:], model.out)
    if hasattr(model, "conv2"):  # the tutorial CNN: norm -> conv1 -> conv2 -> flatten -> out
        return nn.Sequential(model.norm, model.conv1), nn.Sequential(model.conv2, nn.Flatten(), model.out)
    raise DigitlabError(f"--init: cannot fine-tune a {type(model).__name__} (no known head)")


def holdout_split(labels: torch.Tensor, share: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, held-out) indices: `share` of each digit's samples held out, at least one of every digit that
    has two or more, so that each digit you gave is measured; a digit's only sample is trained on."""
    g = torch.Generator().manual_seed(seed)
    train, held = [], []
    for digit in range(10):
        index = (labels == digit).nonzero().flatten()
        index = index[torch.randperm(len(index), generator=g)]
        n_held = 0 if len(index) < 2 else max(1, min(len(index) - 1, round(share * len(index))))
        held.append(index[:n_held])
        train.append(index[n_held:])
    return torch.cat(train).sort().values, torch.cat(held).sort().values


def check_out(out: Path) -> None:
    """Fail now, before any work, if `out` could not be written; create nothing (that happens at the end)."""
    if out.exists() and not out.is_dir():
        raise DigitlabError(f"--out {out}: exists and is not a folder")
    existing = out
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise DigitlabError(f"--out {out}: cannot write in {existing}")


def load_inputs(cfg: FinetuneConfig) -> dict[str, Any]:
    """Everything the run reads, checked before anything is computed or written."""
    if cfg.data is None:
        raise DigitlabError("--init needs --data DIR: a folder of your labelled samples (DIR/0 ... DIR/9)")
    for name, value, low in (("steps", cfg.steps, 0), ("batch-size", cfg.batch_size, 1),
                             ("replay-limit", cfg.replay_limit, 0), ("eval-limit", cfg.eval_limit or 1, 1)):
        if value < low:
            raise DigitlabError(f"--{name} must be at least {low}, got {value}")
    if not (cfg.lr > 0 and math.isfinite(cfg.lr)):
        raise DigitlabError(f"--lr must be a positive number, got {cfg.lr}")
    if not 0 <= cfg.holdout < 1:
        raise DigitlabError(f"--holdout must be a share in [0, 1), got {cfg.holdout}")
    model, meta = load_model(cfg.init)
    personal = load(cfg.data, "train")
    if personal is None or personal.labels is None or len(personal) == 0:
        raise DigitlabError(f"{cfg.data}: no labelled samples")
    train_index, held_index = holdout_split(personal.labels, cfg.holdout, cfg.seed)
    mnist_train, mnist_test = load(cfg.replay, "train"), load(cfg.replay, "test")
    if mnist_train is None or mnist_test is None or mnist_test.labels is None:
        raise DigitlabError(f"{cfg.replay or 'MNIST'}: replay needs MNIST's train and test splits")
    check_out(Path(cfg.out))
    g = torch.Generator().manual_seed(cfg.seed + 1)
    replay_index = torch.randperm(len(mnist_train), generator=g)[: cfg.replay_limit].sort().values
    test = mnist_test if cfg.eval_limit is None else mnist_test.subset(torch.arange(min(cfg.eval_limit,
                                                                                       len(mnist_test))))
    return {"model": model, "meta": meta, "train": personal.subset(train_index),
            "held": personal.subset(held_index), "replay": mnist_train.subset(replay_index), "test": test}


@torch.no_grad()
def features(frozen: nn.Module, images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """The frozen part's output for uint8 images (N, 28, 28) (or float (N, 1, 28, 28) in [0, 1])."""
    chunks = []
    for start in range(0, len(images), FEATURE_CHUNK):
        batch = images[start : start + FEATURE_CHUNK]
        x = as_input(batch, device) if batch.dtype == torch.uint8 else batch.to(device)
        chunks.append(frozen(x).float())
    return torch.cat(chunks) if chunks else torch.zeros(0)


def jittered(digits: Digits, copies: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Each sample as it is plus `copies` slightly rotated, scaled and shifted versions: a few hundred samples
    are few, and a pen never draws the same digit twice."""
    x = as_input(digits.images, "cpu").contiguous()
    g = torch.Generator().manual_seed(seed)
    versions = [x] + [augment.random_affine(x, degrees=8, scale=0.08, shift=0.06, generator=g)
                      for _ in range(copies)]
    return torch.cat(versions), digits.labels.repeat(copies + 1)


@torch.no_grad()
def accuracy(head: nn.Module, feats: torch.Tensor, labels: torch.Tensor) -> float | None:
    if len(labels) == 0:
        return None
    return (head(feats).argmax(1).cpu() == labels).double().mean().item()


def finetune(cfg: FinetuneConfig) -> dict[str, Any]:
    """Fine-tune `cfg.init` on `cfg.data` into `cfg.out`; returns the before/after numbers (also in model.json)."""
    from digitlab.device import pick_device
    from digitlab.schedule import one_cycle

    started = time.perf_counter()
    inputs = load_inputs(cfg)
    console = Console(quiet=cfg.quiet, highlight=False, soft_wrap=True)
    device = pick_device(cfg.device)
    model: nn.Module = inputs["model"].to(device, memory_format=torch.channels_last).eval()
    frozen, head = split_head(model)
    for p in model.parameters():
        p.requires_grad_(False)
    trainable = [p for p in head.parameters()]
    for p in trainable:
        p.requires_grad_(True)
    console.print(f"fine-tuning {cfg.init} ({inputs['meta']['arch']}; {sum(p.numel() for p in trainable):,} of "
                  f"{sum(p.numel() for p in model.parameters()):,} parameters train) on {len(inputs['train'])} "
                  f"samples, {len(inputs['held'])} held out, with {len(inputs['replay']):,} MNIST replay digits")

    # The frozen part runs once per image; from here on only the head does.
    x_train, y_train = jittered(inputs["train"], cfg.copies, cfg.seed)
    f_train, y_train = features(frozen, x_train, device), y_train.to(device)
    f_held, f_test = (features(frozen, inputs[k].images, device) for k in ("held", "test"))
    f_replay = features(frozen, inputs["replay"].images, device)
    initial = copy.deepcopy(head)
    with torch.no_grad():
        teacher = (initial(f_replay) / KD_TEMPERATURE).softmax(1) if len(f_replay) else None
    before = {"personal": accuracy(initial, f_held, inputs["held"].labels),
              "mnist": accuracy(initial, f_test, inputs["test"].labels)}

    optimizer = torch.optim.Adam(trainable, lr=cfg.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, one_cycle(max(cfg.steps, 1), warmup=0.1))
    g = torch.Generator().manual_seed(cfg.seed + 2)
    for _ in range(cfg.steps):
        pick = torch.randint(len(f_train), (cfg.batch_size,), generator=g).to(device)
        loss = F.cross_entropy(head(f_train[pick]), y_train[pick])
        if teacher is not None:
            pick = torch.randint(len(f_replay), (4 * cfg.batch_size,), generator=g).to(device)
            student = (head(f_replay[pick]) / KD_TEMPERATURE).log_softmax(1)
            distill = F.kl_div(student, teacher[pick], reduction="batchmean") * KD_TEMPERATURE**2
            loss = loss + cfg.kd_weight * distill
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if not math.isfinite(loss.item()):
            raise DigitlabError(f"fine-tuning diverged (loss {loss.item()}); try a lower --lr")
        optimizer.step()
        scheduler.step()
    after = {"personal": accuracy(head, f_held, inputs["held"].labels),
             "mnist": accuracy(head, f_test, inputs["test"].labels)}
    seconds = time.perf_counter() - started

    table = Table(title=f"{cfg.init} -> {cfg.out}: {cfg.steps} steps in {seconds:.1f} s")
    for column in ("accuracy on", "before", "after", "change"):
        table.add_column(column, justify="right" if column != "accuracy on" else "left")
    for key, label, n in (("personal", "your held-out samples", len(inputs["held"])),
                          ("mnist", "MNIST test", len(inputs["test"]))):
        if before[key] is None:
            table.add_row(f"{label} (none)", "-", "-", "-")
            continue
        table.add_row(f"{label} ({n:,})", f"{before[key]:.2%}", f"{after[key]:.2%}",
                      f"{100 * (after[key] - before[key]):+.2f} points")
    console.print(table)

    result = {"personal_before": before["personal"], "personal_after": after["personal"],
              "personal_n": len(inputs["held"]), "mnist_before": before["mnist"], "mnist_after": after["mnist"],
              "mnist_n": len(inputs["test"]), "train_samples": len(inputs["train"]), "seconds": round(seconds, 2)}
    write_model(model, inputs["meta"], cfg, result)
    console.print(f"wrote {Path(cfg.out) / 'model.safetensors'}")
    return result


def write_model(model: nn.Module, init_meta: dict[str, Any], cfg: FinetuneConfig, result: dict[str, Any]) -> None:
    """An ordinary model folder. The initial model's description is kept (its calibration temperature, if it
    has one, among it) with this run's command, settings and numbers in place of its training record."""
    meta = {k: v for k, v in init_meta.items() if k not in ("training", "metrics", "format")}
    meta["training"] = {**dataclasses.asdict(cfg), "command": runfolder.command_line(),
                        "head_blocks": HEAD_BLOCKS, "init_training": init_meta.get("training")}
    meta["metrics"] = {"test_accuracy": result["mnist_after"], "test_n": result["mnist_n"], **result}
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    save_model(model.cpu(), meta, out)


def config_from_args(args: Any) -> FinetuneConfig:
    """`digitlab train --init ...`'s arguments; the options it does not set keep FinetuneConfig's defaults."""
    if getattr(args, "nproc", 0) or getattr(args, "ensemble", 0) or getattr(args, "resume", False):
        raise DigitlabError("--init fine-tunes in one process: it takes no --nproc, --ensemble or --resume")
    given = {k: v for k, v in vars(args).items() if k in FinetuneConfig.__dataclass_fields__ and v is not None}
    return FinetuneConfig(**given)
