"""Reading whole numbers in a real browser (Debian's chromium through Playwright, a real server): a
three-digit number written with the mouse is read, with a box and probability bars per digit, a negative
one with its sign and a decimal one with its point; a blank
picture says "no digit" and a scribble "not a digit"; a digit of a number can be corrected on its own.

    PYTHONPATH=src python -m pytest -q tests/test_browser_read.py
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.test_browser import CHROMIUM, DIGITS, ROOT, Page, Point, arc, line

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium: apt-get install -y chromium"),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright Python package")

NUMBER = "170"  # clear strokes the shipped model reads surely, one per third of the 3:1 pad


# A 6: down the left in one curve, round into the loop at the bottom.
SIX: list[list[Point]] = [arc(0.66, 0.62, 0.32, 0.44, -115, -180) + arc(0.5, 0.63, 0.16, 0.17, 180, 530)]


def scribble(seed: int) -> list[list[Point]]:
    """One stroke through 25 random points of a square: a tangle of ink that is no digit."""
    rng = np.random.default_rng(seed)
    corners = [(float(x), float(y)) for x, y in rng.uniform(0.15, 0.85, (25, 2))]
    return [[p for a, b in pairwise(corners) for p in line(a, b, 4)]]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The app with the shipped weights, saving corrections to a temporary feedback folder."""
    from digitlab.models import shipped_weights
    from digitlab.serve.app import create_app
    from digitlab.serve.server import running

    folder = tmp_path_factory.mktemp("read-feedback")
    with running(create_app(shipped_weights(), feedback=folder)) as url:
        yield url, folder


@pytest.fixture
def page(browser: sync_api.Browser, server: tuple[str, Path]) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1100, "height": 900}, device_scale_factor=1)
    opened = Page(context.new_page(), server[0])
    yield opened
    context.close()
    assert not opened.foreign, f"the page fetched from elsewhere (it must work offline): {opened.foreign}"
    assert not opened.errors, f"errors in the browser console: {opened.errors}"


def write_number(page: Page, number: str, start: int = 0) -> None:
    """`number` written with the mouse, one digit to a third of the pad from third `start`."""
    for k, char in enumerate(number):
        page.draw(DIGITS[int(char)], cell=start + k)


def chips(page: Page) -> list[str]:
    """The label of each digit shown under the answer ('' for a refused mark), left to right."""
    return page.page.locator("[data-testid=digits] > li").evaluate_all("items => items.map(i => i.dataset.label)")


def overlay_ink(page: Page) -> np.ndarray:
    """How much the box overlay has drawn in each third of the pad."""
    alpha = page.page.evaluate(
        """() => {
            const o = document.getElementById("overlay");
            const data = o.getContext("2d").getImageData(0, 0, o.width, o.height).data;
            const thirds = [0, 0, 0];
            for (let i = 3; i < data.length; i += 4) {
                thirds[Math.min(2, Math.floor(((i >> 2) % o.width) * 3 / o.width))] += data[i];
            }
            return thirds;
        }""")
    return np.array(alpha)


def test_a_number_written_with_the_mouse_is_read(page: Page) -> None:
    write_number(page, NUMBER)
    assert page.settled_prediction() == NUMBER
    page.shot("read-170")
    if os.environ.get("DIGITLAB_DOCS_SCREENSHOT"):  # DIGITLAB_DOCS_SCREENSHOT=1 refreshes the README's picture
        page.page.screenshot(path=str(ROOT / "docs" / "serve.png"), full_page=True)
    assert chips(page) == list(NUMBER)
    assert "% sure" in page.page.get_by_test_id("confidence").text_content()
    assert (overlay_ink(page) > 0).all(), "a box over every digit"
    # Each digit's own bars: choosing a digit shows its probabilities, its best digit highlighted.
    for k, char in enumerate(NUMBER):
        page.page.locator("[data-testid=digits] > li button").nth(k).click()
        probs = page.probabilities()
        assert int(np.argmax(probs)) == int(char) and abs(sum(probs) - 1) < 1e-3
        assert page.page.locator("[data-testid=probabilities] li.best").get_attribute("data-digit") == char
        mini = page.page.locator("[data-testid=digits] > li").nth(k).locator(".mini li.best")
        assert mini.get_attribute("data-digit") == char
    page.clear()
    assert chips(page) == [] and not overlay_ink(page).any()
    assert page.page.get_by_test_id("prediction").get_attribute("data-state") == "empty"


