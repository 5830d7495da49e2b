"""The training loop: it learns, it is deterministic, it resumes exactly, it fails early and clearly."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from digitlab import checkpoint
from digitlab.errors import DigitlabError
from digitlab.train import TrainConfig, train
from tests.conftest import MNIST


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def quick(out: Path, **overrides) -> TrainConfig:
    values = {"data": str(MNIST), "out": str(out), "epochs": 2, "limit": 2000, "val_size": 200,
              "batch_size": 64, "quiet": True, "seed": 0}
    values.update(overrides)
    return TrainConfig(**values)


def test_learns_on_synthetic_data(synthetic_idx: Path, tmp_path: Path) -> None:
    metrics = train(TrainConfig(data=str(synthetic_idx), out=str(tmp_path), epochs=3, val_size=100,
                                batch_size=32, lr=5e-3, quiet=True))
    assert metrics["test_accuracy"] > 0.9
    for name in ("model.safetensors", "model.json", "metrics.json", "loss.png", "confusion.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    meta = json.loads((tmp_path / "model.json").read_text())
    assert meta["arch"] == "tutorial" and meta["training"]["seed"] == 0 and "test_accuracy" in meta["metrics"]
    assert json.loads((tmp_path / "metrics.json").read_text())["test_n"] == 200


def test_no_validation_split_trains_on_everything(synthetic_idx: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    metrics = train(TrainConfig(data=str(synthetic_idx), out=str(tmp_path), epochs=2, val_size=0,
                                batch_size=32, lr=5e-3))
    assert metrics["val_accuracy"] is None and metrics["test_accuracy"] > 0.9
    printed = capsys.readouterr().out
    assert "epoch 2/2 done" in printed and "validation" not in printed


def test_elastic_augmentation_is_seeded_and_recorded(synthetic_idx: Path, tmp_path: Path) -> None:
    def run(name: str, elastic: float) -> dict[str, torch.Tensor]:
        train(TrainConfig(data=str(synthetic_idx), out=str(tmp_path / name), epochs=1, val_size=100,
                          batch_size=50, augment=True, elastic=elastic, quiet=True))
        return weights(tmp_path / name)

    a, b, plain = run("a", 34), run("b", 34), run("plain", 0)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], plain[k]) for k in a)
    assert json.loads((tmp_path / "a" / "model.json").read_text())["training"]["elastic"] == 34


@pytest.mark.mnist
def test_short_real_mnist_run(tmp_path: Path) -> None:
    metrics = train(quick(tmp_path, epochs=1, limit=6000, batch_size=128))
    assert metrics["test_n"] == 10000 and metrics["test_accuracy"] > 0.9


@pytest.mark.mnist
def test_same_seed_same_weights(tmp_path: Path) -> None:
    train(quick(tmp_path / "a", epochs=1))
    train(quick(tmp_path / "b", epochs=1))
    train(quick(tmp_path / "c", epochs=1, seed=1))
    a, b, c = weights(tmp_path / "a"), weights(tmp_path / "b"), weights(tmp_path / "c")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["out.weight"], c["out.weight"])


class Crash(Exception):
    pass


@pytest.mark.mnist
@pytest.mark.parametrize("arch", ["tutorial", "strong"])
def test_resume_mid_epoch_is_bit_identical(tmp_path: Path, arch: str) -> None:
    """Interrupt a run in the middle of epoch 2, resume it: the weights equal an uninterrupted run's."""
    extra = {"arch": arch, "limit": 600, "batch_size": 50, "checkpoint_every": 3}
    train(quick(tmp_path / "full", **extra))

    def crash(global_step: int) -> None:
        if global_step == 15:  # epoch 1 has 10 steps: this is mid-epoch 2, after the step-13 checkpoint
            raise Crash

    with pytest.raises(Crash):
        train(quick(tmp_path / "resumed", **extra), hooks=[crash])
    train(quick(tmp_path / "resumed", resume=True))
    full, resumed = weights(tmp_path / "full"), weights(tmp_path / "resumed")
    assert all(torch.equal(full[k], resumed[k]) for k in full)


