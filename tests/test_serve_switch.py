"""Switching the served model without a restart: POST /api/model, and reloading a --model folder that changed.

Over a real socket (uvicorn in a thread, httpx) where timing matters: a request running during a switch
finishes on the old model; in-process (Starlette's TestClient) for the path rules.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch

from digitlab.engine import Engine
from digitlab.models import shipped_weights
from digitlab.serve.app import create_app
from digitlab.serve.server import running

pytestmark = [pytest.mark.mnist, pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")]


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The server's working directory, holding a run folder `runs/a` (the tutorial weights) to switch to."""
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "runs" / "a"
    run.mkdir(parents=True)
    shutil.copy(shipped_weights("tutorial"), run / "model.safetensors")
    return tmp_path


@pytest.fixture
def client(here: Path) -> Iterator:
    from fastapi.testclient import TestClient

    with TestClient(create_app("strong")) as c:
        yield c


@pytest.fixture(scope="module")
def pixels(mnist_test: tuple[torch.Tensor, torch.Tensor]) -> list[list[int]]:
    return [image.ravel().tolist() for image in mnist_test[0][:4].numpy()]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_switch_to_a_shipped_model_and_back(client, pixels) -> None:
    assert client.get("/api/model").json()["arch"] == "strong"
    before = client.post("/api/predict", json={"pixels": pixels[0]}).json()["probabilities"]
    switched = client.post("/api/model", json={"model": "tutorial"})
    assert switched.status_code == 200, switched.text
    assert switched.json()["arch"] == "tutorial" == client.get("/api/model").json()["arch"]
    assert switched.json()["sha256"] == sha256(shipped_weights("tutorial"))
    after = client.post("/api/predict", json={"pixels": pixels[0]}).json()["probabilities"]
    assert not np.allclose(before, after), "the answers must now come from the other model"
    assert client.get("/healthz").json()["arch"] == "tutorial"
    assert client.post("/api/model", json={"model": "strong"}).json()["arch"] == "strong"
    assert np.allclose(client.post("/api/predict", json={"pixels": pixels[0]}).json()["probabilities"], before)


def test_switch_to_a_run_folder_under_the_working_directory(client, here: Path) -> None:
    response = client.post("/api/model", json={"model": "runs/a"})
    assert response.status_code == 200, response.text
    info = client.get("/api/model").json()
    assert info["arch"] == "tutorial" and info["source"] == str(here / "runs" / "a")
    assert info["sha256"] == sha256(here / "runs" / "a" / "model.safetensors")
    assert client.get("/api/feedback").json()["enabled"] is False  # (this app has no feedback folder)


@pytest.mark.parametrize(("model", "status", "word"), [
    ("/etc", 403, "outside"),
    ("/etc/passwd", 403, "outside"),
    ("../", 403, "outside"),
    ("runs/../../x", 403, "outside"),
    ("link-out", 403, "outside"),
    ("~/model", 403, "outside"),
    (str(shipped_weights("tutorial")), 403, "outside"),  # a real model, but not where this server may look
    ("runs/missing", 404, "no such"),
    ("runs", 422, "model.safetensors"),
    ("notes.txt", 422, ".safetensors or .onnx"),
    ("fake.safetensors", 422, "safetensors"),
    ("", 422, "model"),
    ("run\0s/a", 422, "model"),
])
def test_a_model_the_server_may_not_or_cannot_load_is_refused_and_the_old_one_stays(
        client, here: Path, model: str, status: int, word: str) -> None:
    (here / "notes.txt").write_text("hello")
    (here / "fake.safetensors").write_bytes(b"not weights at all")
    (here / "link-out").symlink_to("/etc")
    before = client.get("/api/model").json()
    response = client.post("/api/model", json={"model": model})
    assert response.status_code == status, response.text
    assert word in response.json()["error"]
    after = client.get("/api/model").json()
    assert (after["sha256"], after["loaded_at"]) == (before["sha256"], before["loaded_at"])


@pytest.mark.parametrize("body", [{"model": 3}, {"path": "runs/a"}, {"model": "runs/a", "engine": "onnx"}, {}])
def test_a_malformed_switch_request_is_a_422(client, body: dict) -> None:
    response = client.post("/api/model", json=body)
    assert response.status_code == 422 and "error" in response.json()


