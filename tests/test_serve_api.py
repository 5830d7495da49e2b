"""The HTTP API over real sockets: a uvicorn server in a background thread (conftest `api_server`), httpx.

Covers the happy paths (JSON pixels, multipart and raw uploads, batches, /healthz, /api/model), agreement
with `digitlab predict`'s preprocessing and model, every bad request the API promises a 4xx JSON error
for, and a schemathesis run against the OpenAPI schema that must find no server error.
"""

from __future__ import annotations

import io
import json
import re
import socket
import struct
import time
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, Phase, given, settings
from PIL import Image

import digitlab
from digitlab.data.images import open_image, to_mnist
from digitlab.engine import Engine, load_engine
from digitlab.models import count_parameters, load_model, read_meta
from digitlab.serve.app import create_app
from digitlab.serve.limits import MAX_BATCH
from digitlab.serve.server import running

pytestmark = pytest.mark.mnist
FAST = 2.0  # seconds: every answer here, good or bad, must come at least this quickly (no hangs)


@pytest.fixture(scope="module")
def client(api_server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api_server, timeout=30) as c:
        yield c


def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def paper_png(digit: np.ndarray, size: int = 200) -> bytes:
    """An MNIST digit as a scan would show it: dark ink on light paper, upscaled."""
    return png(np.asarray(Image.fromarray(255 - digit).resize((size, size), Image.Resampling.BILINEAR)))


def bomb_png(width: int, height: int) -> bytes:
    """A few hundred bytes that claim to be a width x height PNG: decoding it would take gigabytes."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 1024)) + \
        chunk(b"IEND", b"")


def raw_exchange(url: str, head: bytes, body: bytes = b"", wait: float = 10.0) -> tuple[int, dict]:
    """Send bytes over a plain socket (to control exactly what arrives) and parse the one response."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=wait) as sock:
        sock.sendall(head + body)
        data = b""
        while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < _content_length(data):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    status = int(data.split(b" ", 2)[1])
    return status, json.loads(data.split(b"\r\n\r\n", 1)[1])


def _content_length(data: bytes) -> int:
    for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 1 << 30


@pytest.fixture(scope="module")
def digits(mnist_test: tuple[torch.Tensor, torch.Tensor]) -> tuple[np.ndarray, np.ndarray]:
    images, labels = mnist_test
    return images[:64].numpy(), labels[:64].numpy()


