"""The web app: a drawing page and a JSON API in front of one model, loaded once.

    GET  /                     the drawing page (static/index.html, app.js, style.css; nothing from a CDN)
    POST /api/predict          one image: multipart field `file`, a raw image body, or JSON {"pixels": [784]}
    POST /api/predict/batch    up to MAX_BATCH images: multipart fields `files`, or JSON {"images": [[784]]}
    GET  /api/model            architecture, parameters, accuracy and training metadata of the model
    GET  /healthz              liveness: the model is loaded, and the digitlab version
    GET  /openapi.json         the API description; /docs renders it offline, /docs/swagger via Swagger UI

Images go through `digitlab.data.images.to_mnist`, the same preprocessing as `digitlab predict`. JSON pixels
are a 28x28 image, row-major, 0..255, MNIST's white ink on black; like any 28x28 input of `to_mnist` they
only get its polarity fix (a light border is inverted), never re-cropped or re-centred.

Every failure is JSON `{"error": "..."}`: 400 malformed JSON, empty body, not an image, more than
MAX_IMAGE_PIXELS (decompression bombs included); 408 body not received in time; 413 body over
MAX_BODY_BYTES; 415 unsupported content type; 422 JSON of the wrong shape (pixel count, NaN, out of range,
too many images); 503 too many requests queued.

Decoding, preprocessing and inference run in worker threads, at most `workers` at a time, so the event loop
keeps accepting requests and a burst cannot start more model calls than there are cores.
"""

from __future__ import annotations

import io
import json
import logging
import os
import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import anyio
import numpy as np
import torch
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from digitlab import __version__
from digitlab.data.images import open_image, to_mnist
from digitlab.errors import DigitlabError
from digitlab.models import count_parameters, read_meta, resolve_model_path
from digitlab.predict import load_engine, predict_proba

log = logging.getLogger("digitlab.serve")
BaseModelT = TypeVar("BaseModelT", bound=BaseModel)

STATIC = Path(__file__).parent / "static"
MAX_BODY_BYTES = 5 * 1024 * 1024  # a phone photo of a digit is ~3 MB; the canvas sends ~10 KB
MAX_BATCH = 256
# Decoding and preprocessing cost ~1 s and ~150 MB per 4 megapixels, and a PNG of 40 MP (open_image's limit)
# compresses to ~50 KB: cap what one request may cost. 4096x4096 still takes any phone photo.
MAX_IMAGE_PIXELS = 4096 * 4096
MAX_REQUEST_PIXELS = 2 * MAX_IMAGE_PIXELS  # a batch's total: 256 drawings of 280x280 use 20 M
BODY_TIMEOUT_S = 15.0  # a body that trickles in slower than this is a stuck or hostile client
MAX_PENDING = 512  # requests waiting for a worker beyond this get 503 instead of an ever-growing queue
RAW_IMAGE_TYPES = ("application/octet-stream",)  # plus any image/*

API_DESCRIPTION = f"""\
Recognise handwritten digits with a digitlab model.

Send an image file (multipart field `file`, or the raw bytes as `application/octet-stream` / `image/*`)
and it is prepared exactly as `digitlab predict` prepares files: polarity fixed, cropped to the ink, scaled
to 20 px and centred by mass in 28x28. Or send JSON `{{"pixels": [784 values]}}`: a 28x28 image, row-major,
0..255, white ink on black like MNIST; it only gets the polarity fix. Every answer includes `preprocessed`,
the 28x28 image the model saw.

Errors are JSON `{{"error": "..."}}`: 400 bad JSON or image, 408 slow body, 413 body over
{MAX_BODY_BYTES // 2**20} MB, 415 content type, 422 JSON of the wrong shape, 503 overloaded."""

# --------------------------------------------------------------------------------------------- schemas

Pixel = Annotated[float, Field(ge=0, le=255, allow_inf_nan=False)]
Image784 = Annotated[list[Pixel], Field(min_length=784, max_length=784)]


class PixelsRequest(BaseModel):
    """One 28x28 image as 784 numbers, row by row, 0 (black) to 255 (white ink) like MNIST."""

    model_config = ConfigDict(extra="forbid", strict=True)
    pixels: Image784 = Field(description="784 values 0..255, row-major, white ink on black")


class BatchRequest(BaseModel):
    """Several 28x28 images, each as in PixelsRequest."""

    model_config = ConfigDict(extra="forbid", strict=True)
    images: list[Image784] = Field(min_length=1, max_length=MAX_BATCH,
                                   description="1..256 images of 784 values each")


