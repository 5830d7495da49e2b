"""Learning a user's handwriting, in a real browser (Debian's chromium through Playwright, a real server):

1. draw a digit, correct the answer, and find the sample on disk where `train --data` reads it;
2. fine-tune on samples saved from the page (the CLI, as a subprocess), switch the page to the new model,
   and see the page answer with it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import MNIST
from tests.test_browser import CHROMIUM, DIGITS, Page

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium: apt-get install -y chromium"),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright Python package")


def open_page(browser: sync_api.Browser, url: str) -> tuple[Page, object]:
    context = browser.new_context(viewport={"width": 1100, "height": 900}, device_scale_factor=1)
    return Page(context.new_page(), url), context


def preview_pixels(page: Page) -> np.ndarray:
    data = page.page.evaluate(
        "() => Array.from(document.getElementById('preview').getContext('2d').getImageData(0, 0, 28, 28).data)")
    return np.array(data, dtype=np.uint8).reshape(28, 28, 4)[..., 0]


def saved_status(page: Page) -> str:
    page.page.wait_for_function(
        "document.querySelector('[data-testid=feedback-status]').textContent.startsWith('Saved')", timeout=10_000)
    return page.page.get_by_test_id("feedback-status").text_content()


def test_a_corrected_drawing_is_saved_where_training_reads_it(browser, tmp_path: Path) -> None:
    from digitlab.models import shipped_weights
    from digitlab.serve.app import create_app
    from digitlab.serve.server import running

    folder = tmp_path / "feedback"
    with running(create_app(shipped_weights(), feedback=folder)) as url:
        page, context = open_page(browser, url)
        try:
            page.page.wait_for_selector("[data-testid=feedback]:not([hidden])")
            assert page.page.get_by_test_id("feedback-count").text_content() == "No samples saved yet"
            assert page.page.get_by_test_id("correct-7").is_disabled()  # nothing to correct yet
            # A user's 7 that the model reads as 1 (here: a drawn 1, said to be a 7).
            page.draw(DIGITS[1])
            assert page.settled_prediction() == "1"
            shown = preview_pixels(page)
            page.page.get_by_test_id("correct-7").click()
            assert saved_status(page) == "Saved as 7"
            assert page.page.get_by_test_id("feedback-count").text_content() == "1 sample saved"
            command = page.page.get_by_test_id("finetune-command").text_content()
            assert command.startswith("digitlab train --init ") and str(folder) in command
            # Saved once: the buttons are off until the drawing changes.
            assert page.page.get_by_test_id("correct-2").is_disabled()
            page.shot("feedback-corrected")

            # And a confirmation: the model was right.
            page.clear()
            page.draw(DIGITS[3])
            assert page.settled_prediction() == "3"
            page.page.get_by_test_id("confirm").click()
            assert saved_status(page) == "Saved: confirmed 3"
            assert page.page.get_by_test_id("feedback-count").text_content() == "2 samples saved"
        finally:
            context.close()
    assert not page.errors and not page.foreign, (page.errors, page.foreign)

    records = [json.loads(line) for line in (folder / "feedback.jsonl").read_text().splitlines()]
    assert [(r["predicted"], r["corrected"]) for r in records] == [("1", 7), ("3", 3)]
    sevens = list((folder / "7").glob("*.png"))
    assert [p.stem for p in sevens] == [records[0]["id"]]
    # The sample is the 28x28 input the page showed the model seeing, and the drawing itself is kept.
    np.testing.assert_array_equal(np.asarray(Image.open(sevens[0])), shown)
    assert Image.open(folder / records[0]["original"]).size == (840, 280)  # the whole 3:1 pad


def test_fine_tuned_on_page_samples_the_page_answers_with_the_new_model(browser, tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Samples saved from the page -> `digitlab train --init` (a few steps of the tutorial CNN) -> "Use" in
    the page -> the page's answers are the new model's."""
    pytest.importorskip("digitlab.finetune", reason="needs train --init (issue 13, part C)")
    from digitlab.data.images import to_mnist
    from digitlab.engine import load_engine
    from digitlab.read import read_picture
    from digitlab.serve.app import create_app
    from digitlab.serve.server import running

    monkeypatch.chdir(tmp_path)  # the server's folder: `runs/my-handwriting` is made, and allowed, here
    folder = tmp_path / "feedback"
    with running(create_app("tutorial", feedback=folder)) as url:
        page, context = open_page(browser, url)
        try:
            page.page.wait_for_selector("[data-testid=feedback]:not([hidden])")
            for k in range(12):  # a dozen samples, each drawn and corrected as the user's own digit
                digit = [1, 3, 7, 0][k % 4]
                page.clear()
                page.draw(DIGITS[digit])
                page.settled_prediction()
                page.page.get_by_test_id(f"correct-{digit}").click()
                saved_status(page)
            assert page.page.get_by_test_id("feedback-count").text_content() == "12 samples saved"
            command = page.page.get_by_test_id("finetune-command").text_content().split()
            assert command[:2] == ["digitlab", "train"]
            # The page's command, run as the user would (a short schedule, so the test is quick).
            # MNIST for replay: the server's folder has no ./data/mnist, and the test cache is empty.
            env = {**os.environ, "OMP_NUM_THREADS": "1", "DIGITLAB_DATA": str(MNIST)}
            done = subprocess.run([sys.executable, "-m", "digitlab", *command[1:], "--steps", "20",
                                   "--replay-limit", "2000", "--eval-limit", "1000"], capture_output=True, text=True,
                                  env=env, timeout=300)
            assert done.returncode == 0, done.stderr
            output = tmp_path / page.page.get_by_test_id("use-finetuned").text_content().removeprefix("Use ")
            assert (output / "model.safetensors").is_file()
            page.page.locator("#teach-more summary").click()  # the button sits with the command, folded away
            page.page.get_by_test_id("use-finetuned").click()
            page.page.wait_for_function(
                "document.getElementById('model-info').textContent.includes('my-handwriting')", timeout=10_000)
            page.clear()
            page.draw(DIGITS[7])
            page.settled_prediction()
            shown = np.array(page.probabilities())
            page.page.get_by_test_id("correct-7").click()  # which keeps the picture the page sent
            saved_status(page)
        finally:
            context.close()
    assert not page.errors and not page.foreign, (page.errors, page.foreign)
    sent = Image.open(folder / json.loads((folder / "feedback.jsonl").read_text().splitlines()[-1])["original"])
    # load_engine, as the server does: the probabilities shown are calibrated by the model's stored temperature.
    new_engine, old_engine = load_engine(output, "torch", "cpu"), load_engine("tutorial", "torch", "cpu")
    new = read_picture(new_engine, sent).digits[0].probabilities
    seen = to_mnist(sent)
    np.testing.assert_allclose(shown, new, atol=2e-6)
    # Compared as logits: both models may be near-certain of a clear 7, so their probabilities can agree to 1e-5.
    new_logits, old_logits = new_engine.logits(seen[None]).numpy()[0], old_engine.logits(seen[None]).numpy()[0]
    assert not np.allclose(new_logits, old_logits, atol=1e-2), "the fine-tuned model must differ from its start"
