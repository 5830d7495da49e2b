"""The model behind the API: loaded once, run in worker threads, at most `workers` calls at a time.

Decoding, preprocessing and inference run in threads (anyio.to_thread), so the event loop keeps accepting
requests while the model works; a CapacityLimiter keeps a burst from starting more model calls than there are
cores, and beyond MAX_PENDING waiting requests the answer is 503 instead of an ever-growing queue.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import anyio
import numpy as np
from fastapi import Depends, Request

from digitlab import __version__
from digitlab.engine import Engine, load_engine
from digitlab.models import build, count_parameters, read_meta, resolve_model_path
from digitlab.refuse import refusals
from digitlab.serve.errors import ApiError
from digitlab.serve.limits import MAX_PENDING

T = TypeVar("T")


class Backlog:
    """Requests waiting for one kind of worker: past MAX_PENDING the next is answered 503 at once, instead of
    joining an ever-growing queue. The model's threads have one, and so do the decoding processes."""

    def __init__(self) -> None:
        self.waiting = 0

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        if self.waiting >= MAX_PENDING:
            raise ApiError(503, "server busy: too many requests queued, retry shortly")
        self.waiting += 1
        try:
            yield
        finally:
            self.waiting -= 1

# The input /healthz sends through the model: a vertical stroke, a '1'.
CHECK_IMAGE = np.zeros((1, 28, 28), dtype=np.uint8)
CHECK_IMAGE[0, 4:24, 13:15] = 255


class ModelRunner:
    """One loaded model (`engine`), its description (`info`), and the worker threads that run it."""

    def __init__(self, model: str | os.PathLike | None, engine: str = "torch", workers: int | None = None) -> None:
        self.model = model
        self.engine: Engine = load_engine(model, engine, "cpu")
        self.info = model_info(model, self.engine)
        self.workers = workers or max(1, min(4, os.cpu_count() or 1))
        self._limiter: anyio.CapacityLimiter | None = None
        self._backlog = Backlog()
        # The first call of a model is slow (allocator, kernel selection): pay it now, not in a request. Its
        # answer is what the health check expects from the model ever after.
        self.expected = self.engine.probabilities(CHECK_IMAGE).numpy()

    @property
    def init_model(self) -> str:
        """What `digitlab train --init` takes to fine-tune this model: a shipped name, or the path given."""
        if self.model is None or str(self.model).endswith(".onnx"):  # an ONNX file has no trainable weights
            return resolve_model_path(None).stem
        return str(self.model)

    def predict(self, images: np.ndarray, accept_all: bool = False) -> tuple[list[dict[str, Any]], float]:
        """uint8 (N, 28, 28) -> one response dict per image (a `Prediction`), and the model's time in seconds.

        Unless `accept_all`, digitlab.refuse judges the same inputs (one batch): a refused image answers
        `label` null and a `reason` ('blank', 'not a digit'); the probabilities are still the model's."""
        start = time.perf_counter()
        probs = self.engine.probabilities(images)
        reasons = [None] * len(images) if accept_all else refusals(images)
        elapsed = time.perf_counter() - start
        labels = probs.argmax(1).tolist()
        rows = probs.tolist()
        results = [
            {"label": None if reason else label, "confidence": row[label], "probabilities": row,
             "reason": reason, "preprocessed": image.ravel().tolist()}
            for label, row, image, reason in zip(labels, rows, images, reasons, strict=True)
        ]
        return results, elapsed

    async def run(self, prepare: Callable[[], np.ndarray], accept_all: bool = False
                  ) -> tuple[list[dict[str, Any]], float, float]:
        """`prepare()` (decode + preprocess) and the model, in a worker thread: results, prep s, model s."""

        def work() -> tuple[list[dict[str, Any]], float, float]:
            start = time.perf_counter()
            images = prepare()
            prepared = time.perf_counter() - start
            results, model_s = self.predict(images, accept_all)
            return results, prepared, model_s

        return await self._in_worker(work)

    async def call(self, function: Callable[[], T]) -> T:
        """`function()` in a worker thread, like `run`: for model work other than one prediction per image
        (reading a number: routes/read.py)."""
        return await self._in_worker(function)

    async def check(self) -> None:
        """Run the check image through the model as a request would; ApiError 503 unless the answer is the one
        the model gave when it was loaded."""

        def work() -> str | None:
            try:
                got = self.engine.probabilities(CHECK_IMAGE).numpy()
            except Exception as exc:  # whatever broke, the model cannot answer: that is the finding
                return f"{type(exc).__name__}: {exc}"
            if got.shape != self.expected.shape or not np.allclose(got, self.expected, atol=1e-5):
                return "the model no longer gives the answer it gave when it was loaded"
            return None

        problem = await self._in_worker(work)
        if problem is not None:
            raise ApiError(503, f"model check failed: {problem}")

    def share_workers(self, other: ModelRunner) -> None:
        """Run in `other`'s worker pool: after a model switch, requests still running on the old model and
        new ones on this model together start no more model calls than there are workers."""
        self._limiter = other._limiter

    async def _in_worker(self, function: Callable[[], T]) -> T:
        if self._limiter is None:  # created lazily: it belongs to the event loop that serves the app
            self._limiter = anyio.CapacityLimiter(self.workers)
        with self._backlog.slot():
            return await anyio.to_thread.run_sync(function, limiter=self._limiter)


def model_info(model: str | os.PathLike | None, engine: Engine) -> dict[str, Any]:
    """What /api/model reports (a `ModelInfo`), from the weights' own metadata."""
    source = f"shipped ({resolve_model_path(None).name})" if model is None else str(model)
    is_onnx = model is not None and str(model).endswith(".onnx")
    weights = Path(model) if is_onnx else resolve_model_path(model)
    loaded = {"loaded_at": datetime.now(UTC).isoformat(timespec="seconds"),
              "sha256": hashlib.sha256(weights.read_bytes()).hexdigest()}
    if is_onnx:
        return {"arch": "onnx", "parameters": None, "accuracy": None, "engine": engine.name, "source": source,
                "version": __version__, **loaded}
    meta = read_meta(weights)
    metrics = meta.get("metrics") or {}
    parameters = meta.get("parameters")
    if parameters is None:  # weights saved without the count: the architecture has it
        parameters = count_parameters(build(meta["arch"]))
    return {
        "arch": meta["arch"],
        "parameters": parameters,
        "accuracy": metrics.get("test_accuracy"),
        "engine": engine.name,
        "source": source,
        "version": __version__,
        "training": meta.get("training"),
        "metrics": metrics or None,
        "versions": meta.get("versions"),
        **loaded,
    }


async def current_runner(request: Request) -> ModelRunner:
    """The runner of the app serving `request` (a FastAPI dependency: routes declare `runner: Runner`).

    Taken once per request, so a request finishes on the model it started with whatever is switched
    meanwhile; first, the app's ModelSwitch (serve/switch.py) may reload a model whose file changed."""
    switch = getattr(request.app.state, "switch", None)
    if switch is not None:
        await switch.refresh()
    return request.app.state.runner


Runner = Annotated[ModelRunner, Depends(current_runner)]
