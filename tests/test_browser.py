"""The drawing page in a real browser: Debian's chromium driven by Playwright, against a real server.

Digits are drawn with mouse (and touch) strokes shaped like handwriting, and the page must show what the
shipped model reads; Clear, file upload and drag-and-drop are exercised too. Screenshots land in
test-artifacts/ (gitignored; CI keeps them). The pad is a 3:1 strip; a lone digit is drawn in its middle
square (tests/test_browser_read.py writes whole numbers, and refreshes docs/serve.png).
"""

from __future__ import annotations

import base64
import math
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium: apt-get install -y chromium"),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright Python package")

Point = tuple[float, float]


# -------------------------------------------------------------------------------- digits as strokes
# Coordinates are fractions of the pad's side, y downwards. Each digit is a list of strokes, each stroke a
# polyline dense enough to look like a hand moving a pen.


def arc(cx: float, cy: float, rx: float, ry: float, start: float, stop: float, step: float = 8
        ) -> list[Point]:
    """Points along an ellipse from angle `start` to `stop` (degrees; 0 = right, 90 = down)."""
    count = max(2, int(abs(stop - start) / step) + 1)
    angles = np.radians(np.linspace(start, stop, count))
    return [(cx + rx * math.cos(a), cy + ry * math.sin(a)) for a in angles]


def line(a: Point, b: Point, count: int = 12) -> list[Point]:
    return [(a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t) for t in np.linspace(0, 1, count)]


DIGITS: dict[int, list[list[Point]]] = {
    # A slightly slanted downstroke with the small lead-in flick many people write.
    1: [line((0.44, 0.27), (0.53, 0.17), 5) + line((0.53, 0.17), (0.49, 0.83), 16)],
    # Two bowls in one stroke: top-left, round the right, in to the middle, round the right again, out.
    3: [arc(0.48, 0.35, 0.17, 0.13, -160, 90) + arc(0.48, 0.62, 0.19, 0.15, -90, 150)],
    # A bar, then a long diagonal.
    7: [line((0.27, 0.22), (0.72, 0.21), 12) + line((0.72, 0.21), (0.44, 0.82), 16)],
    # An oval, closed with a little overlap, started at the top as most people do.
    0: [arc(0.5, 0.5, 0.2, 0.3, -100, 275)],
    # A hook, a diagonal down-left, and a flat base.
    2: [arc(0.49, 0.35, 0.18, 0.14, -170, 30) + line((0.645, 0.42), (0.3, 0.78), 14) +
        line((0.3, 0.78), (0.72, 0.77), 10)],
    # Two strokes: an open angle, then the long vertical.
    4: [line((0.46, 0.18), (0.28, 0.58), 12) + line((0.28, 0.58), (0.74, 0.58), 12),
        line((0.62, 0.3), (0.6, 0.84), 14)],
}


# --------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def shipped_server() -> Iterator[str]:
    """The app with the shipped weights: the model people will draw for must read these strokes.

    DIGITLAB_SERVE_TEST_MODEL may point at other weights, for working on the page before weights ship.
    """
    from digitlab.models import shipped_weights
    from digitlab.serve.app import create_app
    from digitlab.serve.server import running

    model = Path(os.environ.get("DIGITLAB_SERVE_TEST_MODEL") or shipped_weights())
    if not (model / "model.safetensors" if model.is_dir() else model).is_file():
        pytest.skip(f"no shipped weights at {model}; the browser tests check what the shipped model reads")
    with running(create_app(model)) as url:
        yield url


