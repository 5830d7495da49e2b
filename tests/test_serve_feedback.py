"""POST /api/feedback and GET /api/feedback: corrections from the page become labelled samples on disk.

In-process (Starlette's TestClient) for the contract and every bad request, which must store nothing; over a
real socket (uvicorn in a thread, urllib and httpx) for concurrent corrections and the body-size limit.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from PIL import Image

from digitlab.data.images import load_class_folder, open_image, to_mnist
from digitlab.errors import DigitlabError
from digitlab.feedback import MAX_DIGITS_PER_SAMPLE, FeedbackStore
from digitlab.serve.app import create_app
from digitlab.serve.limits import MAX_BODY_BYTES
from digitlab.serve.server import running
from tests.test_serve_api import bomb_png, png

pytestmark = [pytest.mark.mnist, pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")]


@pytest.fixture(scope="module")
def app_and_folder(real_model: Path, tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("feedback") / "saved"
    return create_app(real_model, feedback=folder), folder


@pytest.fixture
def client(app_and_folder) -> Iterator:
    from fastapi.testclient import TestClient

    app, _ = app_and_folder
    with TestClient(app) as c:
        yield c


@pytest.fixture
def folder(app_and_folder) -> Path:
    return app_and_folder[1]


@pytest.fixture(scope="module")
def digits(mnist_test: tuple[torch.Tensor, torch.Tensor]) -> tuple[np.ndarray, np.ndarray]:
    images, labels = mnist_test
    return images[:8].numpy(), labels[:8].numpy()


def scan(digit: np.ndarray, scale: int = 6) -> bytes:
    """An MNIST digit as a drawing or scan: dark ink on white, upscaled."""
    return png(255 - np.kron(digit, np.ones((scale, scale), np.uint8)))


def number_picture(digits: np.ndarray, scale: int = 5) -> tuple[np.ndarray, list[list[int]]]:
    """Digits side by side (white on black) and each one's ink box [x0, y0, x1, y1] in the picture."""
    row = np.kron(np.concatenate(list(digits), axis=1), np.ones((scale, scale), np.uint8))
    boxes, side = [], 28 * scale
    for k in range(len(digits)):
        ys, xs = np.nonzero(row[:, k * side : (k + 1) * side] > 30)
        boxes.append([int(xs.min()) + k * side, int(ys.min()), int(xs.max()) + 1 + k * side, int(ys.max()) + 1])
    return row, boxes


