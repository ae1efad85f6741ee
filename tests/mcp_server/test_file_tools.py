"""MCP upload_file and list_files: a small file goes in as base64 and comes out through the
resource link list_files gives for it; oversized and bad-path calls are tool errors."""

from __future__ import annotations

import base64
import os
from collections.abc import Callable

import httpx
from mcp_types import ResourceLink

from computer_use.mcp_server.file_tools import UPLOAD_MAX_BYTES
from tests.helpers import ServerProcess
from tests.mcp_server.conftest import mcp_client, text_of


async def test_upload_then_download_through_the_resource_link(
    app_server: ServerProcess, created: Callable[[str], None]
) -> None:
    payload = os.urandom(200_000)
    async with mcp_client(app_server) as client:
        session = await client.call_tool("create_session", {"title": "mcp files"})
        assert session.structured_content is not None
        sid = session.structured_content["session_id"]
        created(sid)
        uploaded = await client.call_tool(
            "upload_file",
            {
                "session_id": sid,
                "filename": "blob.bin",
                "content_base64": base64.b64encode(payload).decode(),
            },
        )
        assert not uploaded.is_error, text_of(uploaded)
        assert uploaded.structured_content == {"path": "Uploads/blob.bin", "size": len(payload)}

        listed = await client.call_tool("list_files", {"session_id": sid, "path": "Uploads"})
        assert not listed.is_error, text_of(listed)
        links = [c for c in listed.content if isinstance(c, ResourceLink)]
        assert [(link.name, link.size) for link in links] == [("blob.bin", len(payload))]
        async with httpx.AsyncClient() as http:
            fetched = await http.get(str(links[0].uri))
        assert fetched.status_code == 200 and fetched.content == payload

        too_big = await client.call_tool(
            "upload_file",
            {
                "session_id": sid,
                "filename": "big.bin",
                "content_base64": base64.b64encode(b"\0" * (UPLOAD_MAX_BYTES + 1)).decode(),
            },
        )
        assert too_big.is_error and "PUT" in text_of(too_big)
        escape = await client.call_tool(
            "upload_file",
            {"session_id": sid, "filename": "x", "content_base64": "eA==", "folder": "../.."},
        )
        assert escape.is_error and "'..'" in text_of(escape)
        missing = await client.call_tool("list_files", {"session_id": sid, "path": "nope"})
        assert missing.is_error and "does not exist" in text_of(missing)
