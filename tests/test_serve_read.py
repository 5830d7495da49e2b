"""POST /api/read: numbers made of MNIST test digits are read, in-process (FastAPI's TestClient) and over a
real socket (urllib against conftest's `api_server`); blank pictures answer "" with a reason; every bad input
is a one-line JSON 4xx; /openapi.json documents the endpoint with its schemas.

    PYTHONPATH=src python -m pytest -q tests/test_serve_read.py
"""

from __future__ import annotations

import io
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image, ImageDraw

from digitlab.serve.app import create_app
from digitlab.serve.decode import digit_inputs
from digitlab.serve.limits import MAX_BODY_BYTES
from tests.test_serve_api import bomb_png

pytestmark = pytest.mark.mnist
GAP, SCALE = 14, 4  # blank MNIST pixels between digits, and the upscaling of the photo-like pictures


@pytest.fixture(scope="module")
def client(real_model: Path) -> Iterator[TestClient]:
    with TestClient(create_app(real_model)) as c:
        yield c


@pytest.fixture(scope="module")
def firsts(mnist_test: tuple[torch.Tensor, torch.Tensor]) -> dict[int, np.ndarray]:
    """The first MNIST test image of each digit: real handwriting, none of it seen in training."""
    images, labels = mnist_test
    return {d: images[int((labels == d).nonzero()[0])].numpy() for d in range(10)}


def number_strip(firsts: dict[int, np.ndarray], number: str) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """MNIST digits side by side, white ink on black (28 px high), and each digit's column span."""
    strip = np.zeros((28 + 2 * GAP, GAP + len(number) * (28 + GAP)), dtype=np.uint8)
    spans = []
    for k, char in enumerate(number):
        x = GAP + k * (28 + GAP)
        strip[GAP : GAP + 28, x : x + 28] = firsts[int(char)]
        spans.append((x, x + 28))
    return strip, spans


