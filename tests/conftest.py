"""Shared fixtures: the repository's MNIST copy, small synthetic digit sets, a quickly trained model."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
MNIST = ROOT / "data" / "mnist"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may read or fill the user's real cache, or reach a real mirror."""
    cache = tmp_path_factory.getbasetemp() / "digitlab-cache"
    monkeypatch.setenv("DIGITLAB_CACHE", str(cache))
    monkeypatch.setenv("DIGITLAB_MNIST_MIRRORS", "http://127.0.0.1:9/")
    monkeypatch.delenv("DIGITLAB_DATA", raising=False)


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    return MNIST


@pytest.fixture(scope="session")
def mnist_test() -> tuple[torch.Tensor, torch.Tensor]:
    from digitlab.data.idx import load_idx_split

    return load_idx_split(MNIST, "test")


def synthetic_digits(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """n random 28x28 'digits' (blobs whose position encodes the label): learnable, tiny, no files."""
    g = np.random.default_rng(seed)
    labels = g.integers(0, 10, n)
    images = np.zeros((n, 28, 28), dtype=np.uint8)
    for i, label in enumerate(labels):
        row, col = 4 + (label // 5) * 12, 3 + (label % 5) * 5
        images[i, row : row + 8, col : col + 4] = g.integers(150, 256)
    return torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64))


@pytest.fixture
def synthetic_idx(tmp_path: Path) -> Path:
    """An MNIST-layout folder (train 600 / test 200) of synthetic digits."""
    from digitlab.data.idx import write_idx

    for split, n, seed in (("train", 600, 0), ("test", 200, 1)):
        images, labels = synthetic_digits(n, seed)
        stem_images, stem_labels = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
                                    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}[split]
        write_idx(tmp_path / f"{stem_images}.gz", images.numpy())
        write_idx(tmp_path / f"{stem_labels}.gz", labels.numpy().astype(np.uint8))
    return tmp_path


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tutorial CNN trained for a few seconds on 6,000 real MNIST digits (~95%): a real model, quickly."""
    from digitlab.train import TrainConfig, train

    out = tmp_path_factory.mktemp("tiny-model")
    os.environ.setdefault("DIGITLAB_CACHE", str(out / "cache"))
    train(TrainConfig(data=str(MNIST), out=str(out), epochs=1, limit=6000, val_size=500, quiet=True))
    return out


# ------------------------------------------------------------- the web app (tests/test_serve_api.py, ...)


@pytest.fixture(scope="session")
def real_model(request: pytest.FixtureRequest) -> Path:
    """A model that reads digits well: the shipped weights when present (always, in CI), else `tiny_model`."""
    from digitlab.models import shipped_weights

    shipped = shipped_weights()
    return shipped if shipped.is_file() else request.getfixturevalue("tiny_model")


@pytest.fixture(scope="session")
def api_server(real_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of the app for `real_model`, served by a real uvicorn on a free port in a background thread.

    Its body timeout is 2 s (15 s in `digitlab serve`) so that the slow-client test finishes quickly; its
    feedback folder is a temporary one, so that /api/feedback is exercised (schemathesis) like the rest; image
    uploads are decoded in two processes, as `digitlab serve` does.
    """
    from digitlab.serve.app import create_app
    from digitlab.serve.server import running

    feedback = tmp_path_factory.mktemp("api-feedback")
    # Uploads decoded in two processes, as `digitlab serve` does (serve/processes.py).
    app = create_app(real_model, body_timeout=2.0, feedback=feedback, decode_processes=2)
    app.state.decoder.start()  # before any request, as `digitlab serve` does: spawning takes a second or two
    with running(app) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Debian's Chromium, never a downloaded one, driven by Playwright: one per browser test module."""
    from playwright import sync_api

    from tests.test_browser import CHROMIUM, CHROMIUM_ARGS

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()
