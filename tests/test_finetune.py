"""`digitlab train --init MODEL --data DIR`: fine-tuning on a small labelled folder (issue 13, part 2).

Quick settings throughout (the tutorial CNN, a few steps, small replay and evaluation subsets); whether it
meets its accuracy and time targets is benchmarks/finetune_personal.py's job.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from digitlab.data import load
from digitlab.data.images import save_png
from digitlab.finetune import FinetuneConfig, finetune, holdout_split, split_head
from digitlab.models import load_model, save_model
from tests.conftest import MNIST

QUICK = ["--steps", "5", "--replay-limit", "300", "--eval-limit", "300"]


def run_cli(*args: str, mnist: bool = True, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if mnist:
        env["DIGITLAB_DATA"] = str(MNIST)  # replay and the MNIST measurement; the test cache has none
    return subprocess.run([sys.executable, "-m", "digitlab", *args], capture_output=True, text=True, env=env,
                          timeout=300, cwd=cwd)


def assert_one_line_error(result: subprocess.CompletedProcess, fragment: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], result.stderr


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A personal folder as the page saves it: DIR/<digit>/<id>.png, 4 of each digit (MNIST test digits)."""
    folder = tmp_path_factory.mktemp("samples")
    test = load(MNIST, "test")
    for digit in range(10):
        for k, i in enumerate((test.labels == digit).nonzero().flatten()[:4].tolist()):
            save_png(folder / str(digit) / f"s{k}.png", test.images[i].numpy())
    return folder


def test_holdout_keeps_a_share_of_every_digit() -> None:
    labels = torch.tensor([0] * 8 + [1] * 4 + [2] * 2 + [3])
    train, held = holdout_split(labels, 0.25, seed=0)
    assert sorted(torch.cat([train, held]).tolist()) == list(range(len(labels)))  # a partition
    assert [int((labels[held] == d).sum()) for d in range(4)] == [2, 1, 1, 0]  # a lone 3 is trained on
    assert torch.equal(holdout_split(labels, 0.25, seed=0)[1], held)  # seeded
    assert not torch.equal(holdout_split(labels, 0.25, seed=1)[1], held)


@pytest.mark.parametrize("arch", ["tutorial", "strong"])
def test_the_head_is_what_follows_the_frozen_part(arch: str) -> None:
    model = load_model(arch)[0]
    frozen, head = split_head(model)
    x = load(MNIST, "test").images[:8].unsqueeze(1).float() / 255
    with torch.no_grad():
        torch.testing.assert_close(head(frozen(x)), model(x))


@pytest.mark.mnist
def test_fine_tuned_folder_is_an_ordinary_model(samples: Path, tmp_path: Path) -> None:
    out = tmp_path / "mine"
    done = run_cli("train", "--init", "tutorial", "--data", str(samples), "--out", str(out), "--seed", "3", *QUICK)
    assert done.returncode == 0, done.stderr
    assert "your held-out samples (10)" in done.stdout and "MNIST test (300)" in done.stdout
    meta = json.loads((out / "model.json").read_text())
    assert meta["arch"] == "tutorial" and meta["training"]["seed"] == 3 and meta["training"]["init"] == "tutorial"
    assert meta["training"]["command"].startswith("digitlab train --init tutorial")
    metrics = meta["metrics"]
    assert metrics["train_samples"] == 30 and metrics["personal_n"] == 10 and metrics["mnist_n"] == 300
    # The shipped weights were the start: MNIST is read well before any step (a random init reads ~10%).
    assert metrics["mnist_before"] > 0.9 and metrics["mnist_after"] > 0.9
    tuned, initial = load_model(out)[0].state_dict(), load_model("tutorial")[0].state_dict()
    assert torch.equal(tuned["conv1.0.weight"], initial["conv1.0.weight"])  # frozen
    assert not torch.equal(tuned["out.weight"], initial["out.weight"])      # trained
    # Other commands take the folder.
    predicted = run_cli("predict", str(samples / "7"), "--model", str(out))
    assert predicted.returncode == 0, predicted.stderr
    assert len(predicted.stdout.splitlines()[1:]) == 4  # a header line, then one line per image
    evaluated = run_cli("evaluate", "--model", str(out), "--data", str(samples), "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads(evaluated.stdout)["n"] == 40


@pytest.mark.mnist
def test_calibration_temperature_travels_with_the_model(samples: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    model, meta = load_model("tutorial")
    save_model(model, {**meta, "temperature": 1.7}, tmp_path / "calibrated")
    monkeypatch.setenv("DIGITLAB_DATA", str(MNIST))
    result = finetune(FinetuneConfig(init=str(tmp_path / "calibrated"), data=str(samples), out=str(tmp_path / "o"),
                                     steps=2, replay_limit=100, eval_limit=100, quiet=True))
    meta = json.loads((tmp_path / "o" / "model.json").read_text())
    assert meta["temperature"] == 1.7 and meta["metrics"]["personal_after"] == result["personal_after"]


def test_bad_init_or_data_exit_2_and_write_nothing(samples: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert_one_line_error(run_cli("train", "--init", "no-such-model", "--data", str(samples), "--out", str(out)),
                          "no-such-model")
    (tmp_path / "empty").mkdir()
    assert_one_line_error(run_cli("train", "--init", "tutorial", "--data", str(tmp_path / "empty"),
                                  "--out", str(out)), "empty")
    # No MNIST to replay (no ./data/mnist there, and the test's mirrors are unreachable): refused before training.
    # (pooch reports its download attempt on a line of its own before the error.)
    done = run_cli("train", "--init", "tutorial", "--data", str(samples), "--out", str(out), mnist=False, cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("error: could not download"), done.stderr
    assert not out.exists()