class Prediction(BaseModel):
    label: int = Field(ge=0, le=9, description="the most likely digit")
    confidence: float = Field(ge=0, le=1, description="its probability")
    probabilities: list[float] = Field(min_length=10, max_length=10, description="P(digit) for 0..9")
    preprocessed: list[int] = Field(
        min_length=784, max_length=784, description="the 28x28 image the model saw (0..255, row-major)"
    )


class BatchPrediction(BaseModel):
    predictions: list[Prediction] = Field(description="one per image, in request order")


class ErrorBody(BaseModel):
    error: str = Field(description="what was wrong with the request")


class Health(BaseModel):
    status: Literal["ok"]
    model_loaded: bool
    engine: str
    version: str


class ModelInfo(BaseModel):
    arch: str = Field(description="architecture name (tutorial, fast, strong) or 'onnx' for an .onnx file")
    parameters: int | None
    accuracy: float | None = Field(description="MNIST test accuracy recorded at training time")
    engine: str
    source: str = Field(description="'shipped (file name)' for the packaged weights, else the --model given")
    version: str
    training: dict[str, Any] | None = None
    metrics: dict[str, Any] | None = None
    versions: dict[str, Any] | None = None


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    why = {
        400: "malformed JSON, an empty body, not a readable image, or a decompression bomb",
        408: "the request body did not arrive in time",
        413: f"the body is larger than {MAX_BODY_BYTES // 2**20} MB",
        415: "unsupported Content-Type",
        422: "JSON of the wrong shape: pixel count, NaN or out-of-range values, too many images",
        503: "too many requests queued; retry later",
    }
    return {code: {"model": ErrorBody, "description": why[code]} for code in codes}


_FILE = {"type": "string", "format": "binary"}


def _request_body(field: str, upload: dict[str, Any], json_model: type[BaseModel],
                  raw: dict[str, Any] | None = None) -> dict[str, Any]:
    """The OpenAPI request body of a predict route: multipart field `field` holding `upload`, JSON of
    `json_model`, and, given a `raw` schema, a raw image body (the routes read the request themselves, so
    FastAPI cannot infer any of this)."""
    form = {"type": "object", "properties": {field: upload}, "required": [field]}
    content = {"multipart/form-data": {"schema": form}, "application/json": {"schema": json_model.model_json_schema()}}
    if raw is not None:
        content["application/octet-stream"] = {"schema": raw}
    return {"requestBody": {"required": True, "content": content}}


PREDICT_BODY = _request_body("file", {**_FILE, "description": "any image file"}, PixelsRequest,
                             raw={**_FILE, "description": "the image file's bytes"})
BATCH_BODY = _request_body("files", {"type": "array", "items": _FILE, "minItems": 1, "maxItems": MAX_BATCH},
                           BatchRequest)

# ---------------------------------------------------------------------------------------------- errors


class ApiError(Exception):
    """A request we refuse, with the HTTP status and the message the client sees."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _error_response(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _validation_error(exc: ValidationError) -> ApiError:
    errors = exc.errors(include_url=False, include_input=False, include_context=False)
    first = errors[0]
    if first["type"] == "json_invalid":
        return ApiError(400, f"malformed JSON: {first['msg']}")
    where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in first["loc"]).lstrip(".")
    where = where or "body"
    more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
    return ApiError(422, f"{where}: {first['msg']}{more}")


# ---------------------------------------------------------------------------------------------- model


class Predictor:
    """The model behind the API: loaded once, called from at most `workers` threads at a time."""

    def __init__(self, model: str | os.PathLike | None, engine: str, workers: int | None = None) -> None:
        self.engine = engine
        self.module = load_engine(model, engine, "cpu")
        self.info = _model_info(model, engine, self.module)
        self.workers = workers or max(1, min(4, os.cpu_count() or 1))
        self._limiter: anyio.CapacityLimiter | None = None
        self._pending = 0
        # The first call of a model is slow (allocator, kernel selection): pay it now, not in a request.
        self.predict(np.zeros((1, 28, 28), dtype=np.uint8))

    def predict(self, images: np.ndarray) -> tuple[list[dict[str, Any]], float]:
        """uint8 (N, 28, 28) -> one response dict per image, and the model's time in seconds."""
        start = time.perf_counter()
        probs = predict_proba(self.module, torch.from_numpy(images), "cpu")
        elapsed = time.perf_counter() - start
        labels = probs.argmax(1).tolist()
        rows = probs.tolist()
        results = [
            {"label": label, "confidence": row[label], "probabilities": row,
             "preprocessed": image.ravel().tolist()}
            for label, row, image in zip(labels, rows, images, strict=True)
        ]
        return results, elapsed

    def _work(self, prepare: Callable[[], np.ndarray]) -> tuple[list[dict[str, Any]], float, float]:
        start = time.perf_counter()
        images = prepare()
        prepared = time.perf_counter() - start
        results, model_s = self.predict(images)
        return results, prepared, model_s

    async def run(self, prepare: Callable[[], np.ndarray]) -> tuple[list[dict[str, Any]], float, float]:
        """`prepare()` (decode + preprocess) and the model, in a worker thread: results, prep s, model s."""
        if self._limiter is None:  # created lazily: it belongs to the event loop that serves the app
            self._limiter = anyio.CapacityLimiter(self.workers)
        if self._pending >= MAX_PENDING:
            raise ApiError(503, "server busy: too many requests queued, retry shortly")
        self._pending += 1
        try:
            return await anyio.to_thread.run_sync(self._work, prepare, limiter=self._limiter)
        finally:
            self._pending -= 1


