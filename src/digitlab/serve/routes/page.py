"""The drawing page and the API reference: GET /, /favicon.ico, /docs, /docs/swagger (static/ holds the files,
mounted at /static by the app; nothing comes from a CDN)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse

STATIC = Path(__file__).resolve().parents[1] / "static"

router = APIRouter(include_in_schema=False)


@router.get("/")
async def index() -> FileResponse:
    return FileResponse(STATIC / "index.html", headers={"cache-control": "no-cache"})


@router.get("/favicon.ico")
async def favicon() -> FileResponse:  # browsers ask for it whatever the page says
    return FileResponse(STATIC / "favicon.svg", media_type="image/svg+xml")


@router.get("/docs")
async def docs() -> FileResponse:
    # An offline reference rendered from /openapi.json; Swagger UI needs its CDN, so it is the fallback.
    return FileResponse(STATIC / "docs.html", headers={"cache-control": "no-cache"})


@router.get("/docs/swagger")
async def swagger() -> HTMLResponse:
    return get_swagger_ui_html(openapi_url="/openapi.json", title="digitlab API")