@pytest.fixture(scope="module")
def reference(real_model: Path, digits: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """What `digitlab predict` computes for the same digits: the API must agree with it."""
    # load_engine, as predict does: the probabilities shown are calibrated by the model's stored temperature.
    return load_engine(real_model, "torch").probabilities(digits[0]).numpy()


def assert_prediction(body: dict) -> None:
    assert set(body) == {"label", "confidence", "probabilities", "reason", "preprocessed"}
    assert body["reason"] is None  # these are all digits: none refused (digitlab.refuse)
    probs = body["probabilities"]
    assert len(probs) == 10 and abs(sum(probs) - 1) < 1e-4
    assert body["label"] == int(np.argmax(probs)) and body["confidence"] == max(probs)
    assert len(body["preprocessed"]) == 784 and all(0 <= v <= 255 for v in body["preprocessed"])


# ------------------------------------------------------------------------------------ happy paths


def test_healthz_reports_the_model_served(client: httpx.Client, real_model: Path) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    health = response.json()
    assert health["version"] == digitlab.__version__
    assert (health["status"], health["model_loaded"], health["engine"]) == ("ok", True, "torch")
    # The model a user asked for, as /api/model describes it, and as its own metadata says.
    assert health["source"] == client.get("/api/model").json()["source"] == str(real_model)
    assert health["arch"] == read_meta(real_model)["arch"]


class BrokenEngine(Engine):
    """An engine that raises, or that answers differently from the model that was loaded."""

    name = "torch"

    def __init__(self, fault: str) -> None:
        self.fault = fault

    def logits(self, images: np.ndarray) -> torch.Tensor:
        if self.fault == "raises":
            raise RuntimeError("weights gone")
        return torch.zeros(len(images), 10)  # uniform: not what any trained model says about a '1'


@pytest.mark.parametrize("fault", ["raises", "answers differently"])
def test_healthz_fails_when_the_model_no_longer_answers(real_model: Path, fault: str) -> None:
    app = create_app(real_model)
    with running(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        assert client.get("/healthz").status_code == 200
        app.state.runner.engine = BrokenEngine(fault)
        response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["error"].startswith("model check failed")


def test_model_info(client: httpx.Client, real_model: Path) -> None:
    info = client.get("/api/model").json()
    meta = read_meta(real_model)
    assert (info["arch"], info["engine"], info["version"]) == (meta["arch"], "torch", digitlab.__version__)
    assert info["parameters"] == count_parameters(load_model(real_model)[0])
    assert info["accuracy"] == meta["metrics"]["test_accuracy"]
    assert info["training"] == meta["training"]


def test_json_pixels_agree_with_digitlab_predict(client: httpx.Client, digits: tuple, reference: np.ndarray
                                                 ) -> None:
    images, labels = digits
    for i in range(8):
        response = client.post("/api/predict", json={"pixels": images[i].ravel().tolist()})
        assert response.status_code == 200, response.text
        body = response.json()
        assert_prediction(body)
        # 28x28 MNIST input is already what the model expects: preprocessing must leave it unchanged.
        assert body["preprocessed"] == images[i].ravel().tolist()
        np.testing.assert_allclose(body["probabilities"], reference[i], atol=1e-5)
    assert response.elapsed.total_seconds() < FAST


def test_json_pixels_polarity_is_fixed(client: httpx.Client, digits: tuple) -> None:
    image = digits[0][3]
    body = client.post("/api/predict", json={"pixels": (255 - image).ravel().tolist()}).json()
    assert body["preprocessed"] == image.ravel().tolist()


def test_json_pixels_accept_floats(client: httpx.Client, digits: tuple) -> None:
    image = digits[0][0].astype(float)
    as_int = client.post("/api/predict", json={"pixels": image.ravel().tolist()}).json()
    shifted = np.minimum(image.ravel() + 0.2, 255).tolist()
    as_float = client.post("/api/predict", json={"pixels": shifted}).json()
    assert as_float["preprocessed"] == as_int["preprocessed"]


def test_faint_pixels_are_not_mistaken_for_a_0_to_1_scale(client: httpx.Client) -> None:
    faint = np.zeros((28, 28))
    faint[10:18, 13:15] = 1  # values 0..1 on the documented 0..255 scale: almost black, and must stay so
    body = client.post("/api/predict", json={"pixels": faint.ravel().tolist()}).json()
    assert max(body["preprocessed"]) == 1


@pytest.mark.parametrize("how", ["multipart", "raw"])
def test_uploaded_scan_is_read(client: httpx.Client, digits: tuple, how: str) -> None:
    images, labels = digits
    correct = 0
    for i in range(10):
        data = paper_png(images[i])
        if how == "multipart":
            response = client.post("/api/predict", files={"file": (f"digit{i}.png", data, "image/png")})
        else:
            response = client.post("/api/predict", content=data, headers={"content-type": "image/png"})
        assert response.status_code == 200, response.text
        body = response.json()
        assert_prediction(body)
        # Exactly the preprocessing of `digitlab predict`, not a copy of it.
        assert body["preprocessed"] == to_mnist(open_image(data)).ravel().tolist()
        correct += body["label"] == labels[i]
    assert correct >= 9


def test_batch_json_matches_single_predictions(client: httpx.Client, digits: tuple, reference: np.ndarray
                                               ) -> None:
    images, labels = digits
    response = client.post("/api/predict/batch", json={"images": [im.ravel().tolist() for im in images]})
    assert response.status_code == 200
    predictions = response.json()["predictions"]
    assert len(predictions) == len(images)
    for body, expected in zip(predictions, reference, strict=True):
        assert_prediction(body)
        np.testing.assert_allclose(body["probabilities"], expected, atol=1e-5)
    assert np.mean([p["label"] for p in predictions] == labels) > 0.9


def test_batch_multipart(client: httpx.Client, digits: tuple) -> None:
    images, labels = digits
    files = [("files", (f"{i}.png", paper_png(images[i], 96), "image/png")) for i in range(6)]
    response = client.post("/api/predict/batch", files=files)
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert [p["preprocessed"] for p in predictions] == \
        [to_mnist(open_image(f[1][1])).ravel().tolist() for f in files]


def test_server_timing_headers(client: httpx.Client, digits: tuple) -> None:
    response = client.post("/api/predict", json={"pixels": digits[0][0].ravel().tolist()})
    timing = response.headers["server-timing"]
    assert "preprocess;dur=" in timing and "model;dur=" in timing and "total;dur=" in timing
    assert 0 < float(response.headers["x-process-time"]) < FAST * 1000


def test_concurrent_requests_all_answered_consistently(client: httpx.Client, digits: tuple,
                                                       reference: np.ndarray) -> None:
    images, _ = digits

    def one(i: int) -> tuple[int, int]:
        response = client.post("/api/predict", json={"pixels": images[i % 16].ravel().tolist()})
        return response.status_code, response.json()["label"]

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(one, range(96)))
    assert all(status == 200 for status, _ in results)
    assert [label for _, label in results] == [int(reference[i % 16].argmax()) for i in range(96)]


def test_page_and_static_files_are_served(client: httpx.Client) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    hooks = ('id="pad"', 'data-testid="prediction"', 'data-testid="probabilities"', 'data-testid="clear"')
    for hook in hooks:
        assert hook in page.text
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page.text), "the page must work offline"
    for asset in ("/static/app.js", "/static/style.css", "/docs", "/static/docs.js", "/favicon.ico"):
        assert client.get(asset).status_code == 200


