"""POST /api/feedback: the user confirms or corrects an answer, and the picture becomes a labelled sample.
GET /api/feedback: how many samples are saved, and the command that fine-tunes the model on them.

    multipart/form-data   the picture in field `file`, and `label` (+ `predicted`) for one digit, or `digits`
                          (a JSON list, one entry per digit with its box, as /api/read answers) for a number
    application/json      {"pixels": [...], "width": W, "height": H} (white ink on black, default 28x28) and
                          the same `label` / `predicted` / `digits`

The 28x28 inputs are computed here from the picture, with the same `to_mnist` as /api/predict: nothing the
client says about pixels is stored but the picture itself. Samples go to the `digitlab serve --feedback DIR`
folder (digitlab.feedback: DIR/<digit>/<id>.png, DIR/originals/<id>.png, DIR/feedback.jsonl), which
`digitlab train --init MODEL --data DIR` fine-tunes on. Names are generated; a refused request stores nothing.
"""

from __future__ import annotations

import os
import shlex
from typing import Annotated, Any

import anyio
import numpy as np
from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from PIL import Image
from pydantic import TypeAdapter, ValidationError

from digitlab.errors import DigitlabError
from digitlab.feedback import Correction, FeedbackFull, FeedbackStore
from digitlab.serve.content_types import Operation
from digitlab.serve.decode import digit_inputs, open_picture, picture_input, picture_png, pixels_picture
from digitlab.serve.errors import ApiError, responses
from digitlab.serve.limits import MAX_BODY_BYTES
from digitlab.serve.runner import Runner
from digitlab.serve.schemas import DigitCorrection, FeedbackLabels, FeedbackRequest, FeedbackSaved, FeedbackStatus

router = APIRouter()
FORM_LIMITS = {"max_files": 1, "max_fields": 16, "max_part_size": MAX_BODY_BYTES}
FINETUNED = "runs/my-handwriting"  # where the suggested command puts the fine-tuned model
DIGIT_LIST = TypeAdapter(list[DigitCorrection])


def feedback_store(request: Request) -> FeedbackStore:
    """The app's feedback folder; 403 when the server was started with --no-feedback."""
    store = request.app.state.feedback
    if store is None:
        raise ApiError(403, "this server does not save feedback (started with --no-feedback)")
    return store


Store = Annotated[FeedbackStore, Depends(feedback_store)]

feedback = Operation(
    "/api/feedback", name="feedback", summary="Save a confirmed or corrected answer as a training sample",
    response_model=FeedbackSaved, status_code=201,
    responses=responses(400, 403, 408, 413, 415, 422, 507),
    description="The picture the answer was for, as a multipart upload (field `file`) or JSON pixels, with "
                "`label` (one digit: the whole picture) and `predicted` (what the model answered), or `digits` "
                "for a number: one `{label, predicted, box}` per digit, the box as /api/read answered it. The "
                "28x28 inputs are computed here as /api/predict computes them and filed under their labels.")

DIGITS_FIELD = ("a number, digit by digit: a JSON list of {\"label\": 0-9, \"predicted\": 0-9 or null, "
                "\"box\": [x0, y0, x1, y1]} (the schema DigitCorrection)")


@feedback.multipart(form_limits=FORM_LIMITS)
async def feedback_upload(
        file: Annotated[UploadFile, File(description="the picture the answer was for, any image file")],
        store: Store, runner: Runner,
        label: Annotated[int | None, Form(ge=0, le=9, description="one digit: what the picture really is")] = None,
        predicted: Annotated[int | None, Form(ge=0, le=9, description="with `label`: what the model answered; "
                                                                     "absent when it refused")] = None,
        digits: Annotated[str | None, Form(description=DIGITS_FIELD, json_schema_extra={
            "contentMediaType": "application/json",
            "contentSchema": {"type": "array", "items": {"$ref": "#/components/schemas/DigitCorrection"}}})] = None,
) -> JSONResponse:
    labels = form_labels(label, predicted, digits)
    data = await file.read()
    name = "file"  # the client's file name is never used, not even in messages

    def work() -> dict[str, Any]:
        return save(store, open_picture(data, name), labels, runner.info["source"])

    return JSONResponse(await anyio.to_thread.run_sync(work), status_code=201)


@feedback.json
async def feedback_pixels(body: FeedbackRequest, store: Store, runner: Runner) -> JSONResponse:
    def work() -> dict[str, Any]:
        return save(store, pixels_picture(body.pixels, body.width, body.height), body, runner.info["source"])

    return JSONResponse(await anyio.to_thread.run_sync(work), status_code=201)


feedback.add_to(router)


@router.get("/api/feedback", response_model=FeedbackStatus, summary="Count the saved samples")
async def feedback_status(request: Request, runner: Runner) -> dict[str, Any]:
    """Samples saved per digit, where, and the command that fine-tunes the served model on them."""
    store: FeedbackStore | None = request.app.state.feedback
    if store is None:
        return {"enabled": False, "folder": None, "counts": None, "limit": None, "command": None, "output": None}
    return {"enabled": True, "folder": str(store.root), "counts": store.counts(), "limit": store.max_samples,
            "command": finetune_command(store.root, runner.init_model), "output": FINETUNED}


def form_labels(label: int | None, predicted: int | None, digits: str | None) -> FeedbackLabels:
    """The multipart fields as one FeedbackLabels, validated like the JSON body (422 naming the field)."""
    parsed = None
    if digits is not None:
        try:
            parsed = DIGIT_LIST.validate_json(digits)
        except ValidationError as exc:
            first = exc.errors()[0]
            if first["type"] == "json_invalid":
                raise ApiError(400, f"digits: malformed JSON ({first['ctx']['error']})") from None
            where = "digits" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first["loc"])
            raise ApiError(422, f"{where}: {first['msg']}") from None
    try:
        return FeedbackLabels(label=label, predicted=predicted, digits=parsed)
    except ValidationError as exc:
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]) from None


def save(store: FeedbackStore, picture: Image.Image | np.ndarray, labels: FeedbackLabels, model: str
         ) -> dict[str, Any]:
    """Compute the inputs from the picture and store them under their labels (runs in a worker thread)."""
    if labels.digits is None:
        corrections = [Correction(picture_input(picture), int(labels.label),
                                  "" if labels.predicted is None else str(labels.predicted))]
    else:
        inputs = digit_inputs(picture, [d.box for d in labels.digits])
        corrections = [Correction(pixels, d.label, "" if d.predicted is None else str(d.predicted), tuple(d.box))
                       for pixels, d in zip(inputs, labels.digits, strict=True)]
    original = picture_png(picture)
    try:
        ids = store.add(corrections, model=model, original=original)
    except FeedbackFull as exc:
        raise ApiError(507, f"the feedback folder is full: {exc}; fine-tune on it, then move it away") from None
    except OSError as exc:
        raise ApiError(507, f"cannot save the sample: {exc.strerror or exc}") from None
    except DigitlabError as exc:
        raise ApiError(422, str(exc)) from None
    return {"ids": ids, "labels": [c.label for c in corrections], "counts": store.counts()}


def finetune_command(folder: os.PathLike | str, init: str) -> str:
    """The command line that fine-tunes `init` on the feedback folder, as the page shows it."""
    return (f"digitlab train --init {shlex.quote(init)} --data {shlex.quote(str(folder))} "
            f"--out {FINETUNED}")