def _model_info(model: str | os.PathLike | None, engine: str, module: torch.nn.Module) -> dict[str, Any]:
    source = f"shipped ({resolve_model_path(None).name})" if model is None else str(model)
    if model is not None and str(model).endswith(".onnx"):
        return {"arch": "onnx", "parameters": None, "accuracy": None, "engine": engine, "source": source,
                "version": __version__}
    meta = read_meta(resolve_model_path(model))
    metrics = meta.get("metrics") or {}
    parameters = meta.get("parameters")
    if parameters is None and engine == "torch":
        parameters = count_parameters(module)
    return {
        "arch": meta["arch"],
        "parameters": parameters,
        "accuracy": metrics.get("test_accuracy"),
        "engine": engine,
        "source": source,
        "version": __version__,
        "training": meta.get("training"),
        "metrics": metrics or None,
        "versions": meta.get("versions"),
    }


# --------------------------------------------------------------------------------------- preprocessing


def _check_dimensions(data: bytes, name: str) -> int:
    """The image's pixel count from its header, refusing more than MAX_IMAGE_PIXELS before decoding."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as probe:
                width, height = probe.size
    except Exception:  # not decodable: open_image says why, in the one place that does
        return 0
    if width * height > MAX_IMAGE_PIXELS:
        raise ApiError(400, f"{name}: {width}x{height} pixels is too large for the API "
                            f"(at most {MAX_IMAGE_PIXELS:,} pixels, e.g. 4096x4096)")
    return width * height


def _decode(data: bytes, name: str) -> np.ndarray:
    """Image bytes -> the (28, 28) uint8 the model sees; anything undecodable is the client's problem."""
    try:
        return to_mnist(open_image(data))
    except DigitlabError as exc:
        raise ApiError(400, str(exc).replace("image:", f"{name}:", 1)) from None
    except (MemoryError, RecursionError):
        raise
    except Exception as exc:  # a file Pillow half-understands may raise nearly anything; still bad input
        log.warning("could not process %s: %r", name, exc)
        raise ApiError(400, f"{name}: could not process this image ({type(exc).__name__})") from None


def _decode_all(files: list[tuple[str, bytes]]) -> np.ndarray:
    """Check every file's size first (cheap), then decode them: a bad last file costs no decoding."""
    total = 0
    for name, data in files:
        if not data:
            raise ApiError(400, f"{name}: empty file")
        total += _check_dimensions(data, name)
    if total > MAX_REQUEST_PIXELS:
        raise ApiError(400, f"the images hold {total:,} pixels together, more than the {MAX_REQUEST_PIXELS:,} "
                            "one request may; send fewer or smaller images")
    return np.stack([_decode(data, name) for name, data in files])


def _pixels_to_image(values: list[float]) -> np.ndarray:
    # Scaled to [0, 1] here so to_mnist never guesses the range: a faint 0..1-valued 0..255 image stays faint.
    array = np.asarray(values, dtype=np.float32).reshape(28, 28) / 255.0
    return to_mnist(array)


def _parse_json(schema: type[BaseModelT], body: bytes) -> BaseModelT:
    try:
        return schema.model_validate_json(body)
    except ValidationError as exc:
        raise _validation_error(exc) from None