# The API's surface as it was before serve/app.py was split into a package (issue 14), read from that
# version's /openapi.json: path, method, operationId, request Content-Types, documented status codes. The
# split must not change it; /healthz gained 503 because it now checks the model.
ERRORS = {"200", "400", "408", "413", "415", "422", "503"}
SURFACE = {
    ("/api/predict", "post"): ("predict_api_predict_post",
                               {"multipart/form-data", "application/json", "application/octet-stream"}, ERRORS),
    ("/api/predict/batch", "post"): ("predict_batch_api_predict_batch_post",
                                     {"multipart/form-data", "application/json"}, ERRORS),
    ("/api/model", "get"): ("model_info_api_model_get", set(), {"200"}),
    ("/healthz", "get"): ("healthz_healthz_get", set(), {"200", "503"}),
    # Added by issue 13: corrections saved as training samples.
    ("/api/feedback", "post"): ("feedback_api_feedback_post", {"multipart/form-data", "application/json"},
                                {"201", "400", "403", "408", "413", "415", "422", "507"}),
    ("/api/feedback", "get"): ("feedback_status_api_feedback_get", set(), {"200"}),
    # ... and switching the served model without a restart.
    ("/api/model", "post"): ("switch_model_api_model_post", {"application/json"},
                             {"200", "400", "403", "404", "413", "415", "422"}),
    # Added by issue 12: the number in a picture.
    ("/api/read", "post"): ("read_api_read_post",
                            {"multipart/form-data", "application/json", "application/octet-stream"}, ERRORS),
}


def test_openapi_paths_methods_and_codes_are_unchanged(client: httpx.Client) -> None:
    spec = client.get("/openapi.json").json()
    surface = {(path, method): (op["operationId"], set(op.get("requestBody", {}).get("content", {})),
                                set(op["responses"]))
               for path, operations in spec["paths"].items() for method, op in operations.items()}
    assert surface == SURFACE


def test_openapi_request_bodies_are_the_ones_the_endpoints_check(client: httpx.Client) -> None:
    """Generated from the endpoints' declarations: the limits documented are the limits enforced."""
    spec = client.get("/openapi.json").json()

    def schema(path: str, media: str) -> dict:
        found = spec["paths"][path]["post"]["requestBody"]["content"][media]["schema"]
        return spec["components"]["schemas"][found["$ref"].rsplit("/", 1)[1]] if "$ref" in found else found

    pixels = schema("/api/predict", "application/json")["properties"]["pixels"]
    assert pixels["minItems"] == pixels["maxItems"] == 784
    assert pixels["items"] == {"type": "number", "minimum": 0, "maximum": 255}
    upload = schema("/api/predict", "multipart/form-data")
    assert upload["required"] == ["file"] and upload["properties"]["file"]["type"] == "string"
    assert schema("/api/predict", "application/octet-stream")["type"] == "string"
    files = schema("/api/predict/batch", "multipart/form-data")["properties"]["files"]
    images = schema("/api/predict/batch", "application/json")["properties"]["images"]
    assert (files["minItems"], files["maxItems"]) == (images["minItems"], images["maxItems"]) == (1, MAX_BATCH)
    # What is documented is enforced: the limits above, answered by the server as the schema says.
    too_many = [("files", (f"{i}.png", b"x", "image/png")) for i in range(MAX_BATCH + 1)]
    assert client.post("/api/predict/batch", files=too_many).status_code == 422


