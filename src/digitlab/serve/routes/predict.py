"""POST /api/predict (one image) and /api/predict/batch (up to MAX_BATCH): an endpoint per Content-Type.

    multipart/form-data               an image file in field `file` (batch: repeated field `files`)
    application/json                  {"pixels": [784 values]} (batch: {"images": [[784 values], ...]})
    image/* or application/octet-stream   the image file's bytes as the body (single image only)

Files go through `to_mnist` exactly as `digitlab predict` prepares them; JSON pixels, already 28x28, only get
its polarity fix. Every answer includes `preprocessed`, the 28x28 image the model saw, and `reason`: null for
a digit; for a blank picture, a letter, a symbol or a drawing, "blank" or "not a digit" (digitlab.refuse), with
`label` null. `?accept_all=true` turns refusing off, like `digitlab predict --accept-all`.
"""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Body, File, Query, UploadFile
from fastapi.responses import JSONResponse

from digitlab.serve.content_types import Operation
from digitlab.serve.decode import decode_files, decode_pixels
from digitlab.serve.errors import responses
from digitlab.serve.limits import MAX_BATCH, MAX_BODY_BYTES
from digitlab.serve.processes import DecodePool, Decoder
from digitlab.serve.runner import ModelRunner, Runner
from digitlab.serve.schemas import BatchPrediction, BatchRequest, PixelsRequest, Prediction

router = APIRouter()
ERRORS = responses(400, 408, 413, 415, 422, 503)
# max_files only stops the multipart parser (the body limit bounds the part count anyway); the batch size is
# checked by the declaration of `files`, so that JSON and multipart requests with too many images answer alike.
FORM_LIMITS = {"max_files": 100_000, "max_fields": 1000, "max_part_size": MAX_BODY_BYTES}

predict = Operation(
    "/api/predict", name="predict", summary="Recognise one digit", response_model=Prediction,
    responses=ERRORS,
    description="One image as a multipart upload (field `file`), a raw image body (`application/octet-stream` "
                "or `image/*`), or JSON `{\"pixels\": [784 values]}`. Files go through the same preprocessing as "
                "`digitlab predict`; JSON pixels, already 28x28, only get its polarity fix. What is not a digit "
                "(blank, a letter, a drawing) answers `label` null and a `reason`, unless `accept_all`.")
batch = Operation(
    "/api/predict/batch", name="predict_batch", summary="Recognise many digits",
    response_model=BatchPrediction, responses=ERRORS,
    description=f"Up to {MAX_BATCH} images as multipart uploads (repeated field `files`) or JSON "
                "`{\"images\": [[784 values], ...]}`; predictions come back in request order.")


AcceptAll = Annotated[bool, Query(description="label every image with its most likely digit, never refuse")]


def answer(payload: Any, prep_s: float, model_s: float) -> JSONResponse:
    timing = f"preprocess;dur={prep_s * 1000:.3f}, model;dur={model_s * 1000:.3f}"
    return JSONResponse(payload, headers={"server-timing": timing})


async def predict_files(runner: ModelRunner, decoder: DecodePool, files: list[tuple[str, bytes]],
                        accept_all: bool) -> tuple[list[dict[str, Any]], float, float]:
    """Image files -> predictions: decoded in the decoding processes when the server has them (`digitlab
    serve`), else in the model's worker thread; then the model. Results, preprocessing s, model s."""
    if not decoder.processes:
        return await runner.run(partial(decode_files, files), accept_all)
    images, prep_s = await decoder.decode(files)
    results, _, model_s = await runner.run(lambda: images, accept_all)
    return results, prep_s, model_s


@predict.multipart(form_limits=FORM_LIMITS)
async def predict_upload(file: Annotated[UploadFile, File(description="any image file")], runner: Runner,
                         decoder: Decoder, accept_all: AcceptAll = False) -> JSONResponse:
    upload = [(file.filename or "file", await file.read())]
    results, prep_s, model_s = await predict_files(runner, decoder, upload, accept_all)
    return answer(results[0], prep_s, model_s)


@predict.json
async def predict_pixels(body: PixelsRequest, runner: Runner, accept_all: AcceptAll = False) -> JSONResponse:
    results, prep_s, model_s = await runner.run(partial(decode_pixels, [body.pixels]), accept_all)
    return answer(results[0], prep_s, model_s)


@predict.image
async def predict_image_body(
        image: Annotated[bytes, Body(media_type="application/octet-stream", description="the image file's bytes")],
        runner: Runner, decoder: Decoder, accept_all: AcceptAll = False) -> JSONResponse:
    results, prep_s, model_s = await predict_files(runner, decoder, [("image", image)], accept_all)
    return answer(results[0], prep_s, model_s)


@batch.multipart(form_limits=FORM_LIMITS)
async def predict_uploads(
        files: Annotated[list[UploadFile], File(min_length=1, max_length=MAX_BATCH,
                                                description=f"1..{MAX_BATCH} image files")],
        runner: Runner, decoder: Decoder, accept_all: AcceptAll = False) -> JSONResponse:
    uploads = [(file.filename or f"files[{i}]", await file.read()) for i, file in enumerate(files)]
    results, prep_s, model_s = await predict_files(runner, decoder, uploads, accept_all)
    return answer({"predictions": results}, prep_s, model_s)


@batch.json
async def predict_pixel_batch(body: BatchRequest, runner: Runner, accept_all: AcceptAll = False) -> JSONResponse:
    results, prep_s, model_s = await runner.run(partial(decode_pixels, body.images), accept_all)
    return answer({"predictions": results}, prep_s, model_s)


predict.add_to(router)
batch.add_to(router)
