"""ONNX and TorchScript exports compute what the PyTorch model computes, on all 10,000 MNIST test digits."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from digitlab.cli import main
from digitlab.data import load
from digitlab.engine import OnnxEngine, TorchEngine, load_engine
from digitlab.export import export, export_onnx_cached
from digitlab.models import ARCHS, build, load_model, save_model

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.mnist


@pytest.fixture(scope="module")
def test_digits() -> torch.Tensor:
    digits = load(ROOT / "data" / "mnist", "test")
    assert digits is not None and len(digits) == 10_000
    return digits.images


@pytest.fixture(scope="module")
def torch_logits(real_model: Path, test_digits: torch.Tensor) -> torch.Tensor:
    model, _ = load_model(real_model)
    return TorchEngine(model).logits(test_digits)


def assert_agree(logits: torch.Tensor, reference: torch.Tensor, tolerance: float) -> None:
    assert logits.shape == reference.shape == (10_000, 10)
    worst = (logits - reference).abs().max().item()
    assert worst < tolerance, f"max |delta logit| = {worst:.2e}"
    assert torch.equal(logits.argmax(1), reference.argmax(1))


def test_onnx_runtime_agrees_with_torch_on_all_test_digits(real_model: Path, tmp_path: Path,
                                                           test_digits: torch.Tensor,
                                                           torch_logits: torch.Tensor) -> None:
    path = export(real_model, "onnx", tmp_path / "model.onnx")
    assert_agree(OnnxEngine(path).logits(test_digits), torch_logits, 1e-4)


def test_onnx_engine_of_predict_agrees_and_is_cached(real_model: Path, test_digits: torch.Tensor,
                                                     torch_logits: torch.Tensor) -> None:
    engine = load_engine(real_model, "onnx")  # exported on the fly into $DIGITLAB_CACHE (a temp dir here)
    assert isinstance(engine, OnnxEngine)
    assert_agree(engine.logits(test_digits), torch_logits, 1e-4)
    cached = export_onnx_cached(real_model)
    assert cached.is_relative_to(os.environ["DIGITLAB_CACHE"])
    stamp = cached.stat().st_mtime_ns
    assert export_onnx_cached(real_model) == cached and cached.stat().st_mtime_ns == stamp  # reused


def test_onnx_file_is_valid_and_has_a_dynamic_batch_axis(real_model: Path, tmp_path: Path) -> None:
    import onnx

    path = export(real_model, "onnx", tmp_path / "model.onnx")
    graph = onnx.load(str(path))
    onnx.checker.check_model(graph)
    assert [i.name for i in graph.graph.input] == ["image"]
    assert [o.name for o in graph.graph.output] == ["logits"]
    session = OnnxEngine(path).session  # the raw session: any batch size in one call, not the engine's chunks
    for batch in (1, 7, 300):
        assert session.run(None, {"image": np.random.rand(batch, 1, 28, 28).astype(np.float32)})[0].shape == \
            (batch, 10)


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
def test_torchscript_loads_and_agrees(real_model: Path, tmp_path: Path, test_digits: torch.Tensor,
                                      torch_logits: torch.Tensor) -> None:
    path = export(real_model, "torchscript", tmp_path / "model.pt")
    scripted = torch.jit.load(str(path))
    assert_agree(TorchEngine(scripted).logits(test_digits), torch_logits, 1e-4)


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_cli_export_writes_a_loadable_file(real_model: Path, tmp_path: Path, fmt: str,
                                           capsys: pytest.CaptureFixture) -> None:
    output = tmp_path / "new" / "folder" / f"model.{fmt}"  # missing folders are created
    assert main(["export", "--model", str(real_model), "--format", fmt, "--output", str(output)]) == 0
    assert output.is_file() and str(output) in capsys.readouterr().err
    images = torch.randint(0, 256, (2, 28, 28), dtype=torch.uint8)
    expected = TorchEngine(load_model(real_model)[0]).logits(images)
    engine = OnnxEngine(output) if fmt == "onnx" else TorchEngine(torch.jit.load(str(output)))
    np.testing.assert_allclose(engine.logits(images).numpy(), expected.numpy(), atol=1e-4)


def test_cli_export_to_an_unwritable_place_is_an_error(real_model: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    for output in (a_file / "model.onnx", a_file / "deeper" / "model.onnx", tmp_path):
        assert main(["export", "--model", str(real_model), "--output", str(output)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1, err
    assert a_file.read_text() == "not a folder"
    assert sorted(tmp_path.iterdir()) == [a_file]  # nothing left behind


def test_cli_export_to_a_missing_root_is_an_error(real_model: Path, capsys: pytest.CaptureFixture) -> None:
    # /proc refuses new folders even to root, so this fails wherever the tests run.
    if not Path("/proc/self").exists():
        pytest.skip("needs Linux /proc")
    assert main(["export", "--model", str(real_model), "--output", "/proc/digitlab-no-such/model.onnx"]) == 2
    assert capsys.readouterr().err.startswith("error: ")


def test_cli_export_bad_model_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"these are not weights")
    for model in (tmp_path / "missing", garbage):
        assert main(["export", "--model", str(model), "--output", str(tmp_path / "out.onnx")]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and str(model) in err
    assert not (tmp_path / "out.onnx").exists()


@pytest.mark.parametrize("arch", list(ARCHS))
def test_every_arch_exports_to_onnx(arch: str, tmp_path: Path) -> None:
    # Untrained weights, but with BatchNorm statistics that are not the defaults, so eval-mode BN is exercised.
    torch.manual_seed(0)
    model = build(arch)
    model.train()
    with torch.no_grad():
        model(torch.rand(64, 1, 28, 28))
    save_model(model, {"arch": arch}, tmp_path)
    path = export(tmp_path / "model.safetensors", "onnx", tmp_path / "model.onnx")
    images = torch.randint(0, 256, (5, 28, 28), dtype=torch.uint8)
    expected = TorchEngine(load_model(tmp_path / "model.safetensors")[0]).logits(images)
    np.testing.assert_allclose(OnnxEngine(path).logits(images).numpy(), expected.numpy(), atol=1e-4)
