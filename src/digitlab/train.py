"""Training, top to bottom: config -> data -> model and optimizer -> loop -> evaluate -> save.

    digitlab train                                    # tutorial CNN, shipped MNIST, ~99.0% in ~30 s
    digitlab train --arch strong                      # ~99.67%, with augmentation, ~10 min
    torchrun --nproc_per_node=2 -m digitlab train     # DistributedDataParallel, gloo on CPU

Why it is fast: the whole dataset is one uint8 tensor, so a batch is an index into it (the tutorial's
per-image PIL decoding was its bottleneck); convolutions run channels-last, and in bf16 autocast where the
hardware has native bf16.

Why resume is exact: every random choice is a pure function of (seed, epoch, step, rank) — the validation
split, each epoch's shuffle, and the generator reseeded before every step for dropout and augmentation
(digitlab.schedule). A checkpoint therefore only needs weights, optimizer, scheduler and the step
counter, and a run killed at any point and resumed ends with bit-identical weights on CPU.

Nothing is written until the data has loaded and the model is built, so bad input leaves no run folder.
The options and the --resume rules are digitlab.config; the run folder's files are digitlab.runfolder.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

import digitlab
from digitlab import checkpoint, distributed, faults, runfolder
from digitlab.config import TrainConfig, fill, resolve
from digitlab.data import Digits, augment, load
from digitlab.data.splits import load_splits
from digitlab.device import pick_device, pick_precision
from digitlab.engine import as_input
from digitlab.errors import DigitlabError
from digitlab.evaluate import confusion_matrix, metrics_from_confusion
from digitlab.models import count_parameters, lookup, unwrap

# Re-exported: `from digitlab.train import TrainConfig, pick_device` predates digitlab.config/device.
__all__ = ["TrainConfig", "pick_device", "pick_precision", "train", "train_ensemble"]

Hook = Callable[[int], None]  # called with the global step number before every training step


def train(cfg: TrainConfig, explicit: frozenset[str] = frozenset(), hooks: Sequence[Hook] = ()) -> dict[str, Any]:
    """Train a model as `cfg` says; returns the metrics (also written to `cfg.out/metrics.json`).

    `explicit` names the options the user typed (the CLI's), which --resume checks against the stored run;
    `hooks` are called before every step (the crash tests use one to fail at a chosen step).
    """
    try:
        return _train(cfg, explicit, hooks)
    finally:
        distributed.teardown()


def _train(cfg: TrainConfig, explicit: frozenset[str], hooks: Sequence[Hook]) -> dict[str, Any]:
    from rich.console import Console

    from digitlab.schedule import epoch_shard, one_cycle, step_seed

    started = time.perf_counter()
    # -- 1. the configuration: typed options, the stored run's on --resume, the arch's recipe --------------
    if int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")) > 0:
        # torchrun --max-restarts brought this worker back after a crash: carry on from the checkpoint.
        cfg = dataclasses.replace(cfg, resume=True)
    stored = runfolder.read_stored(cfg.out) if cfg.resume else None
    cfg = resolve(cfg, stored, explicit)
    # A resumed run's model.json names the command that started it: unless a resume asked for more --epochs,
    # that command alone makes the same weights in one go. The last command that resumed it goes beside it.
    command = runfolder.command_line()
    started_with = (stored or {}).get("command") or command
    recipe = lookup(cfg.arch).recipe
    fill(cfg, recipe)  # refuse bad values now, before any data is read

    # -- 2. processes and device ----------------------------------------------------------------------------
    device = pick_device(cfg.device)
    is_distributed = distributed.setup(device)
    rank, world = distributed.rank(), distributed.world_size()
    if device.type == "cuda" and is_distributed:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    main = rank == 0
    autocast_dtype = pick_precision(cfg.precision, device)

    # -- 3. data ------------------------------------------------------------------------------------------
    train_set, val_set, test_set = load_splits(cfg, main)
    if len(train_set) < world:
        raise DigitlabError("fewer training images than processes")
    cfg = fill(cfg, recipe, len(train_set))
    console = Console(quiet=cfg.quiet or not main, highlight=False, soft_wrap=True)

    # -- 4. model, optimizer, schedule --------------------------------------------------------------------
    torch.manual_seed(cfg.seed)
    model = lookup(cfg.arch).build()
    if cfg.sync_bn and is_distributed:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model = model.to(device, memory_format=torch.channels_last)
    if is_distributed:
        model = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    steps_per_epoch = math.ceil(len(train_set) // world / cfg.batch_size)
    total_steps = steps_per_epoch * cfg.epochs
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, one_cycle(total_steps))
    epoch, step = 0, 0
    seconds_before = 0.0  # training time of the runs this one resumes
    val_logits = None  # the last validation pass's, which calibration reuses instead of a second pass
    history: dict[str, list] = {"step": [], "loss": [], "val_step": [], "val_loss": [], "val_accuracy": []}

    # -- 5. the run folder: only now, with everything checked ---------------------------------------------
    out = Path(cfg.out)
    if main:
        runfolder.prepare(cfg, started_with)
    distributed.barrier()
    state = checkpoint.load_latest(out) if cfg.resume else None
    if state is not None:
        unwrap(model).load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        epoch, step, history = state["epoch"], state["step"], state["history"]
        # Checkpoints from before stop 40 did not count their training time.
        seconds_before = float(state.get("train_seconds", 0.0))

    def save_checkpoint() -> None:
        if main:
            checkpoint.save(out, epoch * steps_per_epoch + step, {
                "model": unwrap(model).state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "epoch": epoch, "step": step, "history": history,
                "train_seconds": seconds_before + time.perf_counter() - train_started})
        distributed.barrier()

    console.print(
        f"digitlab {digitlab.__version__} · arch {cfg.arch} ({count_parameters(unwrap(model)):,} parameters) · "
        f"{device.type}{' bf16' if autocast_dtype else ' fp32'} · {world} process{'es' if world > 1 else ''} · "
        f"global batch {cfg.batch_size * world} · max lr {cfg.lr:g} · train/val/test {len(train_set):,}/"
        f"{len(val_set):,}/{len(test_set):,}")
    if "epochs" not in explicit and cfg.epochs != recipe.epochs:
        console.print(f"{cfg.epochs} epochs ({total_steps:,} steps) on {len(train_set):,} images: the {cfg.arch} "
                      f"recipe's {recipe.epochs} epochs of MNIST's 55,000, scaled up for a smaller set "
                      f"(--epochs to choose)")
    if cfg.augment and not recipe.augment and "augment" not in explicit:
        console.print(f"augmentation on (random rotation, scale and shift): {len(train_set):,} images are fewer "
                      f"than MNIST's 55,000 (--no-augment to turn it off)")
    if state is not None:
        console.print(f"resumed from {out} at epoch {epoch + 1}, step {step}")
    elif cfg.resume:
        console.print(f"no checkpoint in {out}; starting from scratch")
    hooks = [h for h in (*hooks, faults.kill_at_from_env(rank)) if h is not None]

    # -- 6. the loop --------------------------------------------------------------------------------------
    model.train()
    seen_before = epoch * steps_per_epoch + step
    train_started = time.perf_counter()
    with _progress(console, total_steps, seen_before, epoch) as (progress, task):
        while epoch < cfg.epochs:
            shard = epoch_shard(len(train_set), cfg.seed, epoch, rank, world)
            while step < steps_per_epoch:
                for hook in hooks:
                    hook(epoch * steps_per_epoch + step)
                torch.manual_seed(step_seed(cfg.seed, epoch, step, rank))
                index = shard[step * cfg.batch_size : (step + 1) * cfg.batch_size]
                x = as_input(train_set.images[index], device)
                y = train_set.labels[index].to(device, non_blocking=True)
                if cfg.augment:
                    x = augment.random_affine(x, elastic=cfg.elastic)
                if cfg.handwriting:
                    x = augment.handwriting(augment.pens(x))
                x = x.contiguous(memory_format=torch.channels_last)
                with torch.autocast(device.type, dtype=autocast_dtype or torch.float32,
                                    enabled=autocast_dtype is not None):
                    logits = model(x)
                loss = F.cross_entropy(logits.float(), y, label_smoothing=cfg.label_smoothing)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                value = loss.item()
                if not math.isfinite(value):
                    raise DigitlabError(f"training diverged: loss is {value} at epoch {epoch + 1}, step {step}; "
                                        f"the last good checkpoint is kept in {out} (try a lower --lr)")
                optimizer.step()
                scheduler.step()
                step += 1
                progress.update(task, advance=1, epoch=epoch + 1, loss=value)
                if step % cfg.log_every == 0:
                    history["step"].append(epoch * steps_per_epoch + step)
                    history["loss"].append(value)
                    if not console.is_terminal:
                        console.print(f"Epoch: {epoch + 1} | step {step:4d}/{steps_per_epoch} "
                                      f"| train loss: {value:.4f}")
                if cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and step < steps_per_epoch:
                    save_checkpoint()
            elapsed = f"({time.perf_counter() - train_started:.1f} s)"
            if len(val_set):
                val = measure(model, val_set, device, rank, world, keep_logits=world == 1)
                val_logits = val.pop("logits", None)
                history["val_step"].append((epoch + 1) * steps_per_epoch)
                history["val_loss"].append(val["loss"])
                history["val_accuracy"].append(val["accuracy"])
                console.print(f"epoch {epoch + 1}/{cfg.epochs}: validation loss {val['loss']:.4f}, "
                              f"accuracy {val['accuracy']:.2%} {elapsed}")
            else:  # --val-size 0: every labelled image is used for training
                console.print(f"epoch {epoch + 1}/{cfg.epochs} done {elapsed}")
            epoch, step = epoch + 1, 0
            save_checkpoint()
    train_seconds = time.perf_counter() - train_started

    # -- 7. evaluate --------------------------------------------------------------------------------------
    from digitlab import calibrate

    figures = runfolder.Figures(out) if main else None
    calibration, fitted_on = None, f"validation split ({len(val_set):,} held out, seed {cfg.seed})"
    if figures:
        figures.loss(history)
        if val_logits is not None:  # honest confidence (issue 12), fitted meanwhile from the last validation pass
            calibration = figures.run(calibrate.fit, val_logits, val_set.labels, fitted_on)
    images_seen = (total_steps - seen_before) * cfg.batch_size * world
    test = measure(model, test_set, device, rank, world)
    metrics = {
        "arch": cfg.arch,
        "val_accuracy": history["val_accuracy"][-1] if history["val_accuracy"] else None,
        "test_accuracy": test["accuracy"] if test["n"] else None,
        "test_n": test["n"],
        "test_loss": test["loss"],
        "setup_seconds": round(train_started - started, 2),  # config, data, model: before the first step
        "train_seconds": round(seconds_before + train_seconds, 2),  # all runs of it, resumed ones included
        "total_seconds": round(time.perf_counter() - started, 2),
        "train_images_per_second": round(images_seen / max(train_seconds, 1e-9)),  # this run's
        "world_size": world,
        "global_batch_size": cfg.batch_size * world,
        "replicas_identical": replicas_identical(model, device, world),
        "confusion": test["confusion"],
        "precision": test["precision"],
        "recall": test["recall"],
    }
    if test["n"]:
        console.print(f"test accuracy: {test['accuracy']:.2%} on {test['n']:,} images "
                      f"({metrics['total_seconds']:.1f} s in all, {metrics['train_images_per_second']:,} img/s)")
    else:
        console.print(f"no test images: every labelled image was trained on ({metrics['total_seconds']:.1f} s "
                      f"in all, {metrics['train_images_per_second']:,} img/s)")

    # -- 8. save ------------------------------------------------------------------------------------------
    if main:
        plain = unwrap(model)
        meta = {
            "arch": cfg.arch,
            "parameters": count_parameters(plain),
            "input": {"shape": [1, 28, 28], "range": [0.0, 1.0], "ink": "white on black"},
            "normalisation": {"mean": float(plain.norm.mean), "std": float(plain.norm.std)},
            "training": {**dataclasses.asdict(cfg), "world_size": world, "command": started_with,
                         **({"resumed_with": command} if state is not None else {})},
            "metrics": {k: metrics[k] for k in ("test_accuracy", "test_n", "val_accuracy", "train_seconds")},
            "versions": {"digitlab": digitlab.__version__, "torch": torch.__version__,
                         "python": platform.python_version()},
        }
        if test["n"]:  # nothing to draw when every labelled image was trained on
            figures.confusion(metrics["confusion"], f"{cfg.arch}: {metrics['test_accuracy']:.2%} on "
                                                    f"{metrics['test_n']:,} test digits")
        if len(val_set):  # a resumed run that had finished its epochs has no validation pass of its own
            meta["calibration"] = (calibration.result() if calibration is not None
                                   else calibrate.fit_model(plain, val_set.images, val_set.labels, device, fitted_on))
            console.print(f"temperature {meta['calibration']['temperature']:.4f}: validation ECE "
                          f"{meta['calibration']['ece_before']:.2%} -> {meta['calibration']['ece_after']:.2%}")
        runfolder.write_outputs(out, model, meta, metrics)
        figures.wait()
    distributed.barrier()
    return metrics


@contextmanager
def _progress(console: Any, total: int, completed: int, epoch: int) -> Iterator[tuple[Any, Any]]:
    """A progress bar on a terminal (nothing in logs): yields (progress, task)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("loss {task.fields[loss]:.4f}"), TimeElapsedColumn(), console=console,
                  disable=console.quiet or not console.is_terminal, transient=True) as progress:
        yield progress, progress.add_task("train", total=total, completed=completed, epoch=epoch + 1,
                                          loss=float("nan"))


