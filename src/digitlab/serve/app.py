"""The web app: a drawing page and a JSON API in front of one model, loaded once.

    GET  /                     the drawing page (static/index.html, app.js, style.css; nothing from a CDN)
    POST /api/predict          one image: multipart field `file`, a raw image body, or JSON {"pixels": [784]}
    POST /api/predict/batch    up to MAX_BATCH images: multipart fields `files`, or JSON {"images": [[784]]}
    POST /api/read             the number in a picture of any size: multipart `file`, raw image, or JSON pixels
    GET  /api/model            architecture, parameters, accuracy and training metadata of the model
    POST /api/model            serve another model from now on: {"model": "runs/x"} (serve/switch.py)
    POST /api/feedback         a confirmed or corrected answer, saved as a labelled sample (--feedback DIR)
    GET  /api/feedback         samples saved per digit, and the command that fine-tunes on them
    GET  /healthz              the model answers a check input as when it was loaded; the digitlab version
    GET  /openapi.json         the API description; /docs renders it offline, /docs/swagger via Swagger UI

Where things are, by idea:

    app.py            this factory: wires the pieces below into one FastAPI app
    routes/           the endpoints, a module per capability (predict, read, model, feedback, health, page)
    schemas.py        the JSON bodies, as Pydantic models
    content_types.py  one path, an endpoint per Content-Type (multipart, JSON, raw image) and 415 for others
    limits.py         every size and time limit, and the middleware enforcing the body limits
    decode.py         image files and JSON pixels -> the 28x28 images the model sees
    runner.py         the loaded model and the worker threads that run it
    processes.py      the processes `digitlab serve` decodes image uploads in, out of the GIL's way
    switch.py         changing the model without a restart: POST /api/model, reloading a changed folder
    errors.py         every failure as JSON {"error": "..."}
    server.py         running it all under uvicorn (`digitlab serve`, and a background server for tests)

    from digitlab.serve.app import create_app
    from digitlab.serve.server import running
    with running(create_app("strong")) as url: ...
"""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from digitlab import __version__
from digitlab.feedback import FeedbackStore
from digitlab.serve import content_types, errors
from digitlab.serve.limits import BODY_TIMEOUT_S, MAX_BODY_BYTES, BodyGuard
from digitlab.serve.processes import DecodePool
from digitlab.serve.routes import feedback, health, model, page, predict, read
from digitlab.serve.runner import ModelRunner
from digitlab.serve.switch import ModelSwitch

ROUTERS = [predict.router, read.router, model.router, feedback.router, health.router, page.router]

API_DESCRIPTION = f"""\
Recognise handwritten digits with a digitlab model.

Send an image file (multipart field `file`, or the raw bytes as `application/octet-stream` / `image/*`)
and it is prepared exactly as `digitlab predict` prepares files: polarity fixed, cropped to the ink, scaled
to 20 px and centred by mass in 28x28. Or send JSON `{{"pixels": [784 values]}}`: a 28x28 image, row-major,
0..255, white ink on black like MNIST; it only gets the polarity fix. Every answer includes `preprocessed`,
the 28x28 image the model saw. A picture of a number, of any size, goes to `/api/read`: the number, with a box,
a label and probabilities per digit, or a `reason` when nothing in it is a digit.

Errors are JSON `{{"error": "..."}}`: 400 bad JSON or image, 403 feedback off, 408 slow body, 413 body over
{MAX_BODY_BYTES // 2**20} MB, 415 content type, 422 JSON of the wrong shape, 503 overloaded, 507 feedback folder
full."""


def create_app(model: str | os.PathLike | None = None, engine: str = "torch", *, workers: int | None = None,
               body_timeout: float = BODY_TIMEOUT_S, feedback: str | os.PathLike | None = None,
               models_roots: list[str | os.PathLike] | None = None, decode_processes: int = 0) -> FastAPI:
    """The ASGI app for `model` (default: the shipped weights) on `engine` ('torch', 'onnx' or 'auto').

    The model is loaded here, once; a missing or bad model raises DigitlabError before anything listens.
    `feedback` is the folder corrections are saved to (None: feedback is off); it must be writable.
    POST /api/model may load models from the current folder and `models_roots` (serve/switch.py).
    `decode_processes` > 0 decodes image uploads in that many processes (serve/processes.py; `digitlab serve`
    uses one per core); they start with the first upload, or with `app.state.decoder.start()`, and end with
    `app.state.decoder.close()`.
    """
    app = FastAPI(title="digitlab", version=__version__, description=API_DESCRIPTION, docs_url=None,
                  summary="Handwritten-digit recognition: draw a digit, see the answer.", redoc_url=None)
    app.state.runner = ModelRunner(model, engine, workers)
    roots = [Path.cwd(), *(Path(root) for root in models_roots or [])]
    app.state.switch = ModelSwitch(app.state, engine, roots)
    app.state.feedback = FeedbackStore.open(feedback) if feedback is not None else None
    app.state.decoder = DecodePool(decode_processes)
    for router in ROUTERS:
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=page.STATIC), name="static")
    errors.install(app)
    app.openapi = partial(content_types.openapi, app, ROUTERS)  # type: ignore[method-assign]
    app.add_middleware(BodyGuard, timeout=body_timeout)
    return app