def _from_json_single(body: bytes) -> np.ndarray:
    return _pixels_to_image(_parse_json(PixelsRequest, body).pixels)[None]


def _from_json_batch(body: bytes) -> np.ndarray:
    return np.stack([_pixels_to_image(values) for values in _parse_json(BatchRequest, body).images])


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def _is_json(media: str) -> bool:
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


async def _form_files(request: Request, field: str) -> list[tuple[str, bytes]]:
    """The uploads in multipart field `field`, as (name, bytes); the body was size-checked already."""
    # max_files is not the batch limit: it only stops the parser; the batch size is checked below so that
    # JSON and multipart answer alike. The 5 MB body limit bounds the part count anyway.
    async with request.form(max_files=100_000, max_fields=1000, max_part_size=MAX_BODY_BYTES) as form:
        values = form.getlist(field)
        if not values:
            raise ApiError(400, f"multipart body has no '{field}' field")
        files = []
        for index, value in enumerate(values):
            name = field if len(values) == 1 and field == "file" else f"{field}[{index}]"
            if not isinstance(value, UploadFile):
                raise ApiError(422, f"{name}: expected a file upload, got a text field")
            files.append((value.filename or name, await value.read()))
        return files


# ------------------------------------------------------------------------------------------ middleware


class _TooLarge(Exception):
    pass


class _Disconnected(Exception):
    pass


class BodyGuard:
    """Limits request bodies and times requests, as plain ASGI (no per-request task like BaseHTTPMiddleware).

    A body declaring more than `max_bytes` is refused before any of it is read; one that turns out larger
    (chunked, no Content-Length) is refused as soon as it passes the limit; one that trickles in for more
    than `timeout` seconds gets 408. Responses carry `Server-Timing` and `X-Process-Time` (milliseconds).
    """

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES, timeout: float = BODY_TIMEOUT_S
                 ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout = timeout

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
            declared = dict(scope["headers"]).get(b"content-length")
            if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
                await self._refuse(timed_send, 413, self._too_large())
                return
            try:
                body = await self._read_body(receive)
            except _TooLarge:
                await self._refuse(timed_send, 413, self._too_large())
                return
            except TimeoutError:
                await self._refuse(timed_send, 408, f"request body not received within {self.timeout:g} s")
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

    @staticmethod
    async def _refuse(send: Send, status: int, message: str) -> None:
        # Sent before the body is read; uvicorn then discards whatever of the body still arrives (until its
        # keep-alive timeout), so the client can finish writing and read this answer instead of a reset.
        body = json.dumps({"error": message}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # after the body: wait for the disconnect, as the server would

    return replay


# ------------------------------------------------------------------------------------------------- app


def create_app(model: str | os.PathLike | None = None, engine: str = "torch", *, workers: int | None = None,
               body_timeout: float = BODY_TIMEOUT_S) -> FastAPI:
    """The ASGI app for `model` (default: the shipped weights) on `engine` ('torch' or 'onnx').

    The model is loaded here, once; a missing or bad model raises DigitlabError before anything listens.
    """
    predictor = Predictor(model, engine, workers)
    app = FastAPI(
        title="digitlab",
        version=__version__,
        summary="Handwritten-digit recognition: draw a digit, see the answer.",
        description=API_DESCRIPTION,
        docs_url=None,
        redoc_url=None,
    )
    app.state.predictor = predictor

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return _error_response(exc.status, exc.message)

    @app.exception_handler(DigitlabError)
    async def digitlab_error(request: Request, exc: DigitlabError) -> JSONResponse:
        return _error_response(400, str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error_response(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(part) for part in first.get("loc", ())) or "request"
        return _error_response(422, f"{where}: {first.get('msg')}")

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return _error_response(500, "internal server error")

    def answer(payload: Any, prep_s: float, model_s: float) -> Response:
        timing = f"preprocess;dur={prep_s * 1000:.3f}, model;dur={model_s * 1000:.3f}"
        return JSONResponse(payload, headers={"server-timing": timing})

    async def _json_body(request: Request, example: str) -> bytes:
        body = await request.body()
        if not body:
            raise ApiError(400, f"empty request body; send JSON {example}")
        return body

    def unsupported(media: str, accepted: str) -> ApiError:
        return ApiError(415, f"unsupported Content-Type '{media or '(none)'}'; send {accepted}")

    @app.post("/api/predict", response_model=Prediction, openapi_extra=PREDICT_BODY,
              responses=_errors(400, 408, 413, 415, 422, 503), summary="Recognise one digit")
    async def predict(request: Request) -> Response:
        """One image as a multipart upload (field `file`), a raw image body (`application/octet-stream` or
        `image/*`), or JSON `{"pixels": [784 values]}`. Files go through the same preprocessing as
        `digitlab predict`; JSON pixels, already 28x28, only get its polarity fix."""
        media = _media_type(request)
        if _is_json(media):
            prepare = partial(_from_json_single, await _json_body(request, '{"pixels": [784 values]}'))
        elif media == "multipart/form-data":
            prepare = partial(_decode_all, (await _form_files(request, "file"))[:1])
        elif media in RAW_IMAGE_TYPES or media.startswith("image/"):
            prepare = partial(_decode_all, [("image", await request.body())])
        else:
            raise unsupported(media, "multipart/form-data, application/json or an image")
        results, prep_s, model_s = await predictor.run(prepare)
        return answer(results[0], prep_s, model_s)

    @app.post("/api/predict/batch", response_model=BatchPrediction, openapi_extra=BATCH_BODY,
              responses=_errors(400, 408, 413, 415, 422, 503), summary="Recognise many digits")
    async def predict_batch(request: Request) -> Response:
        """Up to 256 images as multipart uploads (repeated field `files`) or JSON
        `{"images": [[784 values], ...]}`; predictions come back in request order."""
        media = _media_type(request)
        if _is_json(media):
            prepare = partial(_from_json_batch, await _json_body(request, '{"images": [[784 values], ...]}'))
        elif media == "multipart/form-data":
            files = await _form_files(request, "files")
            if len(files) > MAX_BATCH:
                raise ApiError(422, f"files: {len(files)} images, at most {MAX_BATCH} per request")
            prepare = partial(_decode_all, files)
        else:
            raise unsupported(media, "multipart/form-data or application/json")
        results, prep_s, model_s = await predictor.run(prepare)
        return answer({"predictions": results}, prep_s, model_s)

    @app.get("/api/model", response_model=ModelInfo, summary="Describe the served model")
    async def model_info() -> dict[str, Any]:
        return predictor.info

    @app.get("/healthz", response_model=Health, summary="Liveness")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "model_loaded": predictor.module is not None, "engine": predictor.engine,
                "version": __version__}

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"cache-control": "no-cache"})

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> FileResponse:  # browsers ask for it whatever the page says
        return FileResponse(STATIC / "favicon.svg", media_type="image/svg+xml")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> FileResponse:
        # An offline reference rendered from /openapi.json; Swagger UI needs its CDN, so it is the fallback.
        return FileResponse(STATIC / "docs.html", headers={"cache-control": "no-cache"})

    @app.get("/docs/swagger", include_in_schema=False)
    async def swagger() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="digitlab API")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(BodyGuard, timeout=body_timeout)
    return app


