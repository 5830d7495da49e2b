"""What one request may cost, and the ASGI middleware that holds request bodies to it.

Every limit of the API is here, so the numbers the docs, the error messages and the tests quote are one set:
body bytes and body time (enforced below, before any route runs), images per batch, and pixels per image and
per request (enforced where the images are decoded, `digitlab.serve.decode`).

A refused body is drained before the connection is let go. A server that answers 413 and closes while the
client is still sending makes the client's kernel see a reset: clients that send the whole body before reading
(Python's urllib, anything sending `Connection: close`) then report `Connection reset by peer` instead of the
answer. So, like nginx's lingering close, the answer goes out first and whatever of the body is still on its way
is read and thrown away, for at most DRAIN_MAX_BYTES and DRAIN_TIMEOUT_S, before the response is completed
and the server may close.
"""

from __future__ import annotations

import json
import time

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_BODY_BYTES = 5 * 1024 * 1024  # a phone photo of a digit is ~3 MB; the canvas sends ~10 KB
MAX_BATCH = 256  # images in one /api/predict/batch request
# Decoding and preprocessing cost ~1 s and ~150 MB per 4 megapixels, and a PNG of 40 MP (open_image's limit)
# compresses to ~50 KB: cap what one request may cost. 4096x4096 still takes any phone photo.
MAX_IMAGE_PIXELS = 4096 * 4096
MAX_REQUEST_PIXELS = 2 * MAX_IMAGE_PIXELS  # a batch's total: 256 drawings of 280x280 use 20 M
MAX_JSON_PIXELS = 1024 * 1024  # a picture sent as JSON numbers (a canvas of 1024x1024; files are cheaper)
BODY_TIMEOUT_S = 15.0  # a body that trickles in slower than this is a stuck or hostile client
MAX_PENDING = 512  # requests waiting for a worker beyond this get 503 instead of an ever-growing queue
# Lingering close: what is read and discarded of a refused body so the client gets to read the answer. A 12 MB
# photo over a slow uplink still fits; a client declaring more than this is not waited for at all.
DRAIN_MAX_BYTES = 32 * 1024 * 1024
DRAIN_TIMEOUT_S = 10.0


class _TooLarge(Exception):
    pass


class _Disconnected(Exception):
    pass


class BodyGuard:
    """Limits request bodies and times requests, as plain ASGI (no per-request task like BaseHTTPMiddleware).

    A body declaring more than `max_bytes` is refused before any of it is read; one that turns out larger
    (chunked, no Content-Length) is refused as soon as it passes the limit; one that trickles in for more than
    `timeout` seconds gets 408. Each refusal drains the rest of the body (see the module docstring). The body
    of an accepted request is read here in full and replayed to the app. Responses carry `Server-Timing` and
    `X-Process-Time` (milliseconds).
    """

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES, timeout: float = BODY_TIMEOUT_S,
                 drain_bytes: int = DRAIN_MAX_BYTES, drain_timeout: float = DRAIN_TIMEOUT_S) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.drain_bytes = drain_bytes
        self.drain_timeout = drain_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()

        async def timed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                total = (time.perf_counter() - start) * 1000
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"server-timing"]
                stages = [v for k, v in message.get("headers", []) if k.lower() == b"server-timing"]
                timing = b", ".join([*stages, f"total;dur={total:.3f}".encode()])
                headers += [(b"server-timing", timing), (b"x-process-time", f"{total:.3f}".encode())]
                message = {**message, "headers": headers}
            await send(message)

        if scope["method"] in ("POST", "PUT", "PATCH"):
            headers = dict(scope["headers"])
            declared = headers.get(b"content-length")
            declared_bytes = int(declared) if declared is not None and declared.isdigit() else None
            # A client that asked for `100 Continue` and is refused before it got one never sends its body.
            body_coming = headers.get(b"expect", b"").lower() != b"100-continue"
            if declared_bytes is not None and declared_bytes > self.max_bytes:
                drain = body_coming and declared_bytes <= self.drain_bytes
                await self._refuse(timed_send, receive, 413, self._too_large(), drain)
                return
            try:
                body = await self._read_body(receive)
            except _TooLarge:
                await self._refuse(timed_send, receive, 413, self._too_large(), True)
                return
            except TimeoutError:
                message = f"request body not received within {self.timeout:g} s"
                await self._refuse(timed_send, receive, 408, message, True)
                return
            except _Disconnected:
                return
            receive = _replay(body, receive)
        await self.app(scope, receive, timed_send)

    def _too_large(self) -> str:
        return f"request body is larger than the {self.max_bytes / 2**20:g} MB limit"

    async def _read_body(self, receive: Receive) -> bytes:
        chunks: list[bytes] = []
        size = 0
        with anyio.fail_after(self.timeout):
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise _Disconnected
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > self.max_bytes:
                    raise _TooLarge
                chunks.append(chunk)
                if not message.get("more_body", False):
                    return b"".join(chunks)

    async def _refuse(self, send: Send, receive: Receive, status: int, message: str, drain: bool) -> None:
        """Send the error, then drain the body, and only then complete the response: the server closes a
        `Connection: close` request as soon as its response is complete, whatever is still arriving."""
        body = json.dumps({"error": message}).encode()
        # Closed afterwards, as nginx does after a refused body: whatever the drain left unread must not be
        # taken for the next request, and the server must not go on discarding for as long as a client sends.
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                   (b"connection", b"close")]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        # With Content-Length framing these bytes are the whole answer: the client can read it at once.
        await send({"type": "http.response.body", "body": body, "more_body": True})
        if drain:
            await self._drain(receive)
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _drain(self, receive: Receive) -> None:
        drained = 0
        with anyio.move_on_after(self.drain_timeout):
            while drained <= self.drain_bytes:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                drained += len(message.get("body", b""))
                if not message.get("more_body", False):
                    return


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # after the body: wait for the disconnect, as the server would

    return replay