class Page:
    """One open page and what it did: requests made off the server, and any JS errors."""

    def __init__(self, page: sync_api.Page, base: str) -> None:
        self.page = page
        self.base = base
        self.foreign: list[str] = []
        self.errors: list[str] = []
        local = (base, "data:", "blob:")
        page.on("request", lambda r: None if r.url.startswith(local) else self.foreign.append(r.url))
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.goto(f"{base}/")
        page.wait_for_function("document.getElementById('model-info').textContent.startsWith('Model')")

    def pad_box(self) -> dict:
        # The mouse works in viewport coordinates: a click lower on the page (the fine-tune panel) may have
        # scrolled the pad out of view.
        self.page.locator("#pad").scroll_into_view_if_needed()
        return self.page.locator("#pad").bounding_box()

    def cell(self, index: float = 1) -> tuple[float, float, float]:
        """x, y and side of a square of the pad: the pad is a 3:1 strip, so squares 0, 1 and 2 are its left,
        middle and right thirds (a lone digit is written in the middle one)."""
        box = self.pad_box()
        return box["x"] + index * box["height"], box["y"], box["height"]

    def draw(self, strokes: list[list[Point]], cell: float = 1) -> None:
        x0, y0, side = self.cell(cell)
        mouse = self.page.mouse
        for stroke in strokes:
            x, y = stroke[0]
            mouse.move(x0 + x * side, y0 + y * side)
            mouse.down()
            for x, y in stroke[1:]:
                mouse.move(x0 + x * side, y0 + y * side, steps=2)
            mouse.up()

    def settled_prediction(self) -> str:
        """The shown digit once no newer prediction is pending."""
        self.page.wait_for_selector("[data-testid=prediction][data-state=ready]", timeout=10_000)
        return self.page.get_by_test_id("prediction").text_content()

    def probabilities(self) -> list[float]:
        items = self.page.locator("[data-testid=probabilities] li")
        return [float(items.nth(d).get_attribute("data-probability")) for d in range(10)]

    def clear(self) -> None:
        self.page.get_by_test_id("clear").click()

    def shot(self, name: str) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path))
        return path


@pytest.fixture
def page(browser: sync_api.Browser, shipped_server: str) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1100, "height": 760}, device_scale_factor=1)
    opened = Page(context.new_page(), shipped_server)
    yield opened
    context.close()
    assert not opened.foreign, f"the page fetched from elsewhere (it must work offline): {opened.foreign}"
    assert not opened.errors, f"errors in the browser console: {opened.errors}"


def mnist_upload(mnist_test: tuple[torch.Tensor, torch.Tensor], index: int, path: Path) -> int:
    """An MNIST test digit as people have them: 200x200 PNG, dark ink on light paper; returns its label."""
    images, labels = mnist_test
    Image.fromarray(255 - images[index].numpy()).resize((200, 200), Image.Resampling.BICUBIC).save(path)
    return int(labels[index])


# ------------------------------------------------------------------------------------------ tests


@pytest.mark.parametrize("digit", [1, 3, 7, 0, 2, 4])
def test_drawn_digit_is_recognised(page: Page, digit: int) -> None:
    page.draw(DIGITS[digit])
    shown = page.settled_prediction()
    page.shot(f"drawn-{digit}")
    assert shown == str(digit)
    probs = page.probabilities()
    assert int(np.argmax(probs)) == digit and abs(sum(probs) - 1) < 1e-3
    assert page.page.locator("[data-testid=probabilities] li.best").get_attribute("data-digit") == str(digit)
    assert "% sure" in page.page.get_by_test_id("confidence").text_content()


def test_prediction_updates_while_drawing(page: Page) -> None:
    x0, y0, side = page.cell()
    mouse = page.page.mouse
    stroke = DIGITS[7][0]
    mouse.move(x0 + stroke[0][0] * side, y0 + stroke[0][1] * side)
    mouse.down()
    for x, y in stroke[1:]:
        mouse.move(x0 + x * side, y0 + y * side, steps=2)
    # The pen is still down: a throttled prediction must already have arrived.
    page.page.wait_for_function(
        "/^[0-9]$/.test(document.querySelector('[data-testid=prediction]').textContent)", timeout=5_000
    )
    mouse.up()
    assert page.settled_prediction() == "7"


def test_clear_resets_the_pad_and_the_prediction(page: Page) -> None:
    page.draw(DIGITS[3])
    assert page.settled_prediction() == "3"
    page.clear()
    prediction = page.page.get_by_test_id("prediction")
    assert prediction.get_attribute("data-state") == "empty"
    assert not prediction.text_content().strip().isdigit()
    assert page.probabilities() == [0.0] * 10
    ink = page.page.evaluate(
        """() => {
            const pad = document.getElementById("pad");
            const data = pad.getContext("2d").getImageData(0, 0, pad.width, pad.height).data;
            let sum = 0;
            for (let i = 0; i < data.length; i += 4) sum += data[i];
            return sum;
        }"""
    )
    assert ink == 0
    page.page.wait_for_timeout(400)  # a late answer for the cleared drawing must not reappear
    assert prediction.get_attribute("data-state") == "empty"
    page.shot("cleared")
    page.draw(DIGITS[1])  # and the pad still works afterwards
    assert page.settled_prediction() == "1"