def test_2026_in_four_digits_is_read(page: Page) -> None:
    """The issue's example: four digits, a little closer together than the pad's thirds."""
    for k, char in enumerate("2026"):
        page.draw(SIX if char == "6" else DIGITS[int(char)], cell=0.05 + 0.68 * k)
    shown = page.settled_prediction()
    page.shot("read-2026")
    assert shown == "2026" and chips(page) == list("2026")


def test_a_negative_number_is_read_with_its_sign(page: Page) -> None:
    """A bar before "70" at its mid-height: -70 (stop 50: the minus had been left out, "70")."""
    page.draw([line((0.5, 0.52), (0.9, 0.51), 10)], cell=0)
    write_number(page, "70", start=1)
    shown = page.settled_prediction()
    page.shot("read-minus-70")
    assert shown == "-70" and chips(page) == list("70")


def test_a_decimal_point_is_read(page: Page) -> None:
    """A dot on the baseline between a 7 and a 0: 7.0 (stop 51: the point had been left out, "70")."""
    page.draw(DIGITS[7], cell=0)
    page.draw([arc(1.0, 0.79, 0.02, 0.02, 0, 360, step=45)], cell=0)
    page.draw(DIGITS[0], cell=1)
    shown = page.settled_prediction()
    page.shot("read-point-7.0")
    assert shown == "7.0" and chips(page) == list("70")


def assert_refused(page: Page, shown: str) -> None:
    """The prediction says `shown` ("no digit" / "not a digit") and the server's reason is written under it."""
    assert page.settled_prediction() == shown
    reason = page.page.get_by_test_id("prediction").get_attribute("data-reason")
    assert reason and reason in page.page.get_by_test_id("confidence").text_content()
    assert all(label == "" for label in chips(page))  # any mark found is shown as not read


def test_nothing_written_is_no_digit(page: Page, tmp_path: Path) -> None:
    blank = tmp_path / "empty-page.png"  # a photo of an empty page: paper, and nothing on it
    Image.new("RGB", (900, 300), (232, 228, 220)).save(blank)
    page.page.set_input_files("#file", str(blank))
    assert_refused(page, "no digit")
    assert chips(page) == [] and not overlay_ink(page).any()
    page.shot("read-blank")
    page.draw(DIGITS[7])  # and writing on the pad afterwards reads again
    assert page.settled_prediction() == "7"


def test_a_scribble_is_not_a_digit(page: Page) -> None:
    page.draw(scribble(3))
    page.shot("read-scribble")
    assert_refused(page, "not a digit")


def test_one_digit_of_a_number_is_corrected(page: Page, server: tuple[str, Path]) -> None:
    """The user wrote 110 but the middle 1 came out like a 7: choose that digit, pick 1, and the number's
    three digits are saved, each under its label with its box."""
    page.page.wait_for_selector("[data-testid=feedback]:not([hidden])")
    write_number(page, NUMBER)
    assert page.settled_prediction() == NUMBER
    boxes = page.page.evaluate("() => Array.from(document.querySelectorAll('[data-testid=digits] > li'))"
                               ".map(li => li.dataset.index)")
    assert boxes == ["0", "1", "2"]
    page.page.locator("[data-testid=digits] > li button").nth(1).click()
    page.page.get_by_test_id("correct-1").click()
    page.page.wait_for_function(
        "document.querySelector('[data-testid=feedback-status]').textContent.startsWith('Saved')", timeout=10_000)
    assert page.page.get_by_test_id("feedback-status").text_content() == "Saved as 110"
    folder = server[1]
    records = [json.loads(line) for line in (folder / "feedback.jsonl").read_text().splitlines()][-3:]
    assert [(r["predicted"], r["corrected"]) for r in records] == [("1", 1), ("7", 1), ("0", 0)]
    assert [r["box"][0] for r in records] == sorted(r["box"][0] for r in records)
    original = Image.open(folder / records[0]["original"])
    assert original.size == (840, 280)
    # The saved input of the corrected digit is what the page showed for it.
    shown = page.page.evaluate(
        "() => Array.from(document.getElementById('preview').getContext('2d').getImageData(0, 0, 28, 28).data)")
    saved = np.asarray(Image.open(io.BytesIO((folder / records[1]["input"]).read_bytes())))
    np.testing.assert_array_equal(np.array(shown, dtype=np.uint8).reshape(28, 28, 4)[..., 0], saved)