def paper_png(strip: np.ndarray) -> bytes:
    """The strip as a scan shows it: dark ink on light paper, SCALE times larger."""
    image = Image.fromarray(255 - strip)
    image = image.resize((image.width * SCALE, image.height * SCALE), Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def assert_reads(body: dict, number: str, spans: list[tuple[int, int]], scale: int, model: str) -> None:
    """`body` reads `number`, one digit per span, each box over its own digit, and is shaped as documented."""
    assert set(body) == {"number", "confidence", "reason", "digits", "minus", "marks", "model"}
    assert body["minus"] is None and body["marks"] == []
    assert (body["number"], body["reason"], body["model"]) == (number, None, model)
    assert 0.5 < body["confidence"] <= 1
    assert [d["label"] for d in body["digits"]] == [int(c) for c in number]
    for digit, (start, stop) in zip(body["digits"], spans, strict=True):
        assert set(digit) == {"box", "label", "confidence", "probabilities", "reason", "preprocessed"}
        x0, y0, x1, y1 = digit["box"]
        assert start * scale - scale <= x0 < x1 <= stop * scale + scale and 0 <= y0 < y1
        probs = digit["probabilities"]
        assert len(probs) == 10 and abs(sum(probs) - 1) < 1e-4 and digit["reason"] is None
        assert digit["confidence"] == pytest.approx(probs[digit["label"]]) and int(np.argmax(probs)) == digit["label"]
        assert len(digit["preprocessed"]) == 784 and max(digit["preprocessed"]) > 200


# ------------------------------------------------------------------------------------ in-process


@pytest.mark.parametrize("number", ["721", "042", "3859"])
def test_an_uploaded_number_is_read(client: TestClient, firsts: dict, real_model: Path, number: str) -> None:
    strip, spans = number_strip(firsts, number)
    response = client.post("/api/read", files={"file": ("number.png", paper_png(strip), "image/png")})
    assert response.status_code == 200, response.text
    assert_reads(response.json(), number, spans, SCALE, str(real_model))
    assert response.headers["server-timing"].startswith("read;dur=")


def test_json_pixels_of_any_canvas_size_are_read(client: TestClient, firsts: dict, real_model: Path) -> None:
    strip, spans = number_strip(firsts, "160")
    height, width = strip.shape
    response = client.post("/api/read", json={"pixels": strip.ravel().tolist(), "width": width, "height": height})
    assert response.status_code == 200, response.text
    assert_reads(response.json(), "160", spans, 1, str(real_model))


def test_preprocessed_is_what_feedback_saves_for_the_box(client: TestClient, firsts: dict) -> None:
    """The page shows each digit's `preprocessed`; a correction of that digit must save exactly that."""
    strip, _ = number_strip(firsts, "58")
    data = paper_png(strip)
    body = client.post("/api/read", files={"file": ("n.png", data, "image/png")}).json()
    boxes = [d["box"] for d in body["digits"]]
    saved = digit_inputs(Image.open(io.BytesIO(data)), boxes)
    assert [d["preprocessed"] for d in body["digits"]] == [s.ravel().tolist() for s in saved]


def test_a_blank_picture_is_no_number(client: TestClient) -> None:
    paper = io.BytesIO()
    Image.new("L", (600, 200), 235).save(paper, format="PNG")
    for request in (dict(files={"file": ("blank.png", paper.getvalue(), "image/png")}),
                    dict(json={"pixels": [0] * (84 * 28), "width": 84, "height": 28})):
        response = client.post("/api/read", **request)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["number"] == "" and body["digits"] == [] and body["reason"]


def dot_png() -> bytes:
    """A dot of ink: a mark, but no digit (too small to be one)."""
    image = Image.new("L", (300, 120), 0)
    ImageDraw.Draw(image).ellipse([144, 54, 158, 68], fill=255)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_mark_that_is_no_digit_is_refused_unless_accept_all(client: TestClient) -> None:
    data = dot_png()
    refused = client.post("/api/read", files={"file": ("s.png", data, "image/png")}).json()
    assert refused["number"] == "" and refused["reason"] == "not a digit", refused
    assert refused["digits"] and all(d["label"] is None and d["reason"] for d in refused["digits"])
    forced = client.post("/api/read?accept_all=true", files={"file": ("s.png", data, "image/png")})
    body = forced.json()
    assert forced.status_code == 200 and body["number"] and body["reason"] is None, body
    assert [d["label"] for d in body["digits"]] == [int(c) for c in body["number"]]


JSON_PICTURE = {"pixels": [0] * 12, "width": 4, "height": 3}
BAD = {
    # name: (request kwargs, status, a word the one-line error must contain)
    "not an image": (dict(files={"file": ("a.png", b"not a picture at all", "image/png")}), 400,
                     "not a readable image"),
    "not an image (raw body)": (dict(content=b"GIF89a nonsense", headers={"content-type": "image/gif"}), 400,
                                "not a readable image"),
    "empty file": (dict(files={"file": ("a.png", b"", "image/png")}), 400, "empty"),
    "empty body": (dict(content=b"", headers={"content-type": "image/png"}), 400, "empty"),
    "no file field": (dict(files={"other": ("a.png", b"x", "image/png")}), 400, "no 'file' field"),
    "wrong pixel count": (dict(json={**JSON_PICTURE, "width": 5}), 422, "expected width x height"),
    "pixel out of range": (dict(json={**JSON_PICTURE, "pixels": [0] * 11 + [256]}), 422, "pixels[11]"),
    "no pixels": (dict(json={"width": 4, "height": 3}), 422, "pixels"),
    "unknown key": (dict(json={**JSON_PICTURE, "colour": "red"}), 422, "colour"),
    "malformed JSON": (dict(content=b'{"pixels": [1,', headers={"content-type": "application/json"}), 400,
                       "malformed JSON"),
    "text": (dict(content=b"123", headers={"content-type": "text/plain"}), 415, "Content-Type"),
    # A few hundred bytes claiming 5000x5000 pixels: refused from the header, before decoding.
    "huge picture": (dict(files={"file": ("big.png", bomb_png(5000, 5000), "image/png")}), 400, "too large"),
}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_input_is_a_one_line_4xx(client: TestClient, name: str) -> None:
    request, status, word = BAD[name]
    response = client.post("/api/read", **request)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert word in error and "\n" not in error and set(response.json()) == {"error"}


def test_openapi_documents_read_with_its_schemas(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    operation = spec["paths"]["/api/read"]["post"]
    assert operation["operationId"] == "read_api_read_post"
    content = operation["requestBody"]["content"]
    assert set(content) == {"multipart/form-data", "application/json", "application/octet-stream"}
    assert content["application/json"]["schema"] == {"$ref": "#/components/schemas/ReadRequest"}
    assert {"200", "400", "413", "415", "422"} <= set(operation["responses"])
    answer = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert answer == {"$ref": "#/components/schemas/NumberReading"}
    schemas = spec["components"]["schemas"]
    assert set(schemas["NumberReading"]["properties"]) == {"number", "confidence", "reason", "digits", "minus", "marks",
                                                           "model"}
    assert schemas["NumberReading"]["properties"]["digits"]["items"] == {"$ref": "#/components/schemas/ReadDigit"}
    assert {"box", "label", "confidence", "probabilities", "reason"} <= set(schemas["ReadDigit"]["properties"])
    assert set(schemas["ReadRequest"]["required"]) == {"pixels"}
    assert [p["name"] for p in operation.get("parameters", [])] == ["accept_all"]


# ------------------------------------------------------------------------------------ a real socket


def post(url: str, body: bytes, content_type: str) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_over_a_socket(api_server: str, firsts: dict, real_model: Path) -> None:
    strip, spans = number_strip(firsts, "907")
    status, body = post(f"{api_server}/api/read", paper_png(strip), "image/png")
    assert status == 200, body
    assert_reads(body, "907", spans, SCALE, str(real_model))
    height, width = strip.shape
    picture = json.dumps({"pixels": strip.ravel().tolist(), "width": width, "height": height}).encode()
    status, body = post(f"{api_server}/api/read", picture, "application/json")
    assert status == 200 and body["number"] == "907", body
    status, body = post(f"{api_server}/api/read", json.dumps({"pixels": [0] * 784}).encode(), "application/json")
    assert status == 200 and body["number"] == "" and body["reason"], body


@pytest.mark.parametrize(("body", "content_type", "status"), [
    (b"this is not an image", "image/png", 400),
    (b"", "application/octet-stream", 400),
    (b"\x89PNG" + b"\0" * (MAX_BODY_BYTES + 1024), "image/png", 413),
    (json.dumps({"pixels": [0] * 10, "width": 3, "height": 3}).encode(), "application/json", 422),
    (b"12", "text/csv", 415),
])
def test_bad_input_over_a_socket(api_server: str, body: bytes, content_type: str, status: int) -> None:
    got, answer = post(f"{api_server}/api/read", body, content_type)
    assert got == status and set(answer) == {"error"} and "\n" not in answer["error"], answer