def files_under(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")} if folder.exists() else set()


def stored_input(folder: Path, record: dict) -> np.ndarray:
    return np.asarray(Image.open(folder / record["input"]))


def last_records(folder: Path, n: int) -> list[dict]:
    return [json.loads(line) for line in (folder / "feedback.jsonl").read_text().splitlines()[-n:]]


# ----------------------------------------------------------------------------------- what is stored


def test_a_corrected_drawing_is_filed_under_its_label(client, folder: Path, digits) -> None:
    picture = scan(digits[0][0])
    response = client.post("/api/feedback", files={"file": ("drawing.png", picture, "image/png")},
                           data={"label": "1", "predicted": str(digits[1][0])})
    assert response.status_code == 201, response.text
    answer = response.json()
    assert answer["labels"] == [1] and len(answer["ids"]) == 1
    record = last_records(folder, 1)[0]
    assert record["id"] == answer["ids"][0] and record["input"] == f"1/{record['id']}.png"
    assert (record["corrected"], record["predicted"]) == (1, str(digits[1][0]))
    assert record["model"] == client.get("/api/model").json()["source"]
    # The stored input is what /api/predict computes for the same file, not anything the client sent.
    predicted = client.post("/api/predict", files={"file": ("d.png", picture, "image/png")}).json()
    np.testing.assert_array_equal(stored_input(folder, record), np.reshape(predicted["preprocessed"], (28, 28)))
    np.testing.assert_array_equal(stored_input(folder, record), to_mnist(open_image(picture)))
    original = Image.open(folder / record["original"])
    assert original.format == "PNG" and original.size == (168, 168)
    # The folder is a dataset `train --data` reads: this sample is among the 1s.
    images, labels, names = load_class_folder(folder)
    assert any(name.endswith(f"{record['id']}.png") and label == 1 for name, label in zip(names, labels.tolist(),
                                                                                          strict=True))


def test_json_pixels_are_stored_as_the_model_saw_them(client, folder: Path, digits) -> None:
    digit = digits[0][2]
    response = client.post("/api/feedback", json={"pixels": digit.ravel().tolist(), "label": int(digits[1][2])})
    assert response.status_code == 201, response.text
    record = last_records(folder, 1)[0]
    assert record["predicted"] == ""  # not given: the model refused, or the client did not say
    np.testing.assert_array_equal(stored_input(folder, record), digit)
    np.testing.assert_array_equal(np.asarray(Image.open(folder / record["original"])), digit)


@pytest.mark.parametrize("how", ["multipart", "json"])
def test_a_number_is_corrected_digit_by_digit(client, folder: Path, digits, how: str) -> None:
    picture, boxes = number_picture(digits[0][:3])
    truth = [int(v) for v in digits[1][:3]]
    entries = [{"label": truth[0], "predicted": truth[0], "box": boxes[0]},
               {"label": truth[1], "predicted": (truth[1] + 1) % 10, "box": boxes[1]},
               {"label": truth[2], "predicted": None, "box": boxes[2]}]
    if how == "multipart":
        response = client.post("/api/feedback", files={"file": ("n.png", png(255 - picture), "image/png")},
                               data={"digits": json.dumps(entries)})
    else:
        height, width = picture.shape
        response = client.post("/api/feedback", json={"pixels": picture.ravel().tolist(), "width": width,
                                                      "height": height, "digits": entries})
    assert response.status_code == 201, response.text
    assert response.json()["labels"] == truth
    records = last_records(folder, 3)
    assert [r["corrected"] for r in records] == truth
    assert [r["predicted"] for r in records] == [str(truth[0]), str((truth[1] + 1) % 10), ""]
    assert [r["box"] for r in records] == boxes
    assert len({r["original"] for r in records}) == 1 and len({r["id"] for r in records}) == 3
    # Each digit's input is that digit, cut from the picture: closer to its own MNIST image than to the others.
    for k, record in enumerate(records):
        stored = stored_input(folder, record).astype(float).ravel()
        scores = [np.corrcoef(stored, d.astype(float).ravel())[0, 1] for d in digits[0][:3]]
        assert int(np.argmax(scores)) == k and scores[k] > 0.6, scores


def test_status_counts_samples_and_gives_the_fine_tune_command(client, folder: Path, digits) -> None:
    before = client.get("/api/feedback").json()
    assert before["enabled"] and before["folder"] == str(folder)
    client.post("/api/feedback", json={"pixels": digits[0][3].ravel().tolist(), "label": 4})
    after = client.get("/api/feedback").json()
    assert after["counts"]["4"] == before["counts"]["4"] + 1
    assert after["counts"]["total"] == before["counts"]["total"] + 1 == len(
        (folder / "feedback.jsonl").read_text().splitlines())
    assert after["command"].startswith("digitlab train --init ") and f"--data {folder}" in after["command"]
    assert after["command"].endswith(f"--out {after['output']}")


# ----------------------------------------------------------------------------------- bad requests

DIGITS_OK = [{"label": 1, "box": [0, 0, 10, 10]}]
BAD = {
    # name: (request kwargs (a `file` of None means the scan below), status, a word the error must contain)
    "label 10": (dict(data={"label": "10"}), 422, "label"),
    "label -1": (dict(data={"label": "-1"}), 422, "label"),
    "label not a number": (dict(data={"label": "seven"}), 422, "label"),
    "label as a path": (dict(data={"label": "../../1"}), 422, "label"),
    "predicted 12": (dict(data={"label": "1", "predicted": "12"}), 422, "predicted"),
    "no label at all": (dict(data={}), 422, "label"),
    "label and digits": (dict(data={"label": "1", "digits": json.dumps(DIGITS_OK)}), 422, "either"),
    "digits not JSON": (dict(data={"digits": "7,1"}), 400, "digits"),
    "digits empty": (dict(data={"digits": "[]"}), 422, "digits"),
    "digit label 10": (dict(data={"digits": json.dumps([{"label": 10, "box": [0, 0, 5, 5]}])}), 422,
                       "digits[0].label"),
    "digit label as a path": (dict(data={"digits": json.dumps([{"label": "../1", "box": [0, 0, 5, 5]}])}), 422,
                              "digits[0].label"),
    "digit without box": (dict(data={"digits": json.dumps([{"label": 1}])}), 422, "digits[0].box"),
    "digit with unknown field": (dict(data={"digits": json.dumps([{**DIGITS_OK[0], "file": "../x.png"}])}), 422,
                                 "file"),
    "box outside the picture": (dict(data={"digits": json.dumps([{"label": 1, "box": [0, 0, 999, 10]}])}), 422,
                                "box"),
    "box upside down": (dict(data={"digits": json.dumps([{"label": 1, "box": [20, 20, 10, 10]}])}), 422, "box"),
    "box negative": (dict(data={"digits": json.dumps([{"label": 1, "box": [-5, 0, 10, 10]}])}), 422, "box"),
    "box of 3 numbers": (dict(data={"digits": json.dumps([{"label": 1, "box": [0, 0, 10]}])}), 422, "box"),
    "too many digits": (dict(data={"digits": json.dumps(DIGITS_OK * (MAX_DIGITS_PER_SAMPLE + 1))}), 422,
                        "digits"),
    "no image": (dict(files={"other": ("a.png", b"x", "image/png")}, data={"label": "1"}), 400, "'file'"),
    "empty image": (dict(files={"file": ("a.png", b"", "image/png")}, data={"label": "1"}), 400, "empty"),
    "not an image": (dict(files={"file": ("a.png", b"%PDF-1.4 nope", "image/png")}, data={"label": "1"}), 400,
                     "not a readable image"),
    "image over the pixel limit": (dict(files={"file": ("big.png", bomb_png(5000, 5000), "image/png")},
                                        data={"label": "1"}), 400, "too large"),
    "decompression bomb": (dict(files={"file": ("b.png", bomb_png(100_000, 100_000), "image/png")},
                                data={"label": "1"}), 400, "image"),
    "raw image body": (dict(content=b"\x89PNG", headers={"content-type": "image/png"}), 415, "Content-Type"),
    "json without pixels": (dict(json={"label": 1}), 422, "pixels"),
    "json pixels and size disagree": (dict(json={"pixels": [0] * 784, "width": 28, "height": 27, "label": 1}), 422,
                                      "pixels"),
    "json label as a string": (dict(json={"pixels": [0] * 784, "label": "1"}), 422, "label"),
    "json with a file name": (dict(json={"pixels": [0] * 784, "label": 1, "id": "../../etc/passwd"}), 422, "id"),
    "json with a folder": (dict(json={"pixels": [0] * 784, "label": 1, "folder": "/tmp"}), 422, "folder"),
    "json bad pixel": (dict(json={"pixels": [300] + [0] * 783, "label": 1}), 422, "pixels[0]"),
    "malformed json": (dict(content=b'{"pixels": [0,', headers={"content-type": "application/json"}), 400,
                       "malformed JSON"),
}


@pytest.mark.parametrize("name", list(BAD))
def test_a_bad_request_gets_a_4xx_and_stores_nothing(client, folder: Path, digits, name: str) -> None:
    kwargs, status, word = BAD[name]
    if "data" in kwargs and "files" not in kwargs:
        kwargs = {**kwargs, "files": {"file": ("ok.png", scan(digits[0][0], 3), "image/png")}}
    before = files_under(folder)
    response = client.post("/api/feedback", **kwargs)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert word in response.json()["error"]
    assert files_under(folder) == before, "a refused request must leave the folder as it was"


@pytest.mark.parametrize("filename", ["../../../evil.png", "/etc/passwd", "..\\..\\x.png", "7/../../x.png",
                                      ".hidden.png", "a\x00b.png"])
def test_the_clients_file_name_is_never_used(client, folder: Path, digits, filename: str) -> None:
    response = client.post("/api/feedback", files={"file": (filename, scan(digits[0][5], 3), "image/png")},
                           data={"label": "3"})
    assert response.status_code == 201, response.text
    record = last_records(folder, 1)[0]
    assert record["input"] == f"3/{record['id']}.png" and record["original"] == f"originals/{record['id']}.png"
    assert all(c.isalnum() or c in "T-" for c in record["id"])
    leaked = [p for p in folder.parent.parent.rglob("*") if "evil" in p.name or p.name in ("passwd", "x.png")]
    assert not leaked and all(folder in p.parents for p in folder.rglob("*"))


def test_a_full_folder_answers_507_and_stores_nothing(real_model: Path, tmp_path: Path, digits) -> None:
    from fastapi.testclient import TestClient

    app = create_app(real_model, feedback=tmp_path)
    app.state.feedback = FeedbackStore(tmp_path, max_samples=2)
    with TestClient(app) as client:
        picture, boxes = number_picture(digits[0][:2])
        ok = client.post("/api/feedback", json={"pixels": digits[0][0].ravel().tolist(), "label": 7})
        assert ok.status_code == 201
        before = files_under(tmp_path)
        entries = [{"label": 1, "box": boxes[0]}, {"label": 2, "box": boxes[1]}]
        full = client.post("/api/feedback", files={"file": ("n.png", png(picture), "image/png")},
                           data={"digits": json.dumps(entries)})
        assert full.status_code == 507 and "full" in full.json()["error"]
        assert files_under(tmp_path) == before
        assert client.get("/api/feedback").json()["counts"]["total"] == 1


def test_feedback_off_refuses_and_says_so(real_model: Path, digits) -> None:
    from fastapi.testclient import TestClient

    with TestClient(create_app(real_model)) as client:
        status = client.get("/api/feedback").json()
        assert status == {"enabled": False, "folder": None, "counts": None, "limit": None, "command": None,
                          "output": None}
        response = client.post("/api/feedback", json={"pixels": digits[0][0].ravel().tolist(), "label": 7})
        assert response.status_code == 403 and "feedback" in response.json()["error"]


def test_an_unwritable_folder_fails_before_serving(real_model: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(DigitlabError, match="feedback folder"):
        create_app(real_model, feedback=blocker / "feedback")


def test_serve_rejects_an_unwritable_feedback_folder_in_one_line(tmp_path: Path, capsys) -> None:
    from digitlab.cli import main

    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    assert main(["serve", "--model", "tutorial", "--port", "0", "--feedback", str(blocker / "f")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: feedback folder") and err.count("\n") == 1


# ----------------------------------------------------------------------------------- over real sockets


def test_concurrent_corrections_over_a_real_socket(real_model: Path, tmp_path: Path, digits) -> None:
    """Two clients (urllib and httpx) correct at the same moment, ten times: every sample lands whole."""
    app = create_app(real_model, feedback=tmp_path)
    rounds, barrier, answers, errors = 10, threading.Barrier(2), [], []

    def via_urllib(url: str, k: int) -> dict:
        body = json.dumps({"pixels": digits[0][k % 8].ravel().tolist(), "label": 2}).encode()
        request = urllib.request.Request(f"{url}/api/feedback", data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 201
            return json.loads(response.read())

    def via_httpx(url: str, k: int) -> dict:
        response = httpx.post(f"{url}/api/feedback", files={"file": ("d.png", scan(digits[0][k % 8], 4))},
                              data={"label": "5"}, timeout=30)
        assert response.status_code == 201, response.text
        return response.json()

    def client(url: str, send) -> None:
        try:
            for k in range(rounds):
                barrier.wait(timeout=30)
                answers.append(send(url, k))
        except BaseException as exc:  # reported below
            errors.append(exc)
            barrier.abort()

    with running(app) as url:
        threads = [threading.Thread(target=client, args=(url, send)) for send in (via_urllib, via_httpx)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        status = httpx.get(f"{url}/api/feedback").json()
    assert not errors, errors
    ids = [i for a in answers for i in a["ids"]]
    assert len(ids) == len(set(ids)) == 2 * rounds
    assert (status["counts"]["2"], status["counts"]["5"], status["counts"]["total"]) == (rounds, rounds, 2 * rounds)
    records = [json.loads(line) for line in (tmp_path / "feedback.jsonl").read_text().splitlines()]
    assert sorted(r["id"] for r in records) == sorted(ids)
    for r in records:
        assert Image.open(tmp_path / r["input"]).size == (28, 28)
        assert Image.open(tmp_path / r["original"]).format == "PNG"
    assert not [p for p in tmp_path.rglob("*.tmp")], "no temporary file may be left behind"
    assert FeedbackStore(tmp_path).counts()["total"] == 2 * rounds


def test_an_oversized_picture_is_refused_over_a_real_socket(real_model: Path, tmp_path: Path) -> None:
    """A 6 MB upload reaches urllib (which sends it all before reading) as a 413, and nothing is stored."""
    app = create_app(real_model, feedback=tmp_path / "f")
    boundary = "digitlab-test-boundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"label\"\r\n\r\n3\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.png\"\r\n\r\n").encode()
    body += b"\0" * (MAX_BODY_BYTES + 2**20) + f"\r\n--{boundary}--\r\n".encode()
    with running(app) as url:
        request = urllib.request.Request(f"{url}/api/feedback", data=body, method="POST",
                                         headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=30)
    assert refused.value.code == 413 and "5 MB" in json.loads(refused.value.read())["error"]
    assert files_under(tmp_path / "f") == set()


def test_openapi_documents_both_bodies(client) -> None:
    spec = client.get("/openapi.json").json()
    post = spec["paths"]["/api/feedback"]["post"]
    assert set(post["requestBody"]["content"]) == {"multipart/form-data", "application/json"}
    assert {"201", "400", "403", "413", "415", "422", "507"} <= set(post["responses"])
    request = spec["components"]["schemas"]["FeedbackRequest"]["properties"]
    assert request["label"]["anyOf"][0] == {"type": "integer", "minimum": 0, "maximum": 9}
    assert spec["components"]["schemas"]["DigitCorrection"]["properties"]["box"]["minItems"] == 4
    assert "get" in spec["paths"]["/api/feedback"]


def test_default_folder_is_the_users_data_directory(monkeypatch, tmp_path: Path) -> None:
    """`digitlab serve` saves to $XDG_DATA_HOME/digitlab/feedback unless told otherwise."""
    import digitlab.serve.server as server

    seen = {}
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    monkeypatch.setattr(server, "serve", lambda **kwargs: seen.update(kwargs))
    from digitlab.cli import main

    assert main(["serve"]) == 0 and seen["feedback"] == tmp_path / "digitlab" / "feedback"
    assert main(["serve", "--no-feedback"]) == 0 and seen["feedback"] is None
    assert main(["serve", "--feedback", "here"]) == 0 and seen["feedback"] == "here"

