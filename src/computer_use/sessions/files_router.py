"""REST routes of a session's files: paths are relative to the session's HOME.

Transport only: the sandboxed helper (desktops/files.py) does the work; here HTTP becomes
chunks and chunks HTTP, and FileAccessError codes become status codes.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request, Response, status
from fastapi.responses import StreamingResponse

from computer_use import errors
from computer_use.auth import CallerDep
from computer_use.deps import SessionServiceDep, SettingsDep
from computer_use.desktops.files import FileAccessError, Files, clean_path
from computer_use.sessions.files import (
    MIB,
    check_declared_size,
    session_files,
    to_domain_error,
)

router = APIRouter(prefix="/api/v1/sessions", tags=["files"])

# A downloaded file is the session's (the agent's) content: never let a browser render it
# on the API's origin.
DOWNLOAD_HEADERS = {
    "Content-Security-Policy": "sandbox; default-src 'none'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


async def _session_files(
    session_id: uuid.UUID, service: SessionServiceDep, caller: CallerDep
) -> Files:
    return await session_files(service, session_id=str(session_id), owner=caller)


FilesDep = Annotated[Files, Depends(_session_files)]
ZipFormat = Annotated[
    str | None, Query(pattern="^zip$", description="`zip`: the folder as a zip archive")
]


def _attachment(name: str) -> str:
    return f"attachment; filename*=UTF-8''{quote(name or 'home', safe='')}"


# What a 200 of GET .../files may be: the JSON content is FastAPI's own (the listing).
DOWNLOAD_200 = {
    "description": "A file's bytes, a folder's listing (JSON), or a folder as a zip",
    "content": {"application/octet-stream": {}, "application/zip": {}},
}


@router.get(
    "/{session_id}/files/{path:path}",
    responses={200: DOWNLOAD_200, **errors.error_responses(400, 403, 404, 409, 503)},
    summary="Download a file, list a folder, or download a folder as a zip",
)
async def get_file(files: FilesDep, path: str, format: ZipFormat = None) -> Any:
    try:
        stream = await files.open(path, as_zip=format == "zip")
    except FileAccessError as exc:
        raise to_domain_error(exc) from None
    header = stream.header
    if header["type"] == "dir":
        await stream.close()
        return {"path": header["path"], "entries": header["entries"]}
    name = header["path"].rsplit("/", 1)[-1]
    if header["type"] == "zip":
        return StreamingResponse(
            stream.body(),
            media_type="application/zip",
            headers={**DOWNLOAD_HEADERS, "Content-Disposition": _attachment(f"{name}.zip")},
        )
    return StreamingResponse(
        stream.body(),
        media_type="application/octet-stream",
        headers={
            **DOWNLOAD_HEADERS,
            "Content-Length": str(header["size"]),
            "Content-Disposition": _attachment(name),
        },
    )


@router.get(
    "/{session_id}/files",
    responses={200: DOWNLOAD_200, **errors.error_responses(404, 409, 503)},
    summary="List the session's HOME (or `?format=zip`: all of it as a zip)",
)
async def get_home(files: FilesDep, format: ZipFormat = None) -> Any:
    return await get_file(files, "", format)


@router.put(
    "/{session_id}/files/{path:path}",
    status_code=status.HTTP_201_CREATED,
    responses=errors.error_responses(400, 403, 404, 409, 413, 503),
    summary="Upload a file (raw body); missing folders are created",
)
async def put_file(
    path: str, request: Request, files: FilesDep, settings: SettingsDep
) -> dict[str, Any]:
    limit = settings.max_upload_mb * MIB
    declared = request.headers.get("content-length", "")
    check_declared_size(int(declared) if declared.isdigit() else None, limit)
    try:
        size = await files.write(path, request.stream(), limit=limit)
    except FileAccessError as exc:
        raise to_domain_error(exc) from None
    return {"path": clean_path(path), "size": size}


@router.delete(
    "/{session_id}/files/{path:path}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=errors.error_responses(400, 403, 404, 409, 503),
    summary="Delete a file or a folder (with everything in it)",
)
async def delete_file(path: str, files: FilesDep) -> Response:
    try:
        await files.delete(path)
    except FileAccessError as exc:
        raise to_domain_error(exc) from None
    return Response(status_code=status.HTTP_204_NO_CONTENT)
