"""Honest confidence: temperature fitting, ECE, the stored temperature in every engine, `digitlab calibrate`,
and `evaluate`'s ECE and reliability diagram."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from digitlab import calibrate
from digitlab.data.idx import FILES, write_idx
from digitlab.engine import EnsembleEngine, load_engine
from digitlab.errors import DigitlabError
from digitlab.models import build, load_models, save_model
from tests.conftest import MNIST


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "digitlab", *args], capture_output=True, text=True, timeout=300)


def sampled(n: int, scale: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits z and labels drawn from softmax(z) itself: softmax(z) is exactly calibrated for these labels."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, 10, generator=g, dtype=torch.float64) * scale
    labels = torch.multinomial(z.softmax(1), 1, generator=g).squeeze(1)
    return z, labels


@pytest.mark.parametrize("true_t", [0.4, 2.5])
def test_fit_temperature_recovers_a_known_temperature(true_t: float) -> None:
    z, labels = sampled(20_000, 3.0)
    # A model whose logits are z * true_t: dividing them by true_t gives back the calibrated softmax(z).
    fitted = calibrate.fit_temperature(z * true_t, labels)
    assert fitted == pytest.approx(true_t, rel=0.04)
    assert calibrate.nll(z * true_t, labels, fitted) < calibrate.nll(z * true_t, labels)


def test_ece_is_near_zero_when_calibrated_and_large_when_overconfident() -> None:
    z, labels = sampled(20_000, 3.0)
    assert calibrate.ece(z.softmax(1), labels) < 0.015
    overconfident = (z * 3).softmax(1)
    assert calibrate.ece(overconfident, labels) > 0.1
    diagram = calibrate.reliability(overconfident, labels)
    assert sum(diagram["count"]) == 20_000 and len(diagram["edges"]) == calibrate.BINS + 1
    assert diagram["mean_confidence"] > diagram["accuracy_all"] + 0.1
    # Every prediction right, every confidence 1: nothing to correct.
    assert calibrate.ece(torch.eye(10), torch.arange(10)) == 0
    with pytest.raises(ValueError):
        calibrate.ece(torch.zeros(0, 10), torch.zeros(0, dtype=torch.int64))


def test_fit_keeps_t_1_when_the_fit_would_raise_the_ece() -> None:
    z, labels = sampled(20_000, 3.0)
    record = calibrate.fit(z * 2.0, labels, "synthetic")
    assert record["temperature"] == pytest.approx(2.0, rel=0.04) and record["ece_after"] < record["ece_before"]
    assert record["nll_after"] < record["nll_before"] and record["n"] == 20_000
    # Two groups in one confidence bin, one over- and one under-confident: the bin's mean confidence is its
    # accuracy (ECE 0 at T = 1), but the NLL-optimal T moves both groups the same way and opens a gap.
    confidence = torch.tensor([0.81] * 100 + [0.86] * 100, dtype=torch.float64)
    logits = torch.stack([torch.logit(confidence), torch.zeros(200, dtype=torch.float64)], 1)
    labels = torch.ones(200, dtype=torch.int64)
    labels[:76] = 0
    labels[100:191] = 0
    record = calibrate.fit(logits, labels, "two groups")
    assert record["ece_before"] < 1e-9 and abs(record["fitted_temperature"] - 1) > 0.01
    assert record["ece_fitted"] > 1e-3
    assert calibrate.nll(logits, labels, record["fitted_temperature"]) < record["nll_before"]
    assert record["temperature"] == 1.0 and record["ece_after"] == record["ece_before"]


def model_folder(folder: Path, temperature: float | None, val_size: int = 0) -> Path:
    torch.manual_seed(0)
    meta = {"arch": "tutorial", "training": {"val_size": val_size, "seed": 0, "data": str(MNIST)}}
    save_model(build("tutorial"), meta, folder)
    if temperature is not None:
        calibrate.store(folder, {"temperature": temperature})
    return folder


def test_every_engine_applies_the_temperature_in_model_json(tmp_path: Path) -> None:
    hot, plain = model_folder(tmp_path / "hot", 3.0), model_folder(tmp_path / "plain", None)
    digits = torch.randint(0, 256, (40, 28, 28), dtype=torch.uint8)
    for name in ("torch", "onnx"):
        engine = load_engine(hot, name)
        assert engine.temperature == 3.0 and load_engine(plain, name).temperature == 1.0
        logits = engine.logits(digits)
        torch.testing.assert_close(engine.probabilities(digits), (logits / 3).softmax(1), atol=1e-5, rtol=0)
        calibrated, raw = engine.both_probabilities(digits)
        torch.testing.assert_close(raw, logits.softmax(1), atol=1e-5, rtol=0)
    # An ensemble averages its members' calibrated probabilities, as the models package's Ensemble does.
    ensemble = load_engine([hot, plain], "torch")
    assert isinstance(ensemble, EnsembleEngine)
    expected = (load_engine(hot, "torch").probabilities(digits) + load_engine(plain, "torch").probabilities(digits)) / 2
    torch.testing.assert_close(ensemble.probabilities(digits), expected, atol=1e-5, rtol=0)
    module, _ = load_models([hot, plain])
    torch.testing.assert_close(module(digits.unsqueeze(1).float() / 255).exp(), expected, atol=1e-5, rtol=0)
    # A hand-edited temperature that is not a positive number is bad input, not a crash.
    meta = json.loads((hot / "model.json").read_text())
    meta["calibration"]["temperature"] = -1
    (hot / "model.json").write_text(json.dumps(meta))
    with pytest.raises(DigitlabError, match="positive number"):
        load_engine(hot, "torch")


@pytest.mark.mnist
def test_train_calibrates_and_digitlab_calibrate_rebuilds_the_same_validation_split(tiny_model: Path,
                                                                                  tmp_path: Path) -> None:
    trained = json.loads((tiny_model / "model.json").read_text())["calibration"]
    assert trained["n"] == 500 and trained["nll_after"] <= trained["nll_before"]
    folder = shutil.copytree(tiny_model, tmp_path / "model")
    meta = json.loads((folder / "model.json").read_text())
    del meta["calibration"]
    (folder / "model.json").write_text(json.dumps(meta))
    result = run_cli("calibrate", "--model", str(folder), "--json")
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    stored = json.loads((folder / "model.json").read_text())["calibration"]
    assert stored["temperature"] == printed["temperature"] and stored["n"] == 500
    # The same 500 held-out digits as training used (a different split would fit a different T).
    assert stored["fitted_temperature"] == pytest.approx(trained["fitted_temperature"], abs=2e-3)
    assert load_engine(folder, "onnx").temperature == stored["temperature"]


def test_calibrate_without_a_split_or_data_is_one_line_exit_2(tmp_path: Path, synthetic_idx: Path) -> None:
    folder = model_folder(tmp_path / "all-data", None, val_size=0)
    result = run_cli("calibrate", "--model", str(folder))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "--data" in lines[0], result.stderr
    assert "calibration" not in json.loads((folder / "model.json").read_text())
    result = run_cli("calibrate", "--model", str(folder), "--data", str(synthetic_idx), "--engine", "torch")
    assert result.returncode == 0, result.stderr
    stored = json.loads((folder / "model.json").read_text())["calibration"]
    assert stored["n"] == 600 and stored["temperature"] > 0


@pytest.mark.mnist
def test_evaluate_reports_ece_and_writes_the_reliability_diagram(tiny_model: Path, tmp_path: Path) -> None:
    from digitlab.data import load

    test = load(MNIST, "test")
    images, labels = FILES["test"]
    write_idx(tmp_path / "data" / f"{images}.gz", test.images[:1000].numpy())
    write_idx(tmp_path / "data" / f"{labels}.gz", test.labels[:1000].numpy().astype(np.uint8))
    folder = model_folder(tmp_path / "hot", 0.5)
    shutil.copy(tiny_model / "model.safetensors", folder / "model.safetensors")
    png = tmp_path / "out" / "reliability.png"
    result = run_cli("evaluate", "--model", str(folder), "--data", str(tmp_path / "data"), "--json",
                     "--reliability", str(png))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["temperature"] == 0.5 and report["n"] == 1000 and report["accuracy"] > 0.85
    assert 0 <= report["ece"] <= 1 and 0 <= report["ece_uncalibrated"] <= 1
    assert report["ece"] != report["ece_uncalibrated"]
    # T = 0.5 sharpens every answer: the calibrated confidence is higher than the raw one.
    assert report["mean_confidence"] > report["reliability_uncalibrated"]["mean_confidence"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
