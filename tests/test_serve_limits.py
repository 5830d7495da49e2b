"""Every limit of the API, over real sockets, with the two kinds of HTTP client people use.

urllib sends `Connection: close` and writes the whole body before it reads anything; httpx keeps the
connection alive. A server that answers a too-large body and closes while the body is still arriving makes
urllib see `ConnectionResetError` instead of the answer (issue 14): each limit here must reach both clients as
its documented 4xx JSON error. The server side of that (drain the rest of the body, within bounds, before
closing) is `digitlab.serve.limits.BodyGuard`; its bounds are tested at the end.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import anyio
import httpx
import numpy as np
import pytest

from digitlab.serve.limits import DRAIN_MAX_BYTES, DRAIN_TIMEOUT_S, MAX_BATCH, MAX_BODY_BYTES, BodyGuard
from tests.test_serve_api import FAST, bomb_png, png, raw_exchange

pytestmark = pytest.mark.mnist
OVER = MAX_BODY_BYTES + 2**20  # 6 MB: a phone photo a little too large
ZEROS = [0] * 784
TINY_PNG = png(np.full((8, 8), 255, np.uint8))


def multipart(parts: list[tuple[str, str | None, bytes]]) -> tuple[dict[str, str], bytes]:
    """(field, filename or None for a text field, data) -> headers and body of a multipart/form-data request."""
    boundary = uuid.uuid4().hex
    body = b""
    for field, filename, data in parts:
        disposition = f'form-data; name="{field}"' + (f'; filename="{filename}"' if filename else "")
        body += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + data + b"\r\n"
    return {"Content-Type": f"multipart/form-data; boundary={boundary}"}, body + f"--{boundary}--\r\n".encode()


def json_body(value: object) -> tuple[dict[str, str], bytes]:
    return {"Content-Type": "application/json"}, json.dumps(value).encode()


def chunks(count: int, size: int = 2**20, pause: float = 0.0) -> Callable[[], Iterator[bytes]]:
    """A body without Content-Length (sent chunked), `count` pieces of `size` bytes, `pause` s apart."""
    def body() -> Iterator[bytes]:
        for i in range(count):
            if i and pause:
                time.sleep(pause)
            yield b"\0" * size
    return body


# name: (path, headers, body (bytes, or a function giving an iterator: sent chunked), status, word in the error)
LIMITS: dict[str, tuple[str, dict[str, str], bytes | Callable[[], Iterator[bytes]], int, str]] = {
    "body bytes: /api/predict, multipart": (
        "/api/predict", *multipart([("file", "photo.png", b"\0" * OVER)]), 413, "5 MB"),
    "body bytes: /api/predict, raw image": (
        "/api/predict", {"Content-Type": "image/jpeg"}, b"\0" * OVER, 413, "5 MB"),
    "body bytes: /api/predict, JSON": (
        "/api/predict", {"Content-Type": "application/json"}, b"[" + b"0," * (OVER // 2) + b"0]", 413, "5 MB"),
    "body bytes: /api/predict, chunked (no Content-Length)": (
        "/api/predict", {"Content-Type": "image/png"}, chunks(6), 413, "5 MB"),
    "body bytes: /api/predict/batch, multipart": (
        "/api/predict/batch", *multipart([("files", f"{i}.png", b"\0" * 2**20) for i in range(6)]), 413, "5 MB"),
    "body bytes: /api/predict/batch, JSON": (
        "/api/predict/batch", {"Content-Type": "application/json"}, b"[" + b"0," * (OVER // 2) + b"0]", 413,
        "5 MB"),
    "body bytes: /api/predict/batch, chunked (no Content-Length)": (
        "/api/predict/batch", {"Content-Type": "application/json"}, chunks(6), 413, "5 MB"),
    "batch size: JSON": (
        "/api/predict/batch", *json_body({"images": [ZEROS] * (MAX_BATCH + 1)}), 422, str(MAX_BATCH)),
    "batch size: multipart": (
        "/api/predict/batch", *multipart([("files", f"{i}.png", TINY_PNG) for i in range(MAX_BATCH + 1)]), 422,
        str(MAX_BATCH)),
    "pixels per image: raw image": (
        "/api/predict", {"Content-Type": "image/png"}, bomb_png(4097, 4096), 400, "too large"),
    "pixels per image: multipart": (
        "/api/predict", *multipart([("file", "big.png", bomb_png(5000, 5000))]), 400, "too large"),
    "pixels per image: a batch member": (
        "/api/predict/batch", *multipart([("files", "ok.png", TINY_PNG), ("files", "big.png", bomb_png(8000, 6000))]),
        400, "big.png"),
    "pixels per request: a batch together": (
        "/api/predict/batch", *multipart([("files", f"{i}.png", bomb_png(4096, 4096)) for i in range(3)]), 400,
        "together"),
    "body bytes: /api/feedback, multipart": (
        "/api/feedback", *multipart([("label", None, b"3"), ("file", "photo.png", b"\0" * OVER)]), 413, "5 MB"),
    "body bytes: /api/feedback, JSON": (
        "/api/feedback", {"Content-Type": "application/json"}, b"[" + b"0," * (OVER // 2) + b"0]", 413, "5 MB"),
    "pixels per image: /api/feedback": (
        "/api/feedback", *multipart([("label", None, b"3"), ("file", "big.png", bomb_png(5000, 5000))]), 400,
        "too large"),
    "multipart fields": (
        "/api/predict/batch", *multipart([("files", "a.png", TINY_PNG)] + [(f"x{i}", None, b"1") for i in range(1001)]),
        400, "fields"),
    "body time: a body slower than the limit": (
        "/api/predict", {"Content-Type": "image/png"}, chunks(2, 1000, pause=2.5), 408, "not received"),
}


def via_urllib(url: str, headers: dict[str, str], body: bytes | Iterator[bytes]) -> tuple[int, str, dict]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers["content-type"], json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, error.headers["content-type"], json.loads(error.read())


def via_httpx(url: str, headers: dict[str, str], body: bytes | Iterator[bytes]) -> tuple[int, str, dict]:
    response = httpx.post(url, content=body, headers=headers, timeout=30)
    return response.status_code, response.headers["content-type"], response.json()


@pytest.mark.parametrize("client", [via_urllib, via_httpx], ids=["urllib", "httpx"])
@pytest.mark.parametrize("name", list(LIMITS))
def test_every_limit_answers_both_clients_with_its_json_error(api_server: str, name: str, client: Callable) -> None:
    path, headers, body, status, word = LIMITS[name]
    start = time.perf_counter()
    got, content_type, answer = client(api_server + path, headers, body() if callable(body) else body)
    assert (got, content_type) == (status, "application/json"), answer
    assert word in answer["error"]
    assert time.perf_counter() - start < FAST + (2.5 if "time" in name else 0)


def test_a_body_just_under_the_limit_is_read(api_server: str) -> None:
    for client in (via_urllib, via_httpx):
        status, _, answer = client(f"{api_server}/api/predict", {"Content-Type": "image/png"},
                                   b"\0" * (MAX_BODY_BYTES - 10))
        assert status == 400 and "not a readable image" in answer["error"]  # read in full, then judged


def test_oversized_body_is_refused_from_its_content_length(api_server: str) -> None:
    # Only the headers are sent: the answer must come without the server waiting for 100 MB of body.
    head = (f"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
            f"Content-Length: {100 * 2**20}\r\n\r\n").encode()
    start = time.perf_counter()
    status, body = raw_exchange(api_server, head, b"\x89PNG", wait=FAST)
    assert status == 413 and "5 MB" in body["error"]
    assert time.perf_counter() - start < FAST


def test_slow_body_times_out_instead_of_hanging(api_server: str) -> None:
    head = b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 1000\r\n\r\n"
    start = time.perf_counter()
    status, body = raw_exchange(api_server, head, b"\x89PNG", wait=10)
    assert status == 408 and "not received" in body["error"]
    assert time.perf_counter() - start < 5  # the fixture's server gives up after 2 s


# ------------------------------------------------------------------------- the drain has bounds of its own


def refuse_endless_body(guard_options: dict, pause: float) -> tuple[list[dict], int, float]:
    """Drive BodyGuard (1 KB limit) directly with a chunked body that never ends, 16 KB per message `pause` s
    apart: what it sent, how many bytes it read, and how long it took to complete its response."""
    sent: list[dict] = []
    received = 0

    async def receive() -> dict:
        nonlocal received
        await anyio.sleep(pause)
        received += 16 * 1024
        return {"type": "http.request", "body": b"\0" * 16 * 1024, "more_body": True}

    async def send(message: dict) -> None:
        sent.append(message)

    async def never_called(scope: dict, receive: object, send: object) -> None:
        raise AssertionError("a refused request reached the app")

    guard = BodyGuard(never_called, max_bytes=1000, **guard_options)
    scope = {"type": "http", "method": "POST", "headers": [(b"content-type", b"image/png")]}
    start = time.perf_counter()
    anyio.run(guard, scope, receive, send)
    return sent, received, time.perf_counter() - start


def assert_answered_then_completed(sent: list[dict]) -> None:
    # The whole 413 goes out before the drain; the response is completed (and the connection may close) after.
    start, answer, end = sent
    assert start["status"] == 413 and (b"connection", b"close") in start["headers"]
    assert "1000" not in json.loads(answer["body"])["error"] and answer["more_body"] is True
    assert end == {"type": "http.response.body", "body": b"", "more_body": False}


def test_the_drain_stops_at_its_byte_bound() -> None:
    sent, received, seconds = refuse_endless_body({"drain_bytes": 64 * 1024, "drain_timeout": 60}, pause=0)
    assert_answered_then_completed(sent)
    assert 64 * 1024 < received <= 64 * 1024 + 2 * 16 * 1024 and seconds < 5


def test_the_drain_stops_at_its_time_bound() -> None:
    sent, received, seconds = refuse_endless_body({"drain_timeout": 0.3}, pause=0.01)
    assert_answered_then_completed(sent)
    assert 0.3 <= seconds < 2 and received > 16 * 1024


def test_a_refusing_server_reads_on_then_closes(api_server: str) -> None:
    """Over a socket: a client that never stops sending (20 MB/s) is read on after the 413 until the drain's
    byte bound, then disconnected: not at once (its answer would be lost to a reset), and not never."""
    parts = urlsplit(api_server)
    head = b"POST /api/predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Type: image/png\r\n\r\n"
    chunk = b"100000\r\n" + b"\0" * 0x100000 + b"\r\n"  # 1 MB
    start = time.perf_counter()
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        sock.sendall(head)
        with pytest.raises((BrokenPipeError, ConnectionResetError)):
            while time.perf_counter() - start < DRAIN_TIMEOUT_S + 10:
                sock.sendall(chunk)
                time.sleep(0.05)
    # 5 MB to the refusal, then DRAIN_MAX_BYTES (32 MB) more: ~1.9 s at this rate; without a drain, ~0.3 s.
    assert (MAX_BODY_BYTES + DRAIN_MAX_BYTES) / 2**20 * 0.05 * 0.6 < time.perf_counter() - start < DRAIN_TIMEOUT_S + 5