def test_a_resumed_run_records_its_first_command_and_all_its_training_time(
        synthetic_idx: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """model.json says how to make the weights in one go, not how the last piece of the run was started, and
    its train_seconds count every run of it (the shipped strong model of stop 40 was resumed once)."""
    out = tmp_path / "run"
    cfg = TrainConfig(data=str(synthetic_idx), out=str(out), epochs=2, val_size=100, batch_size=32, lr=5e-3,
                      quiet=True)
    first = ["digitlab", "train", "--data", str(synthetic_idx), "--out", str(out), "--epochs", "2"]
    monkeypatch.setattr(sys, "argv", first)

    def crash(global_step: int) -> None:
        if global_step == 20:  # 16 steps an epoch: mid-epoch 2, after the end-of-epoch-1 checkpoint
            raise Crash

    with pytest.raises(Crash):
        train(cfg, hooks=[crash])
    # Make the first run's time unmistakable: a day, where it really took a second or two.
    newest = max(out.glob("ckpt-*.pt"))
    state = checkpoint.load_latest(out)
    assert state is not None and 0 < state["train_seconds"] < 600
    checkpoint.save(out, int(newest.stem.removeprefix("ckpt-")), {**state, "train_seconds": 86400.0})
    monkeypatch.setattr(sys, "argv", ["digitlab", "train", "--resume", "--out", str(out)])
    metrics = train(dataclasses.replace(cfg, resume=True))
    meta = json.loads((out / "model.json").read_text())
    assert meta["training"]["command"] == " ".join(first)
    assert meta["training"]["resumed_with"] == f"digitlab train --resume --out {out}"
    assert 86400 < metrics["train_seconds"] == meta["metrics"]["train_seconds"] < 86400 + 600


def test_bad_arguments_fail_before_training(tmp_path: Path, synthetic_idx: Path) -> None:
    with pytest.raises(DigitlabError, match="--epochs"):
        train(TrainConfig(data=str(synthetic_idx), out=str(tmp_path), epochs=0))
    with pytest.raises(DigitlabError, match="unknown architecture"):
        train(TrainConfig(data=str(synthetic_idx), out=str(tmp_path), arch="resnet"))
    with pytest.raises(DigitlabError, match="--lr"):
        train(TrainConfig(data=str(synthetic_idx), out=str(tmp_path), lr=-1))
    with pytest.raises(DigitlabError, match="--val-size"):
        train(TrainConfig(data=str(synthetic_idx), out=str(tmp_path), val_size=-1))
    with pytest.raises(DigitlabError, match="--elastic .* needs --augment"):
        train(TrainConfig(data=str(synthetic_idx), out=str(tmp_path), elastic=34))
    with pytest.raises(DigitlabError, match="--elastic must be"):
        train(TrainConfig(data=str(synthetic_idx), out=str(tmp_path), augment=True, elastic=-1))
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(DigitlabError, match="cannot write"):
        train(TrainConfig(data=str(synthetic_idx), out=str(blocker / "sub"), epochs=1))


def test_divergence_is_a_clear_error(tmp_path: Path, synthetic_idx: Path) -> None:
    with pytest.raises(DigitlabError, match="diverged"):
        train(TrainConfig(data=str(synthetic_idx), out=str(tmp_path), epochs=2, lr=1e30, quiet=True))
    assert not (tmp_path / "model.safetensors").exists()


def test_ensemble_training(synthetic_idx: Path, tmp_path: Path) -> None:
    from digitlab.train import train_ensemble

    summary = train_ensemble(TrainConfig(data=str(synthetic_idx), out=str(tmp_path), epochs=2, val_size=100,
                                         batch_size=32, lr=5e-3, quiet=True), members=2)
    assert summary["members"] == 2 and len(summary["member_test_accuracy"]) == 2
    assert summary["ensemble_test_accuracy"] > 0.9
    assert (tmp_path / "member-0" / "model.safetensors").is_file()
    assert (tmp_path / "member-1" / "model.safetensors").is_file()
    assert json.loads((tmp_path / "ensemble.json").read_text())["test_n"] == 200


def test_ensemble_without_a_test_split_fails_before_training(tmp_path: Path) -> None:
    from digitlab.data import kaggle
    from digitlab.train import train_ensemble
    from tests.conftest import synthetic_digits

    images, labels = synthetic_digits(300)
    kaggle.write_kaggle_csv(tmp_path / "train.csv", images, labels)
    with pytest.raises(DigitlabError, match="test split"):
        train_ensemble(TrainConfig(data=str(tmp_path / "train.csv"), out=str(tmp_path / "ens"), epochs=1,
                                   val_size=30, quiet=True), members=2)
    assert not (tmp_path / "ens").exists()  # no member was trained
