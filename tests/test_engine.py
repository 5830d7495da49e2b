"""digitlab.engine: torch, ONNX Runtime and ensembles behind one `logits(uint8 N x 28 x 28)`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from digitlab.engine import EnsembleEngine, OnnxEngine, TorchEngine, load_engine
from digitlab.errors import DigitlabError
from digitlab.export import export
from digitlab.models import build, load_model, load_models

pytestmark = pytest.mark.mnist


@pytest.fixture(scope="module")
def digits(mnist_test: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    return mnist_test[0][:600]  # more than one chunk of 256


def test_torch_and_onnx_engines_agree_on_tensors_and_arrays(digits: torch.Tensor) -> None:
    torch_engine, onnx_engine = load_engine("tutorial", "torch"), load_engine("tutorial", "onnx")
    assert (type(torch_engine), type(onnx_engine)) == (TorchEngine, OnnxEngine)
    assert (torch_engine.name, onnx_engine.name) == ("torch", "onnx")
    expected = torch_engine.logits(digits)
    assert expected.shape == (600, 10) and expected.dtype == torch.float32
    for engine in (torch_engine, onnx_engine):
        torch.testing.assert_close(engine.logits(digits), expected, atol=1e-4, rtol=0)
        torch.testing.assert_close(engine.logits(digits.numpy()), expected, atol=1e-4, rtol=0)
        torch.testing.assert_close(engine.probabilities(digits), expected.softmax(1), atol=1e-5, rtol=0)
        assert engine.logits(digits[:0]).shape == (0, 10)


def test_torch_engine_runs_a_model_in_training_in_eval_mode_and_gives_it_back(digits: torch.Tensor) -> None:
    # The way training's own evaluation can use it: a module in training mode, with dropout and BatchNorm.
    torch.manual_seed(0)
    model = build("strong")
    model.train()
    model(torch.rand(64, 1, 28, 28))  # moves BatchNorm's running statistics off their defaults
    logits = TorchEngine(model).logits(digits[:32])
    assert model.training  # back in training mode
    model.eval()
    torch.testing.assert_close(logits, TorchEngine(model).logits(digits[:32]))  # deterministic, i.e. eval mode
    assert not model.training


def test_ensembles_average_probabilities_on_either_engine(tiny_model: Path, digits: torch.Tensor) -> None:
    members = [tiny_model, "tutorial"]
    alone = [load_engine(m, "torch").probabilities(digits) for m in members]
    expected = (alone[0] + alone[1]) / 2
    for name in ("torch", "onnx"):
        ensemble = load_engine(members, name)
        assert isinstance(ensemble, EnsembleEngine) and ensemble.name == name
        torch.testing.assert_close(ensemble.probabilities(digits), expected, atol=1e-5, rtol=0)
    # The same vote as the models package's Ensemble module, which training uses.
    module, _ = load_models(members)
    torch.testing.assert_close(TorchEngine(module).probabilities(digits), expected, atol=1e-5, rtol=0)


def test_auto_engine_is_onnx_for_one_model_on_a_cpu_and_torch_otherwise() -> None:
    assert load_engine("tutorial", "auto").name == "onnx"
    assert load_engine(["tutorial", "tutorial"], "auto").name == "torch"


def test_bad_engines_and_models_are_digitlab_errors(tmp_path: Path) -> None:
    onnx_file = export("tutorial", "onnx", tmp_path / "model.onnx")
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model")
    cases = [(("tutorial", "tensorrt"), "unknown engine"), ((str(onnx_file), "torch"), "needs --engine onnx"),
             ((str(tmp_path / "missing.onnx"), "onnx"), "no such file"),
             ((str(garbage), "onnx"), "not a loadable ONNX model")]
    for args, words in cases:
        with pytest.raises(DigitlabError, match=words):
            load_engine(*args)
    np.testing.assert_allclose(OnnxEngine(onnx_file).logits(np.zeros((1, 28, 28), np.uint8)).numpy(),
                               TorchEngine(load_model("tutorial")[0]).logits(np.zeros((1, 28, 28), np.uint8)).numpy(),
                               atol=1e-4)


def test_onnx_runtime_uses_as_many_threads_as_torch(tmp_path: Path) -> None:
    """`digitlab serve` gives torch one thread per call; ONNX Runtime's default (a spinning thread per core)
    doubled the server's CPU per request (benchmarks/serve_load.py): a session follows torch's count."""
    path = export("tutorial", "onnx", tmp_path / "m.onnx")
    before = torch.get_num_threads()
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            assert OnnxEngine(path).session.get_session_options().intra_op_num_threads == threads
    finally:
        torch.set_num_threads(before)