@torch.inference_mode()
def measure(model: nn.Module, digits: Digits, device: torch.device, rank: int = 0, world: int = 1,
            shard: bool = True, keep_logits: bool = False) -> dict[str, Any]:
    """Loss and confusion matrix on `digits`, split over ranks and summed, so all ranks agree; with
    `keep_logits` (one process) also the fp32 logits, as `logits` (N, 10) on the CPU."""
    model.eval()
    index = torch.arange(len(digits))
    if shard and world > 1:
        index = index[rank::world]
    confusion = torch.zeros(10, 10, dtype=torch.int64)
    loss_sum = 0.0
    kept = []
    for start in range(0, len(index), 2048):
        chunk = index[start : start + 2048]
        x, y = as_input(digits.images[chunk], device), digits.labels[chunk].to(device)
        # fp32, as `digitlab evaluate` and `predict` run, so the reported accuracy is the one users get.
        logits = unwrap(model)(x).float()
        loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
        confusion += confusion_matrix(y.cpu(), logits.argmax(1).cpu())
        if keep_logits:
            kept.append(logits.cpu())
    model.train()
    if shard and world > 1:
        summed = distributed.all_sum([loss_sum, *confusion.flatten().tolist()], device)
        loss_sum, confusion = summed[0], torch.tensor(summed[1:], dtype=torch.int64).reshape(10, 10)
    metrics = metrics_from_confusion(confusion)
    metrics["loss"] = loss_sum / max(metrics["n"], 1)
    if keep_logits:
        metrics["logits"] = torch.cat(kept) if kept else torch.zeros(0, 10)
    return metrics


