"""GET /api/model: which model is served, its architecture, size, accuracy and training record."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from digitlab.serve.runner import Runner
from digitlab.serve.schemas import ModelInfo

router = APIRouter()


@router.get("/api/model", response_model=ModelInfo, summary="Describe the served model")
async def model_info(runner: Runner) -> dict[str, Any]:
    return runner.info