# ------------------------------------------------------------------------------------ bad requests

JSON = {"content-type": "application/json"}
ZEROS = [0] * 784
BAD_REQUESTS = {
    # name: (request kwargs, expected status, a word the error message must contain)
    "not an image (multipart)": (dict(files={"file": ("a.png", b"definitely not a png", "image/png")}), 400,
                                 "not a readable image"),
    "not an image (raw)": (dict(content=b"GIF89a nonsense", headers={"content-type": "image/gif"}), 400,
                           "not a readable image"),
    "truncated png": (dict(content=png(np.full((64, 64), 200, np.uint8))[:60],
                           headers={"content-type": "image/png"}), 400, "image"),
    "empty file (multipart)": (dict(files={"file": ("a.png", b"", "image/png")}), 400, "empty"),
    "empty body (raw)": (dict(content=b"", headers={"content-type": "application/octet-stream"}), 400,
                         "empty"),
    "empty body (json)": (dict(content=b"", headers=JSON), 400, "empty"),
    "decompression bomb": (dict(files={"file": ("bomb.png", bomb_png(100_000, 100_000), "image/png")}), 400,
                           "image"),
    "image just over the API's pixel limit": (
        dict(content=bomb_png(4097, 4096), headers={"content-type": "image/png"}), 400, "too large"),
    "bomb over open_image's pixel limit": (
        dict(content=bomb_png(8000, 6000), headers={"content-type": "image/png"}), 400, "too large"),
    "too few pixels": (dict(json={"pixels": [0] * 783}), 422, "784"),
    "too many pixels": (dict(json={"pixels": [0] * 785}), 422, "784"),
    "nested 28x28 instead of flat": (dict(json={"pixels": [[0] * 28] * 28}), 422, "pixels[0]"),
    "NaN": (dict(content=b'{"pixels": [NaN' + b", 0" * 783 + b"]}", headers=JSON), 422, "finite"),
    "Infinity": (dict(content=b'{"pixels": [Infinity' + b", 0" * 783 + b"]}", headers=JSON), 422, "finite"),
    "overflowing number": (dict(content=b'{"pixels": [1e999' + b", 0" * 783 + b"]}", headers=JSON), 422, ""),
    "above 255": (dict(json={"pixels": [256] + ZEROS[1:]}), 422, "255"),
    "negative": (dict(json={"pixels": ZEROS[1:] + [-1]}), 422, "pixels[783]"),
    "strings": (dict(json={"pixels": ["0"] * 784}), 422, "number"),
    "booleans": (dict(json={"pixels": [True] * 784}), 422, "number"),
    "nulls": (dict(json={"pixels": [None] * 784}), 422, "number"),
    "missing field": (dict(json={"pixel": ZEROS}), 422, "pixels"),
    "unknown field": (dict(json={"pixels": ZEROS, "label": 3}), 422, "label"),
    "JSON array, not object": (dict(json=ZEROS), 422, "body"),
    "malformed JSON": (dict(content=b'{"pixels": [0, 0,', headers=JSON), 400, "malformed JSON"),
    "not UTF-8": (dict(content=b'{"pixels": "\xff\xfe"}', headers=JSON), 400, "malformed JSON"),
    "text/plain": (dict(content=b"0,0,0", headers={"content-type": "text/plain"}), 415, "Content-Type"),
    "no content type": (dict(content=b"0,0,0"), 415, "Content-Type"),
    "form-urlencoded": (dict(data={"pixels": "0"}), 415, "Content-Type"),
    "multipart without file": (dict(files={"image": ("a.png", b"x", "image/png")}), 400, "'file'"),
    "multipart text field": (dict(data={"file": "abc"}, files={"other": ("a", b"x")}), 422, "file upload"),
    "broken multipart": (dict(content=b"--xx\r\nnonsense", headers={"content-type": "multipart/form-data"}),
                         400, ""),
}


