"""One path, an endpoint per Content-Type: how `/api/predict` takes an upload, JSON or raw image bytes.

FastAPI reads one kind of body per endpoint: a form (`UploadFile`), a Pydantic model, or bytes. A path that
accepts several kinds is therefore several endpoints, declared like this (routes/predict.py):

    predict = Operation("/api/predict", name="predict", summary=..., response_model=..., responses=...)

    @predict.multipart
    async def predict_upload(file: UploadFile, ...) -> Response: ...

    @predict.json
    async def predict_pixels(body: PixelsRequest, ...) -> Response: ...

    predict.add_to(router)

Each endpoint becomes a route that matches only requests of its Content-Type (`MediaRoute`), and a last,
undocumented route on the path answers 415 to every other type. FastAPI documents one endpoint per path and
method, so `openapi()` merges the request bodies FastAPI generated for each endpoint into one operation.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.routing import Match
from starlette.types import Scope

Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])


def media_type(scope: Scope) -> str:
    """The request's Content-Type without parameters, lower-case: 'multipart/form-data', '' when absent."""
    for name, value in scope.get("headers", []):
        if name == b"content-type":
            return value.decode("latin-1").split(";", 1)[0].strip().lower()
    return ""


def is_json(media: str) -> bool:
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def is_multipart(media: str) -> bool:
    return media == "multipart/form-data"


def is_image(media: str) -> bool:
    return media == "application/octet-stream" or media.startswith("image/")


class MediaRoute(APIRoute):
    """An APIRoute that matches only requests whose Content-Type it accepts, so that a request of another type
    goes on to the next route of the same path (another MediaRoute, or the 415 route)."""

    described: ClassVar[str]  # how the 415 message names this kind of body
    operation: Operation | None = None

    @staticmethod
    def accepts(media: str) -> bool:
        raise NotImplementedError

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child_scope = super().matches(scope)
        if match is Match.FULL and not self.accepts(media_type(scope)):
            return Match.NONE, {}
        return match, child_scope


class MultipartRoute(MediaRoute):
    described = "multipart/form-data"
    accepts = staticmethod(is_multipart)


class JsonRoute(MediaRoute):
    described = "application/json"
    accepts = staticmethod(is_json)


class ImageRoute(MediaRoute):
    described = "an image"
    accepts = staticmethod(is_image)


class Operation:
    """One POST path with an endpoint per Content-Type; `options` go to every endpoint's route (summary,
    description, response_model, responses, ...), so the merged OpenAPI operation reads as one."""

    def __init__(self, path: str, *, name: str, **options: Any) -> None:
        self.path = path
        self.name = name
        # The id FastAPI would give one endpoint named `name` on this path, so clients generated from the
        # document keep their method names.
        self.operation_id = re.sub(r"\W", "_", f"{name}{path}") + "_post"
        self.options = options
        self._endpoints: list[tuple[type[MediaRoute], Callable[..., Any], dict[str, Any]]] = []

    def multipart(self, endpoint: Endpoint | None = None, **route_options: Any) -> Any:
        """Decorator: the endpoint for multipart/form-data uploads; `route_options` e.g. form_limits=..."""
        return self._register(MultipartRoute, endpoint, route_options)

    def json(self, endpoint: Endpoint) -> Endpoint:
        return self._register(JsonRoute, endpoint, {})

    def image(self, endpoint: Endpoint) -> Endpoint:
        """Decorator: the endpoint for a raw image body (image/*, application/octet-stream)."""
        return self._register(ImageRoute, endpoint, {})

    def _register(self, kind: type[MediaRoute], endpoint: Endpoint | None, route_options: dict[str, Any]) -> Any:
        def register(function: Endpoint) -> Endpoint:
            self._endpoints.append((kind, function, route_options))
            return function

        return register if endpoint is None else register(endpoint)

    def add_to(self, router: APIRouter) -> None:
        """Add the endpoints to `router` in the order they were declared, then the 415 route for the rest."""
        for kind, endpoint, route_options in self._endpoints:
            router.add_api_route(self.path, endpoint, methods=["POST"], route_class_override=kind,
                                 operation_id=f"{self.name}_{kind.__name__.removesuffix('Route').lower()}",
                                 **self.options, **route_options)
            route = router.routes[-1]
            assert isinstance(route, kind)
            route.operation = self
        accepted = [kind.described for kind, _, _ in self._endpoints]
        send = ", ".join(accepted[:-1]) + " or " + accepted[-1] if len(accepted) > 1 else accepted[0]

        async def unsupported(request: Request) -> None:
            media = media_type(request.scope)
            raise HTTPException(415, f"unsupported Content-Type '{media or '(none)'}'; send {send}")

        router.add_api_route(self.path, unsupported, methods=["POST"], include_in_schema=False)


def openapi(app: FastAPI, routers: list[APIRouter]) -> dict[str, Any]:
    """FastAPI's OpenAPI document of `app`, with each Operation's endpoints merged into one operation whose
    request body lists every Content-Type (as generated by FastAPI for each endpoint on its own)."""
    if app.openapi_schema:
        return app.openapi_schema
    about = {"title": app.title, "version": app.version, "openapi_version": app.openapi_version}
    spec = get_openapi(**about, summary=app.summary, description=app.description, routes=app.routes)
    contents: dict[str, dict[str, Any]] = {}  # path -> its request body's content, in the declared order
    for router in routers:
        for route in router.routes:
            if not isinstance(route, MediaRoute) or route.operation is None:
                continue
            alone = get_openapi(**about, routes=[route])
            contents.setdefault(route.path_format, {}).update(
                alone["paths"][route.path_format]["post"]["requestBody"]["content"])
            spec["paths"][route.path_format]["post"]["operationId"] = route.operation.operation_id
            for name, schema in alone.get("components", {}).get("schemas", {}).items():
                spec.setdefault("components", {}).setdefault("schemas", {}).setdefault(name, schema)
    for path, content in contents.items():
        spec["paths"][path]["post"]["requestBody"]["content"] = content
    app.openapi_schema = spec
    return spec