# ---------------------------------------------------------------------------------------------- server


def _bind(host: str, port: int) -> socket.socket:
    """Listen before starting uvicorn, so a taken port is a one-line error rather than a log and exit 1."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        raise DigitlabError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _server(app: FastAPI, log_level: str) -> Any:
    import uvicorn

    config = uvicorn.Config(app, log_level=log_level, access_log=False, timeout_graceful_shutdown=3,
                            timeout_keep_alive=5, server_header=False)
    return uvicorn.Server(config)


def serve(model: str | os.PathLike | None = None, host: str = "127.0.0.1", port: int = 8000,
          engine: str = "torch") -> None:
    """Load the model, then serve the page and the API on http://host:port until interrupted."""
    # One intra-op thread per model call: a 28x28 batch is too small to split, and the worker threads
    # already run up to one call per core (benchmarks/serve_load.py measures it). OMP_NUM_THREADS overrides.
    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(1)
    app = create_app(model, engine)
    sock = _bind(host, port)
    bound = sock.getsockname()[1]
    where = f"[{host}]" if ":" in host else host
    print(f"digitlab: serving {app.state.predictor.info['arch']} model ({engine}) on http://{where}:{bound}/ "
          "- Ctrl-C to stop", flush=True)
    _server(app, "warning").run(sockets=[sock])


@contextmanager
def running(app: FastAPI, host: str = "127.0.0.1") -> Iterator[str]:
    """Serve `app` from a background thread on a free port; yields its base URL (for tests and demos)."""
    sock = _bind(host, 0)
    server = _server(app, "warning")
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True,
                              name="digitlab-serve")
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    try:
        yield f"http://{host}:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
