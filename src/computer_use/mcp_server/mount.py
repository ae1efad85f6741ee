"""MCP on the app's own port: the exact `/mcp` route, transport security, and its lifespan.

`Mount("/mcp", ...)` would answer POST /mcp with a 307 to /mcp/, which some clients do not
follow; so the SDK app's single exact route joins the app's router instead. A mounted
sub-app's lifespan never runs, so the app's lifespan enters the session manager through
`mcp_running` (once per app: a manager's run() works only once).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from mcp.server.transport_security import TransportSecuritySettings

from computer_use.config import Settings
from computer_use.mcp_server.server import create_mcp_server

MCP_PATH = "/mcp"


def _items(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def transport_security(settings: Settings) -> TransportSecuritySettings:
    """DNS-rebinding protection: unknown Host gets 421, unknown Origin 403."""
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=_items(settings.mcp_allowed_hosts),
        allowed_origins=_items(settings.mcp_allowed_origins),
    )


def mount_mcp(app: FastAPI, settings: Settings) -> None:
    """Adds POST/GET/DELETE /mcp (Streamable HTTP) unless MCP_ENABLED is false."""
    if not settings.mcp_enabled:
        return
    server = create_mcp_server(app, settings)
    # SSE responses (not json_response): progress notifications of execute_task need them.
    http_app = server.streamable_http_app(
        streamable_http_path=MCP_PATH, transport_security=transport_security(settings)
    )
    app.router.routes.extend(http_app.routes)
    app.state.mcp_server = server
    extra: list[str] = getattr(app.state, "llms_extra_routes", [])
    extra.append(
        f"POST {MCP_PATH}: MCP (Streamable HTTP). Tools: create_session, execute_task, "
        "wait_for_task, cancel_task, get_session_status, destroy_session, take_screenshot. "
        "Key: X-Anthropic-API-Key header"
    )
    app.state.llms_extra_routes = extra


@asynccontextmanager
async def mcp_running(app: FastAPI) -> AsyncIterator[None]:
    """Runs the MCP session manager (its task group holds every MCP session) for the app's
    lifetime; nothing when MCP is disabled."""
    server = getattr(app.state, "mcp_server", None)
    if server is None:
        yield
        return
    async with server.session_manager.run():
        yield
