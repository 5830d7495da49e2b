"""POST /api/read: the number written in a picture, digit by digit, or why nothing is read.

    multipart/form-data                  an image file in field `file` (a photo, a scan, a drawing)
    application/json                     {"pixels": [W x H values 0..255], "width": W, "height": H}
    image/* or application/octet-stream  the image file's bytes as the body

    curl -F file=@house-number.jpg http://127.0.0.1:8000/api/read
    -> {"number": "42", "confidence": 0.99, "reason": null, "model": "...",
        "digits": [{"box": [x0, y0, x1, y1], "label": 4, "confidence": ..., "probabilities": [...], ...}, ...],
        "minus": null,                  # "-42": the minus sign's box, [x0, y0, x1, y1] (digitlab.sign)
        "marks": []}                    # "3.14": [{"mark": ".", "before": 1, "box": [...], "probability": ...}]

`digitlab.read.read_picture` (the same as `digitlab read`) finds the digits, classifies them in one batch and
refuses marks that are not digits: then `label` is null and `reason` says why, and a picture with nothing
readable answers `number: ""` with a reason ("blank", "not a digit"). `?accept_all=true` turns refusing off,
like `digitlab read --accept-all`. Boxes are in the picture's pixels after its EXIF rotation; each digit's
`preprocessed` is the 28x28 input POST /api/feedback saves for that box, so a page can show what a
confirmation or a correction will teach the model.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Body, File, Query, UploadFile
from fastapi.responses import JSONResponse
from PIL import Image

from digitlab.read import read_picture
from digitlab.serve.content_types import Operation
from digitlab.serve.decode import client_image, digit_inputs, open_picture, pixels_picture
from digitlab.serve.errors import responses
from digitlab.serve.limits import MAX_BODY_BYTES
from digitlab.serve.runner import ModelRunner, Runner
from digitlab.serve.schemas import NumberReading, ReadRequest

router = APIRouter()
FORM_LIMITS = {"max_files": 1, "max_fields": 16, "max_part_size": MAX_BODY_BYTES}

read = Operation(
    "/api/read", name="read", summary="Read the number in a picture", response_model=NumberReading,
    responses=responses(400, 408, 413, 415, 422, 503),
    description="One picture of any size (a photo, a scan, a canvas drawing) as a multipart upload (field "
                "`file`), a raw image body, or JSON `{\"pixels\": [...], \"width\": W, \"height\": H}`. The answer "
                "is the number written in it, left to right, with every digit's box, label and probabilities; "
                "marks that are not digits are refused (`label` null, with a `reason`), and a picture with "
                "nothing readable answers `number: \"\"` and a `reason`.")

AcceptAll = Annotated[bool, Query(description="read every mark as its most likely digit, never refuse")]


Load = Callable[[], Image.Image | np.ndarray]  # decodes the request's picture (in the worker thread)


def reading(runner: ModelRunner, load: Load, accept_all: bool) -> tuple[dict[str, Any], float]:
    """Decode the picture (`load()`), read it, and cut each digit's 28x28 input (runs in a worker thread)."""
    picture = load()
    start = time.perf_counter()
    with client_image("picture"):
        result = read_picture(runner.engine, picture, accept_all=accept_all)
    inputs = digit_inputs(picture, [list(d.box) for d in result.digits]) if result.digits else []
    digits = [{"box": [int(v) for v in d.box], "label": d.label, "confidence": float(d.confidence),
               "probabilities": [float(p) for p in d.probabilities], "reason": d.reason,
               "preprocessed": pixels.ravel().tolist()}
              for d, pixels in zip(result.digits, inputs, strict=True)]
    minus = None if result.minus is None else [int(v) for v in result.minus]
    payload = {"number": result.number, "confidence": float(result.confidence), "reason": result.reason,
               "digits": digits, "minus": minus, "marks": [m.to_json() for m in result.marks],
               "model": runner.info["source"]}
    return payload, time.perf_counter() - start


async def answer(runner: ModelRunner, load: Load, accept_all: bool) -> JSONResponse:
    payload, read_s = await runner.call(partial(reading, runner, load, accept_all))
    return JSONResponse(payload, headers={"server-timing": f"read;dur={read_s * 1000:.3f}"})


@read.multipart(form_limits=FORM_LIMITS)
async def read_upload(file: Annotated[UploadFile, File(description="any image file")], runner: Runner,
                      accept_all: AcceptAll = False) -> JSONResponse:
    data = await file.read()
    return await answer(runner, partial(open_picture, data, "file"), accept_all)


@read.json
async def read_pixels(body: ReadRequest, runner: Runner, accept_all: AcceptAll = False) -> JSONResponse:
    return await answer(runner, partial(pixels_picture, body.pixels, body.width, body.height), accept_all)


@read.image
async def read_image_body(
        image: Annotated[bytes, Body(media_type="application/octet-stream", description="the image file's bytes")],
        runner: Runner, accept_all: AcceptAll = False) -> JSONResponse:
    return await answer(runner, partial(open_picture, image, "image"), accept_all)


read.add_to(router)
