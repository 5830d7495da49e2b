"""Image uploads decoded in worker processes (serve/processes.py), as `digitlab serve` does by default: the
same answers as decoding in threads, errors that cross the process boundary intact, a dead decoder replaced,
and no process left behind when the server stops."""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from digitlab.serve.app import create_app
from digitlab.serve.server import running

pytestmark = pytest.mark.mnist


def png(array: np.ndarray, side: int = 280) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).resize((side, side), Image.Resampling.BILINEAR).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def uploads(mnist_test: tuple) -> list[bytes]:
    return [png(image.numpy()) for image in mnist_test[0][:6]]


def ask(url: str, uploads: list[bytes]) -> list[tuple[int, dict]]:
    """Every way an image file reaches the API: one upload, a raw body, a batch, and a file that is no image."""
    with httpx.Client(base_url=url, timeout=30) as client:
        answers = [client.post("/api/predict", files={"file": ("a.png", data, "image/png")}) for data in uploads]
        answers.append(client.post("/api/predict", content=uploads[0], headers={"content-type": "image/png"}))
        answers.append(client.post("/api/predict/batch",
                                   files=[("files", (f"{i}.png", d, "image/png")) for i, d in enumerate(uploads)]))
        answers.append(client.post("/api/predict", files={"file": ("notes.txt", b"not an image", "text/plain")}))
        answers.append(client.post("/api/predict/batch", files=[("files", ("ok.png", uploads[0], "image/png")),
                                                                ("files", ("empty.png", b"", "image/png"))]))
    return [(r.status_code, r.json()) for r in answers]


def test_processes_answer_exactly_as_threads_do(real_model: Path, uploads: list[bytes]) -> None:
    threaded = create_app(real_model, "onnx")
    pooled = create_app(real_model, "onnx", decode_processes=2)
    pooled.state.decoder.start()
    with running(threaded) as url:
        expected = ask(url, uploads)
    with running(pooled) as url:
        got = ask(url, uploads)
    assert pooled.state.decoder._pool is None  # closed with the server
    assert [status for status, _ in got] == [200] * 8 + [400, 400]
    assert got == expected
    assert "notes.txt" in got[-2][1]["error"] and "empty.png" in got[-1][1]["error"]


def test_a_dead_decoding_process_costs_one_503_and_is_replaced(real_model: Path, uploads: list[bytes]) -> None:
    app = create_app(real_model, "onnx", decode_processes=1)
    with running(app) as url, httpx.Client(base_url=url, timeout=60) as client:
        def post() -> httpx.Response:
            return client.post("/api/predict", files={"file": ("a.png", uploads[0], "image/png")})

        assert post().status_code == 200
        for pid in list(app.state.decoder._pool._processes):
            os.kill(pid, signal.SIGKILL)
        time.sleep(0.5)
        broken = post()
        assert broken.status_code == 503 and "retry" in broken.json()["error"]
        assert post().status_code == 200


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc to find the decoding processes")
def test_digitlab_serve_decodes_in_processes_and_takes_them_down_on_ctrl_c(uploads: list[bytes]) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "digitlab", "serve", "--model", "tutorial", "--port", str(port),
                               "--no-feedback", "--decode-processes", "2"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, server.stderr.read()
            time.sleep(0.2)
        answer = httpx.post(f"http://127.0.0.1:{port}/api/predict", timeout=30,
                            files={"file": ("a.png", uploads[0], "image/png")})
        assert answer.status_code == 200 and answer.json()["label"] == 7  # MNIST's first test digit
        helpers = [pid for pid in children(server.pid) if alive(pid)]
        assert len(helpers) >= 2  # the two decoding processes (and the spawn machinery's tracker)
        server.send_signal(signal.SIGINT)
        assert server.wait(30) in (0, 130)  # 130: "error: interrupted", the usual code for Ctrl-C
        time.sleep(0.5)
        assert not [pid for pid in helpers if alive(pid)]
        assert "Traceback" not in server.stderr.read()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def test_the_backlog_answers_503_past_max_pending_and_frees_its_slots() -> None:
    """One bound for the model's threads and the decoding processes alike (serve/runner.py's Backlog)."""
    from contextlib import ExitStack

    from digitlab.serve.errors import ApiError
    from digitlab.serve.limits import MAX_PENDING
    from digitlab.serve.runner import Backlog

    backlog = Backlog()
    with ExitStack() as held:
        for _ in range(MAX_PENDING):
            held.enter_context(backlog.slot())
        with pytest.raises(ApiError) as refused, backlog.slot():
            pass
        assert refused.value.status == 503 and "busy" in refused.value.message
    assert backlog.waiting == 0
    with backlog.slot():
        assert backlog.waiting == 1