@pytest.mark.parametrize("name", list(BAD_REQUESTS))
def test_bad_single_request_is_a_json_4xx(client: httpx.Client, name: str) -> None:
    kwargs, status, word = BAD_REQUESTS[name]
    start = time.perf_counter()
    response = client.post("/api/predict", **kwargs)
    assert time.perf_counter() - start < FAST
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert isinstance(error, str) and word in error


@pytest.mark.parametrize(("body", "word"), [
    ({"images": []}, "at least 1"),
    ({"images": [ZEROS] * (MAX_BATCH + 1)}, str(MAX_BATCH)),
    ({"images": [ZEROS, ZEROS[:-1]]}, "images[1]"),
    ({"images": [ZEROS, [float("nan")] * 784]}, "images[1][0]"),
    ({"pixels": ZEROS}, "images"),
])
def test_bad_batch_json(client: httpx.Client, body: dict, word: str) -> None:
    response = client.post("/api/predict/batch", content=json.dumps(body), headers=JSON)
    assert response.status_code == 422 and word in response.json()["error"]


def test_batch_multipart_limits_and_bad_members(client: httpx.Client, digits: tuple) -> None:
    good = paper_png(digits[0][0], 40)
    too_many = [("files", (f"{i}.png", good, "image/png")) for i in range(MAX_BATCH + 1)]
    response = client.post("/api/predict/batch", files=too_many)
    assert response.status_code == 422 and str(MAX_BATCH) in response.json()["error"]
    mixed = [("files", ("good.png", good, "image/png")), ("files", ("bad.png", b"nope", "image/png"))]
    response = client.post("/api/predict/batch", files=mixed)
    assert response.status_code == 400 and "bad.png" in response.json()["error"]
    response = client.post("/api/predict/batch", files={"file": ("good.png", good, "image/png")})
    assert response.status_code == 400 and "'files'" in response.json()["error"]
    response = client.post("/api/predict/batch", content=good, headers={"content-type": "image/png"})
    assert response.status_code == 415


@pytest.mark.parametrize(("method", "path", "status"), [
    ("GET", "/api/predict", 405), ("PUT", "/api/predict/batch", 405), ("DELETE", "/healthz", 405),
    ("GET", "/api/nothing-here", 404), ("DELETE", "/api/model", 405),
])
def test_wrong_route_or_method_is_json(client: httpx.Client, method: str, path: str, status: int) -> None:
    response = client.request(method, path)
    assert response.status_code == status and "error" in response.json()


# ------------------------------------------------------------------------------------ schemathesis


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_api_schema_finds_no_server_errors(api_server: str, mode: str) -> None:
    """Schemathesis generates requests from /openapi.json: valid ones, then ones that break the schema.

    Driven through plain Hypothesis (`as_strategy`) rather than `schema.parametrize()`, whose pytest plugin
    does not run under pytest 9. Bounded and derandomised: 25 examples an operation and mode, a few seconds.
    """
    schemathesis = pytest.importorskip("schemathesis")
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import content_type_conformance, status_code_conformance

    checks = [not_a_server_error, status_code_conformance, content_type_conformance]
    schema = schemathesis.openapi.from_url(f"{api_server}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {(op.path, op.method.lower()) for op in operations} == set(SURFACE)
    tried = 0
    for operation in operations:
        if mode == "negative" and operation.method.upper() == "GET":
            continue  # nothing in a bodiless GET can break its schema
        strategy = operation.as_strategy(generation_mode=schemathesis.GenerationMode(mode))

        @settings(max_examples=25, deadline=None, derandomize=True, database=None, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck))
        @given(case=strategy)
        def call(case: schemathesis.Case) -> None:
            nonlocal tried
            tried += 1
            case.call_and_validate(checks=checks, timeout=10)

        call()
    assert tried >= 25
