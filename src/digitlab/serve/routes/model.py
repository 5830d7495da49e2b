"""GET /api/model: which model is served, its architecture, size, accuracy and training record.
POST /api/model: serve another model from now on, without a restart (digitlab.serve.switch says which)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from digitlab.serve.content_types import Operation
from digitlab.serve.errors import responses
from digitlab.serve.runner import Runner
from digitlab.serve.schemas import ModelChoice, ModelInfo

router = APIRouter()


@router.get("/api/model", response_model=ModelInfo, summary="Describe the served model")
async def model_info(runner: Runner) -> dict[str, Any]:
    return runner.info


switch = Operation(
    "/api/model", name="switch_model", summary="Serve another model", response_model=ModelInfo,
    responses=responses(400, 403, 404, 413, 415, 422, _403="the model lies outside the folders this server loads "
                        "models from", _404="no such model folder or file",
                        _422="not a model this server can load, or JSON of the wrong shape"),
    description="Load `model` (a shipped name, or a run folder, .safetensors or .onnx file inside the server's "
                "folder or a --models-root) and serve it from now on; requests already running finish on the "
                "previous model. If it cannot be loaded, the previous model stays.")


@switch.json
async def switch_model(choice: ModelChoice, request: Request) -> dict[str, Any]:
    runner = await request.app.state.switch.switch(choice.model)
    return runner.info


switch.add_to(router)
