"""The shipped model: loads with no --model, is accurate on MNIST and on photographed-style digit images."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from digitlab.data import images
from digitlab.models import load_model, shipped_weights
from digitlab.predict import predict_proba
from tests.test_data import as_jpeg, photographed

pytestmark = pytest.mark.skipif(not shipped_weights("tutorial").is_file(), reason="run `make weights-tutorial`")


@pytest.mark.mnist
def test_shipped_model_on_mnist_test(mnist_test: tuple[torch.Tensor, torch.Tensor]) -> None:
    model, meta = load_model("tutorial")
    predicted = predict_proba(model, mnist_test[0]).argmax(1)
    accuracy = (predicted == mnist_test[1]).float().mean().item()
    assert accuracy >= 0.99
    assert accuracy == pytest.approx(meta["metrics"]["test_accuracy"], abs=1e-4)  # model.json tells the truth


@pytest.mark.mnist
def test_shipped_model_reads_photographed_digits(mnist_test: tuple[torch.Tensor, torch.Tensor]) -> None:
    """Dark ink on light, unevenly lit paper; the digit small and off-centre; saved as JPEG. >= 98% right."""
    pixels, labels = mnist_test
    g = np.random.default_rng(0)
    pick = g.choice(len(pixels), 500, replace=False)
    prepared = np.stack([
        images.to_mnist(images.open_image(as_jpeg(photographed(pixels[i].numpy(), int(i)), quality=75)))
        for i in pick
    ])
    model, _ = load_model("tutorial")
    predicted = predict_proba(model, torch.from_numpy(prepared)).argmax(1)
    accuracy = (predicted == labels[pick]).float().mean().item()
    assert accuracy >= 0.98, accuracy


def test_default_model_is_the_best_shipped_one() -> None:
    _, meta = load_model()
    shipped = [load_model(name)[1] for name in ("tutorial", "strong") if shipped_weights(name).is_file()]
    assert meta["metrics"]["test_accuracy"] == max(m["metrics"]["test_accuracy"] for m in shipped)


@pytest.mark.mnist
def test_ensemble_of_models_averages_their_probabilities(tiny_model, mnist_test: tuple[torch.Tensor, torch.Tensor]
                                                         ) -> None:
    from digitlab.models import load_models

    ensemble, meta = load_models([tiny_model, "tutorial"])
    assert meta["arch"] == "ensemble of 2 (tutorial, tutorial)"
    images, labels = mnist_test[0][:1000], mnist_test[1][:1000]
    members = [predict_proba(load_model(m)[0], images) for m in (tiny_model, "tutorial")]
    probs = predict_proba(ensemble, images)
    torch.testing.assert_close(probs, (members[0] + members[1]) / 2, atol=1e-5, rtol=0)
    assert (probs.argmax(1) == labels).float().mean() > 0.97
