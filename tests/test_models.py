"""The model registry and the safetensors weights format."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from digitlab.errors import DigitlabError
from digitlab.models import ARCHS, build, count_parameters, load_model, save_model


def test_tutorial_cnn_is_exactly_the_tutorials() -> None:
    model = build("tutorial")
    assert count_parameters(model) == 28_938
    conv1, conv2 = model.conv1[0], model.conv2[0]
    assert (conv1.in_channels, conv1.out_channels, conv1.kernel_size, conv1.stride, conv1.padding) == \
        (1, 16, (5, 5), (1, 1), (2, 2))
    assert (conv2.in_channels, conv2.out_channels, conv2.kernel_size, conv2.padding) == (16, 32, (5, 5), (2, 2))
    assert model.out.in_features == 32 * 7 * 7 and model.out.out_features == 10


@pytest.mark.parametrize("arch", list(ARCHS))
def test_every_arch_has_a_recipe_that_fills_every_option(arch: str) -> None:
    from dataclasses import astuple

    from digitlab.config import TrainConfig, fill
    from digitlab.models import REGISTRY

    cfg = fill(TrainConfig(arch=arch), REGISTRY[arch].recipe)
    assert None not in astuple(cfg)[2:-4]  # everything from epochs to handwriting
    assert cfg.epochs == REGISTRY[arch].recipe.epochs


@pytest.mark.parametrize("arch", list(ARCHS))
def test_every_arch_maps_digits_to_ten_logits(arch: str) -> None:
    assert build(arch).eval()(torch.rand(3, 1, 28, 28)).shape == (3, 10)


def test_save_load_round_trip(tmp_path: Path) -> None:
    model = build("tutorial")
    save_model(model, {"arch": "tutorial", "note": "x"}, tmp_path)
    loaded, meta = load_model(tmp_path)
    assert meta["note"] == "x" and json.loads((tmp_path / "model.json").read_text())["arch"] == "tutorial"
    x = torch.rand(4, 1, 28, 28)
    assert torch.equal(loaded(x), model.eval()(x))
    assert float(loaded.norm.mean) == pytest.approx(0.1307)  # normalisation travels with the weights


def test_foreign_and_mismatched_weights_are_refused(tmp_path: Path) -> None:
    (tmp_path / "junk.safetensors").write_bytes(b"not safetensors at all")
    with pytest.raises(DigitlabError, match="not a safetensors"):
        load_model(tmp_path / "junk.safetensors")
    save_file({"w": torch.zeros(3)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(DigitlabError, match="not a digitlab model"):
        load_model(tmp_path / "other.safetensors")
    # Our metadata, but the tensors of another architecture.
    save_model(build("fast"), {"arch": "tutorial"}, tmp_path / "mixed")
    with pytest.raises(DigitlabError, match="do not match"):
        load_model(tmp_path / "mixed")
    # Right names, wrong shapes.
    state = {k: v.clone() for k, v in build("tutorial").state_dict().items()}
    state["out.weight"] = torch.zeros(10, 100)
    meta = {"digitlab": json.dumps({"format": "digitlab/1", "arch": "tutorial"})}
    save_file(state, str(tmp_path / "shape.safetensors"), metadata=meta)
    with pytest.raises(DigitlabError, match="shape"):
        load_model(tmp_path / "shape.safetensors")
    with pytest.raises(DigitlabError, match="no such model"):
        load_model(tmp_path / "missing")
