"""GET /healthz: 200 when the served model still answers a check input as it did when it was loaded."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from digitlab import __version__
from digitlab.serve.errors import responses
from digitlab.serve.runner import Runner
from digitlab.serve.schemas import Health

router = APIRouter()


@router.get("/healthz", response_model=Health, summary="Check that the model answers",
            responses=responses(503, _503="the model failed its check, or too many requests are queued"))
async def healthz(runner: Runner) -> dict[str, Any]:
    """Runs a check image through the model, in a worker thread like any prediction, and compares the answer
    with the one the model gave when it was loaded: a broken or overloaded server answers 503."""
    await runner.check()
    return {"status": "ok", "model_loaded": True, "engine": runner.engine.name, "version": __version__,
            "arch": runner.info["arch"], "source": runner.info["source"]}
