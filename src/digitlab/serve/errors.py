"""How a refused request is answered: always JSON `{"error": "one line"}` with a 4xx (or 5xx) status.

    400  the body could not be read: empty, malformed JSON or multipart, no upload, not an image, too many pixels
    403  the server does not do this (feedback is off: `digitlab serve --no-feedback`; a model it may not load)
    404  no such path, or no such model folder
    408  the body did not arrive in time                      (digitlab.serve.limits.BodyGuard)
    413  the body is over the byte limit                      (BodyGuard)
    415  a Content-Type the path has no endpoint for          (digitlab.serve.content_types)
    422  JSON or form fields of the wrong shape: pixel count, NaN or out-of-range values, too many images
    503  too many requests queued, or the model check of /healthz failed
    507  the feedback folder is full, or the disk is

`install(app)` turns FastAPI's own errors (validation, body parsing, 404/405) into this format;
`responses(...)` documents the codes of a route in OpenAPI.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from digitlab.errors import DigitlabError
from digitlab.serve.content_types import MediaRoute, is_json, is_multipart, media_type
from digitlab.serve.limits import MAX_BATCH, MAX_BODY_BYTES
from digitlab.serve.schemas import ErrorBody

log = logging.getLogger("digitlab.serve")


class ApiError(Exception):
    """A request we refuse, with the HTTP status and the message the client sees."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def __reduce__(self) -> tuple:
        # Raised in a decoding process (serve/processes.py) and re-raised here: pickled with both arguments.
        return (ApiError, (self.status, self.message))


WHY = {
    400: "an empty body, malformed JSON or multipart, no upload, not a readable image, or too many pixels",
    403: "this server does not do that: feedback is off (`digitlab serve --no-feedback`)",
    404: "not found",
    408: "the request body did not arrive in time",
    413: f"the body is larger than {MAX_BODY_BYTES // 2**20} MB",
    415: "unsupported Content-Type",
    422: f"JSON or form fields of the wrong shape: pixel count, NaN or out-of-range values, more than {MAX_BATCH} "
         "images",
    503: "too many requests queued; retry later",
    507: "the feedback folder holds its maximum number of samples, or the disk is full",
}


def responses(*codes: int, **why: str) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI `responses` of a route refusing with `codes`; `why` overrides a description, e.g. _503=..."""
    return {code: {"model": ErrorBody, "description": why.get(f"_{code}", WHY[code])} for code in codes}


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _where(loc: tuple[Any, ...]) -> str:
    """('body', 'images', 1, 0) -> 'images[1][0]': the field as the client wrote it."""
    path = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc[1:]).lstrip(".")
    return path or "body"


def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    first = errors[0] if errors else {"type": "", "loc": (), "msg": "invalid request"}
    loc = tuple(first.get("loc", ()))
    if first["type"] == "json_invalid":
        where = f" at character {loc[1]}" if len(loc) > 1 else ""
        return error_response(400, f"malformed JSON: {first.get('ctx', {}).get('error', first['msg'])}{where}")
    # Absent rather than wrong: no body at all, or a multipart body without the upload. The request could not
    # be read (400); a JSON object that lacks a key was read and is of the wrong shape (422).
    if first["type"] == "missing" and loc == ("body",):
        route = request.scope.get("route")
        hint = f"; send {route.described}" if isinstance(route, MediaRoute) else ""
        return error_response(400, f"empty request body{hint}")
    if first["type"] == "missing" and is_multipart(media_type(request.scope)):
        return error_response(400, f"multipart body has no '{_where(loc)}' field")
    message = first["msg"]
    if first["type"] == "value_error" and "UploadFile" in message:
        message = "expected a file upload, got a text field"
    more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
    return error_response(422, f"{_where(loc)}: {message}{more}")


def http_error(request: Request, exc: HTTPException) -> JSONResponse:
    message = str(exc.detail)
    cause = exc.__cause__
    # FastAPI answers a body it cannot parse with a bare "There was an error parsing the body"; say what it was.
    if exc.status_code == 400 and cause is not None:
        media = media_type(request.scope)
        kind = "malformed JSON" if is_json(media) else "malformed multipart body" if is_multipart(media) else message
        message = f"{kind}: {cause}"
    return error_response(exc.status_code, message, getattr(exc, "headers", None))


def install(app: FastAPI) -> None:
    """Answer every failure of `app` as `{"error": ...}`, never FastAPI's `{"detail": ...}` or a traceback."""

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.message)

    @app.exception_handler(DigitlabError)
    async def digitlab_error(request: Request, exc: DigitlabError) -> JSONResponse:
        return error_response(400, str(exc))

    @app.exception_handler(HTTPException)
    async def starlette_error(request: Request, exc: HTTPException) -> JSONResponse:
        return http_error(request, exc)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return validation_error(request, exc)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "internal server error")
