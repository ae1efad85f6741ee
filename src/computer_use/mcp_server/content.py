"""What tool results are made of: text, screenshots as images plus links, viewer links, and
(for hosts that render MCP Apps) the live desktop view's connection details in `_meta`."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote, urljoin

from mcp.server.apps import client_supports_apps
from mcp.server.mcpserver import Image
from mcp_types import CallToolResult, ContentBlock, ImageContent, ResourceLink, TextContent
from pydantic import BaseModel

from computer_use import errors
from computer_use.desktops import DesktopError
from computer_use.mcp_server.deps import MCPContext, deps, http_request
from computer_use.sessions.models import Session
from computer_use.vnc.router import websocket_path
from computer_use.vnc.viewer import vnc_minter_of, vnc_tokens_of

logger = logging.getLogger(__name__)

# The key of the tool results' `_meta` the live desktop app reads (only for Apps clients).
LIVE_VIEW_META = "computer-use/live-view"


def absolute(ctx: MCPContext, path: str) -> str:
    request = http_request(ctx)
    return urljoin(str(request.base_url), path) if request is not None else path


def screenshot_url(ctx: MCPContext, session_id: str) -> str:
    return absolute(ctx, f"/api/v1/sessions/{quote(session_id, safe='')}/screenshot")


def screenshot_link(ctx: MCPContext, session_id: str) -> ResourceLink:
    return ResourceLink(
        type="resource_link",
        uri=screenshot_url(ctx, session_id),
        name="screenshot",
        title="The desktop right now (PNG)",
        mime_type="image/png",
    )


def viewer_link(url: str) -> ResourceLink:
    return ResourceLink(
        type="resource_link",
        uri=url,
        name="live-desktop",
        title="Watch the desktop live (view-only; the link expires in minutes)",
        mime_type="text/html",
    )


async def screenshot(ctx: MCPContext, session_id: str) -> list[ContentBlock]:
    """The desktop as an image plus a link to a fresh one; nothing without a desktop."""
    sessions = deps(ctx).runtime.sessions
    try:
        png = await sessions.screenshot(session_id=session_id, owner=None)
    except (errors.DesktopNotRunning, errors.NotFound, errors.SessionExpired):
        return []  # no desktop to show
    except (DesktopError, errors.DomainError):
        logger.warning("screenshot of session %s failed", session_id, exc_info=True)
        return []
    image: ImageContent = Image(data=png, format="png").to_image_content()
    return [image, screenshot_link(ctx, session_id)]


def live_view(ctx: MCPContext, session: Session) -> dict[str, Any] | None:
    """Connection details for the live desktop app: a view-only websocket URL with a
    short-lived token, the interactive viewer page for taking over, and noVNC's location.
    None when the client did not negotiate MCP Apps or the desktop is not running."""
    if not client_supports_apps(ctx):
        return None
    mcp = deps(ctx)
    tokens = vnc_tokens_of(mcp.app)
    minter = vnc_minter_of(mcp.app)
    if tokens is None or minter is None or not mcp.runtime.sessions.viewable(session):
        return None
    session_id = session.id
    token = tokens.mint(session_id, interactive=False)
    ws = absolute(ctx, websocket_path(session_id)).replace("http", "ws", 1)
    return {
        "session_id": session_id,
        "websocket_url": f"{ws}?token={token}",
        "novnc_url": absolute(ctx, "/novnc/"),
        "takeover_url": absolute(ctx, str(minter(session_id, interactive=True))),
        "expires_in_seconds": tokens.ttl_seconds,
    }


def result(
    ctx: MCPContext,
    structured: BaseModel,
    blocks: list[ContentBlock],
    *,
    session: Session | None = None,
    is_error: bool = False,
) -> CallToolResult:
    """A tool result: `blocks` for the model, `structured` for programs, and the live view in
    `_meta` for an Apps host."""
    view = live_view(ctx, session) if session is not None else None
    return CallToolResult(
        content=blocks,
        structured_content=structured.model_dump(mode="json"),
        is_error=is_error,
        _meta={LIVE_VIEW_META: view} if view else None,
    )


def text(value: str) -> TextContent:
    return TextContent(type="text", text=value)
