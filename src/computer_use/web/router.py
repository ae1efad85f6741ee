"""Serves the three-panel console: `index.html` at `/`, its assets beside it.

The pages are plain files (no build step, no inline script or style), so they also work from
any static server (`python -m http.server --directory src/computer_use/web/static`) pointed
at an API elsewhere with `?api=http://localhost:8000` or `js/config.js`.

Served from here, every response carries a strict Content-Security-Policy: the UI talks only
to its own origin, loads nothing from elsewhere, and may not be framed by other sites.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request, Response
from starlette.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).with_name("static")
ASSET_FOLDERS = ("css", "js", "img")

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    # blob: for downloads, the recording player and trajectories opened from a local zip
    "img-src 'self' blob:; media-src 'self' blob:; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    # ES modules import each other by plain names, with no content hash to bust a cache:
    # revalidate every time (an unchanged file is a cheap 304 thanks to its ETag).
    "Cache-Control": "no-cache",
}

router = APIRouter(include_in_schema=False)
_files = StaticFiles(directory=STATIC_DIR)


async def _serve(path: str, request: Request) -> Response:
    # StaticFiles refuses paths leaving the directory, answers 304 to a matching ETag and
    # raises HTTPException(404) for a missing file (rendered by our error handlers).
    response = await _files.get_response(path, request.scope)
    response.headers.update(SECURITY_HEADERS)
    return response


@router.api_route("/", methods=["GET", "HEAD"])
@router.api_route("/index.html", methods=["GET", "HEAD"])
async def index(request: Request) -> Response:
    return await _serve("index.html", request)


def _asset_route(folder: str) -> None:
    async def asset(path: str, request: Request) -> Response:
        return await _serve(f"{folder}/{path}", request)

    asset.__name__ = f"web_{folder}"
    router.add_api_route(f"/{folder}/{{path:path}}", asset, methods=["GET", "HEAD"])


for _folder in ASSET_FOLDERS:
    _asset_route(_folder)