def replicas_identical(model: nn.Module, device: torch.device, world: int) -> bool:
    """Whether every rank ends with the same weights, by comparing a hash of each rank's state dict."""
    if world == 1:
        return True
    digest = hashlib.sha256()
    for tensor in unwrap(model).state_dict().values():
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    mine = torch.frombuffer(bytearray(digest.digest()), dtype=torch.uint8).to(device)
    gathered = [torch.empty_like(mine) for _ in range(world)]
    torch.distributed.all_gather(gathered, mine)
    return all(torch.equal(g, gathered[0]) for g in gathered)


def train_ensemble(cfg: TrainConfig, members: int, explicit: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Train `members` models with seeds seed, seed+1, ... into out/member-K, then test their average vote."""
    from rich.console import Console

    from digitlab.models import load_models
    from digitlab.predict import predict_logits

    if members < 2:
        raise DigitlabError(f"--ensemble needs at least 2 members, got {members}")
    # Checked before training, not after: each member of a source without a test split (a Kaggle
    # train.csv) would hold out a different test set of its own, so there is nothing common to vote on.
    test = load(cfg.data, "test")
    if test is None:
        raise DigitlabError("--ensemble needs data with a test split to report the ensemble's accuracy")
    out = Path(cfg.out)
    results = []
    for k in range(members):
        member = dataclasses.replace(cfg, seed=cfg.seed + k, out=str(out / f"member-{k}"))
        done = Path(member.out) / "metrics.json"
        if cfg.resume and done.is_file():
            results.append(json.loads(done.read_text()))  # finished before an interruption
            continue
        results.append(train(member, explicit - {"seed"}))
    model, _ = load_models([out / f"member-{k}" for k in range(members)])
    accuracy = (predict_logits(model, test.images).argmax(1) == test.labels).double().mean().item()
    singles = [r["test_accuracy"] for r in results]
    summary = {
        "members": members,
        "member_test_accuracy": singles,
        "member_mean": statistics.fmean(singles),
        "member_std": statistics.stdev(singles),
        "ensemble_test_accuracy": accuracy,
        "test_n": len(test),
    }
    from digitlab.fileio import atomic_write_text

    atomic_write_text(out / "ensemble.json", json.dumps(summary, indent=2) + "\n")
    Console(highlight=False).print(
        f"ensemble of {members}: test accuracy {accuracy:.2%}; members {summary['member_mean']:.2%} "
        f"± {summary['member_std']:.2%} (mean ± sd)")
    return summary