def test_preview_shows_what_the_model_sees(page: Page) -> None:
    page.draw(DIGITS[0])
    page.settled_prediction()
    preview = page.page.evaluate(
        "() => Array.from(document.getElementById('preview').getContext('2d')"
        ".getImageData(0, 0, 28, 28).data)"
    )
    gray = np.array(preview, dtype=np.uint8).reshape(28, 28, 4)[..., 0]
    assert gray.max() > 200 and gray[0].max() == 0 and gray[:, 0].max() == 0  # a centred digit, 4 px margin
    rows, cols = np.nonzero(gray)
    assert 12 <= (rows.min() + rows.max()) / 2 <= 16 and 12 <= (cols.min() + cols.max()) / 2 <= 16
    style = page.page.evaluate("getComputedStyle(document.getElementById('preview')).imageRendering")
    assert style == "pixelated"


def test_uploaded_file_is_recognised(page: Page, mnist_test: tuple, tmp_path: Path) -> None:
    label = mnist_upload(mnist_test, 0, tmp_path / "digit.png")
    page.page.set_input_files("#file", str(tmp_path / "digit.png"))
    assert page.settled_prediction() == str(label)
    page.shot("uploaded")
    # Drawing after an upload starts a fresh drawing.
    page.draw(DIGITS[1])
    assert page.settled_prediction() == "1"


def test_dropped_file_is_recognised(page: Page, mnist_test: tuple, tmp_path: Path) -> None:
    label = mnist_upload(mnist_test, 1, tmp_path / "dropped.png")
    data = base64.b64encode((tmp_path / "dropped.png").read_bytes()).decode()
    transfer = page.page.evaluate_handle(
        """(data) => {
            const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], "dropped.png", { type: "image/png" }));
            return transfer;
        }""",
        data,
    )
    page.page.dispatch_event("#dropzone", "dragenter", {"dataTransfer": transfer})
    page.page.dispatch_event("#dropzone", "drop", {"dataTransfer": transfer})
    assert page.settled_prediction() == str(label)
    page.shot("dropped")


def test_a_file_that_is_not_an_image_shows_an_error(page: Page, tmp_path: Path) -> None:
    bogus = tmp_path / "notes.png"
    bogus.write_text("this is not a picture")
    page.page.set_input_files("#file", str(bogus))
    page.page.wait_for_selector("[data-testid=prediction][data-state=error]")
    assert "not a readable image" in page.page.get_by_test_id("status").text_content()
    page.errors = [e for e in page.errors if "400" not in e]  # the failed request is logged; that is expected


def test_touch_drawing(browser: sync_api.Browser, shipped_server: str) -> None:
    """A finger on a touch screen: Pointer Events with pointerType 'touch', no scrolling."""
    context = browser.new_context(viewport={"width": 420, "height": 860}, has_touch=True, is_mobile=True,
                                  device_scale_factor=2)
    try:
        page = Page(context.new_page(), shipped_server)
        x0, y0, side = page.cell()
        cdp = context.new_cdp_session(page.page)

        def touch(kind: str, x: float, y: float) -> None:
            at = {"x": x0 + x * side, "y": y0 + y * side}
            points = [] if kind == "touchEnd" else [at]
            cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": points})

        stroke = DIGITS[7][0]
        touch("touchStart", *stroke[0])
        for x, y in stroke[1:]:
            touch("touchMove", x, y)
        touch("touchEnd", 0, 0)
        assert page.settled_prediction() == "7"
        assert page.page.evaluate("window.scrollY") == 0
        page.shot("touch-7")
        assert not page.errors
    finally:
        context.close()


def test_api_docs_render_offline(browser: sync_api.Browser, shipped_server: str) -> None:
    context = browser.new_context()
    try:
        page = context.new_page()
        foreign: list[str] = []
        errors: list[str] = []
        page.on("request", lambda r: None if r.url.startswith(shipped_server) else foreign.append(r.url))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(f"{shipped_server}/docs")
        page.wait_for_selector("section.op")
        titles = page.locator("section.op h2").all_text_contents()
        expected = {"POST/api/predict", "POST/api/read", "POST/api/predict/batch", "GET/api/model", "GET/healthz"}
        assert expected <= set(titles)
        assert not foreign and not errors, (foreign, errors)
    finally:
        context.close()
