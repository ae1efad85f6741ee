"""MCP tools for a session's files: upload (base64, small) and list with download links.

Uploads travel inside a JSON tool call, so their cap is what a request body can carry
(MAX_REQUEST_BYTES, 1 MiB by default, also holds the base64 overhead): bigger files go through
REST (PUT .../files/{path}, up to MAX_UPLOAD_MB). Downloads are never inlined: `list_files`
returns a resource link per file, an http(s) URL of GET .../files/{path} the client fetches
with the same credentials as this connection.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any
from urllib.parse import quote, urljoin

from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, ContentBlock, ResourceLink, TextContent
from pydantic import BaseModel, Field

from computer_use.desktops.files import FileAccessError
from computer_use.mcp_server import content
from computer_use.mcp_server.deps import MCPContext, caller, deps, http_request
from computer_use.mcp_server.errors import tool_errors
from computer_use.mcp_server.tools import SessionId
from computer_use.sessions.files import session_files, to_domain_error

UPLOAD_MAX_BYTES = 512 * 1024
UPLOAD_FOLDER = "Uploads"
MAX_LINKS = 200

RelativePath = Annotated[
    str,
    Field(
        description="A path relative to the session's HOME, e.g. 'Uploads/data.csv' or "
        "'Downloads'. No '..' segments.",
        min_length=1,
        max_length=4096,
    ),
]


class FileUploaded(BaseModel):
    path: str = Field(description="Where the file is, relative to the session's HOME.")
    size: int = Field(description="Its size in bytes.")


class FileEntry(BaseModel):
    name: str
    type: str = Field(description="file or dir")
    size: int
    url: str | None = Field(default=None, description="GET it (files only), same credentials.")


class FileListing(BaseModel):
    path: str = Field(description="The folder listed, relative to the session's HOME.")
    entries: list[FileEntry]


async def _one_chunk(data: bytes) -> Any:
    yield data


async def upload_file(
    ctx: MCPContext,
    session_id: SessionId,
    filename: Annotated[
        str, Field(description="The file's name, e.g. 'data.csv'.", min_length=1, max_length=255)
    ],
    content_base64: Annotated[
        str,
        Field(
            description=f"The file's bytes, base64-encoded; at most {UPLOAD_MAX_BYTES // 1024} "
            "KiB once decoded (bigger files: the REST API's PUT .../files/{path}).",
            max_length=UPLOAD_MAX_BYTES * 4 // 3 + 4,
        ),
    ],
    folder: Annotated[
        str,
        Field(description="Folder under HOME to put it in (created if missing).", max_length=4000),
    ] = UPLOAD_FOLDER,
) -> Annotated[CallToolResult, FileUploaded]:
    """Put a file into the session's desktop (default ~/Uploads), where the agent and its
    programs can open it; it belongs to the session's user. Returns its path and size."""
    try:
        data = base64.b64decode(content_base64, validate=True)
    except (binascii.Error, ValueError):
        raise ToolError("content_base64 is not valid base64.") from None
    if len(data) > UPLOAD_MAX_BYTES:
        raise ToolError(
            f"The file is {len(data)} bytes; upload_file takes at most {UPLOAD_MAX_BYTES}. "
            "Use the REST API (PUT /api/v1/sessions/{id}/files/{path}) for bigger files."
        )
    if "/" in filename:
        raise ToolError("filename must be a plain name; put folders in `folder`.")
    path = f"{folder.strip('/')}/{filename}" if folder.strip("/") else filename
    runtime = deps(ctx).runtime
    with tool_errors(session_id):
        files = await session_files(runtime.sessions, session_id=session_id, owner=caller(ctx))
    try:
        size = await files.write(path, _one_chunk(data), limit=UPLOAD_MAX_BYTES)
    except FileAccessError as exc:
        raise ToolError(to_domain_error(exc).message) from None
    done = FileUploaded(path=path, size=size)
    return content.result(ctx, done, [content.text(f"Uploaded ~/{path} ({size} bytes).")])


async def list_files(
    ctx: MCPContext, session_id: SessionId, path: RelativePath = "Downloads"
) -> Annotated[CallToolResult, FileListing]:
    """List a folder of the session's HOME (default ~/Downloads, where the browser saves).
    Each file comes with a resource link: the URL to download it (GET, same credentials
    as this MCP connection)."""
    runtime = deps(ctx).runtime
    with tool_errors(session_id):
        files = await session_files(runtime.sessions, session_id=session_id, owner=caller(ctx))
    try:
        listing = await files.listing(path)
    except FileAccessError as exc:
        raise ToolError(to_domain_error(exc).message) from None
    if listing.get("type") != "dir":
        raise ToolError(f"{path} is a file, not a folder; list its folder instead.")
    entries = listing["entries"]
    lines = [f"{e['name']}{'/' if e['type'] == 'dir' else ''}\t{e['size']}" for e in entries]
    blocks: list[ContentBlock] = [
        TextContent(type="text", text=f"~/{listing['path']}:\n" + ("\n".join(lines) or "(empty)"))
    ]
    request = http_request(ctx)
    base = str(request.base_url) if request is not None else "/"
    found: list[FileEntry] = []
    links = 0
    for entry in entries:
        rel = f"{listing['path']}/{entry['name']}".strip("/")
        url = None
        if entry["type"] == "file":
            url = urljoin(base, f"api/v1/sessions/{session_id}/files/{quote(rel)}")
            links += 1
            if links <= MAX_LINKS:  # every file stays in `entries`, with its url
                blocks.append(
                    ResourceLink(
                        type="resource_link",
                        name=entry["name"],
                        uri=url,
                        size=entry["size"],
                        mime_type="application/octet-stream",
                        description=f"~/{rel} in session {session_id}",
                    )
                )
        found.append(FileEntry(name=entry["name"], type=entry["type"], size=entry["size"], url=url))
    return content.result(ctx, FileListing(path=listing["path"], entries=found), blocks)
