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
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from computer_use import appstate
from computer_use.auth import OWNER_SCOPE_KEY
from computer_use.config import Settings
from computer_use.mcp_server.server import create_mcp_server

MCP_PATH = "/mcp"


def transport_security() -> TransportSecuritySettings:
    """The SDK's own Host/Origin check is off: hostguard.py applies one rule to every route,
    /mcp included."""
    return TransportSecuritySettings(enable_dns_rebinding_protection=False)


class _SessionsBoundToCaller:
    """The SDK binds each MCP session to the credential that opened it (`scope["user"]`) and
    answers 404 to any other. Ours is the caller's owner id from the API-token gate
    (auth.py), so token B can neither use nor end token A's `mcp-session-id`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        owner = scope.get(OWNER_SCOPE_KEY)
        if owner:
            credential = AccessToken(token=owner, client_id=owner, scopes=[])
            scope["user"] = AuthenticatedUser(credential)
        await self.app(scope, receive, send)


def mount_mcp(app: FastAPI, settings: Settings) -> None:
    """Adds POST/GET/DELETE /mcp (Streamable HTTP) unless MCP_ENABLED is false."""
    if not settings.mcp_enabled:
        return
    server = create_mcp_server(app, settings)
    # SSE responses (not json_response): progress notifications of execute_task need them.
    # On a Ray cluster any replica serves any request, so no MCP session lives in one
    # replica's memory: 2026-07-28 clients are sessionless anyway, and 2025-era clients are
    # answered without an Mcp-Session-Id (each request stands alone; the tools keep their
    # state in the database). What such a client loses: a standalone GET stream, and the
    # live-desktop app (its capabilities were only in its `initialize`).
    http_app = server.streamable_http_app(
        streamable_http_path=MCP_PATH,
        transport_security=transport_security(),
        stateless_http=bool(settings.ray_address),
    )
    for route in http_app.routes:
        if isinstance(route, Route):
            route.app = _SessionsBoundToCaller(route.app)
    app.router.routes.extend(http_app.routes)
    app.state.mcp_server = server
    extra: list[str] = appstate.read(app, "llms_extra_routes", list) or []
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
    server = appstate.read(app, "mcp_server", MCPServer)
    if server is None:
        yield
        return
    async with server.session_manager.run():
        yield