def test_models_root_allows_another_folder(here: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    from fastapi.testclient import TestClient

    elsewhere = tmp_path_factory.mktemp("models")
    shutil.copy(shipped_weights("tutorial"), elsewhere / "tutorial.safetensors")
    with TestClient(create_app("strong")) as client:
        assert client.post("/api/model", json={"model": str(elsewhere / "tutorial.safetensors")}).status_code == 403
    with TestClient(create_app("strong", models_roots=[elsewhere])) as client:
        response = client.post("/api/model", json={"model": str(elsewhere / "tutorial.safetensors")})
        assert response.status_code == 200 and response.json()["arch"] == "tutorial"


class SlowEngine(Engine):
    """The served engine, answering after `delay` seconds: a request that is still running during a switch."""

    name = "torch"

    def __init__(self, inner: Engine, delay: float) -> None:
        self.inner, self.delay, self.started = inner, delay, threading.Event()
        self.temperature = inner.temperature  # the same calibrated probabilities as the engine it wraps

    def logits(self, images: np.ndarray) -> torch.Tensor:
        self.started.set()
        time.sleep(self.delay)
        return self.inner.logits(images)


def test_a_request_running_during_a_switch_finishes_on_the_old_model(here: Path, pixels) -> None:
    app = create_app("strong")
    strong = app.state.runner.engine.probabilities(np.asarray(pixels[:1], np.uint8).reshape(1, 28, 28))[0]
    slow = SlowEngine(app.state.runner.engine, 1.5)
    app.state.runner.engine = slow
    with running(app) as url, httpx.Client(base_url=url, timeout=30) as client, ThreadPoolExecutor(1) as pool:
        in_flight = pool.submit(client.post, "/api/predict", json={"pixels": pixels[0]})
        assert slow.started.wait(10)
        switched = client.post("/api/model", json={"model": "tutorial"})
        assert switched.status_code == 200 and not in_flight.done(), "the switch must not wait for requests"
        old = in_flight.result().json()["probabilities"]
        new = client.post("/api/predict", json={"pixels": pixels[0]}).json()["probabilities"]
    np.testing.assert_allclose(old, strong.numpy(), atol=1e-6)
    assert not np.allclose(new, old)


def test_requests_during_repeated_switches_are_all_answered(here: Path, pixels) -> None:
    app = create_app("strong")
    with running(app) as url, httpx.Client(base_url=url, timeout=30) as client, ThreadPoolExecutor(4) as pool:
        stop = threading.Event()

        def predict_until_stopped() -> list[int]:
            codes = []
            while not stop.is_set():
                response = client.post("/api/predict", json={"pixels": pixels[len(codes) % 4]})
                codes.append(response.status_code)
                assert abs(sum(response.json()["probabilities"]) - 1) < 1e-4
            return codes

        workers = [pool.submit(predict_until_stopped) for _ in range(3)]
        for model in ["tutorial", "runs/a", "strong", "tutorial"]:
            assert client.post("/api/model", json={"model": model}).status_code == 200
        stop.set()
        codes = [code for w in workers for code in w.result()]
        assert codes and set(codes) == {200}
        assert client.get("/api/model").json()["arch"] == "tutorial"


def test_a_changed_model_folder_is_reloaded(here: Path, pixels) -> None:
    """`serve --model runs/a`, then a training run writes new weights there: the server picks them up."""
    app = create_app("runs/a")
    app.state.switch.interval = 0.3  # 2 s in `digitlab serve`; shorter here so the test is quick
    weights = here / "runs" / "a" / "model.safetensors"
    with running(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        first = client.get("/api/model").json()
        assert first["arch"] == "tutorial"
        # As `digitlab train` writes it: a complete file renamed over the old one.
        shutil.copy(shipped_weights("strong"), here / "runs" / "a" / ".new")
        os.replace(here / "runs" / "a" / ".new", weights)
        deadline = time.monotonic() + 10
        while client.get("/api/model").json()["arch"] != "strong":
            assert time.monotonic() < deadline, "the changed folder was not reloaded"
            time.sleep(0.1)
        assert client.get("/api/model").json()["sha256"] == sha256(weights)
        # A broken file in its place: the loaded model keeps answering, and nothing else changes.
        weights.write_bytes(b"half a file")
        time.sleep(0.5)
        assert client.get("/api/model").json()["arch"] == "strong"
        assert client.post("/api/predict", json={"pixels": pixels[0]}).status_code == 200


def test_a_shipped_model_is_not_watched(here: Path) -> None:
    app = create_app("strong")
    app.state.switch.interval = 0.0
    with running(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        loaded = client.get("/api/model").json()["loaded_at"]
        time.sleep(1.1)
        assert client.get("/api/model").json()["loaded_at"] == loaded


def test_serve_passes_models_roots(monkeypatch: pytest.MonkeyPatch) -> None:
    import digitlab.serve.server as server
    from digitlab.cli import main

    seen = {}
    monkeypatch.setattr(server, "serve", lambda **kwargs: seen.update(kwargs))
    assert main(["serve", "--no-feedback", "--models-root", "a", "--models-root", "b"]) == 0
    assert seen["models_roots"] == ["a", "b"]
