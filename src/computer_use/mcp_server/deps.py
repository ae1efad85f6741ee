"""What the MCP tools reach at call time: the app's Runtime and the caller's HTTP request.

The MCP server is built in create_app (so its route exists before start-up), but the Runtime
only exists once the app's lifespan has run: tools look it up per call through `MCPDeps`,
which the server's own lifespan hands to every request (`ctx.request_context.lifespan_context`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

from fastapi import FastAPI
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from starlette.requests import Request

from computer_use.auth import MISSING_TOKEN_MESSAGE, api_tokens_of
from computer_use.runtime import Runtime, installed_runtime
from computer_use.sessions.models import Session
from computer_use.vnc.viewer import vnc_minter_of

API_KEY_HEADER = "X-Anthropic-API-Key"


@dataclass(frozen=True)
class MCPDeps:
    app: FastAPI

    @property
    def runtime(self) -> Runtime:
        runtime = installed_runtime(self.app)
        if runtime is None:
            raise ToolError("The server is still starting; try again in a moment.")
        return runtime

    def vnc_url(self, session: Session, request: Request | None) -> str | None:
        """A fresh view-only viewer URL (new token), absolute when the request says where
        the client reached us; None when the session has no running desktop."""
        minter = vnc_minter_of(self.app)
        if minter is None or not self.runtime.sessions.viewable(session):
            return None
        url = str(minter(session.id))
        return urljoin(str(request.base_url), url) if request is not None else url


MCPContext = Context[MCPDeps, Any]


def deps(ctx: MCPContext) -> MCPDeps:
    return ctx.request_context.lifespan_context


def http_request(ctx: MCPContext) -> Request | None:
    request = ctx.request_context.request
    return request if isinstance(request, Request) else None


def caller(ctx: MCPContext) -> str | None:
    """The caller's owner id from the Authorization (or X-API-Token) header of this MCP request;
    None when API_TOKENS is off. The HTTP gate already refused a missing token: this is the
    same check where the tools can see it."""
    tokens = api_tokens_of(deps(ctx).app)
    if tokens is None or not tokens.enabled:
        return None
    headers = ctx.headers
    owner = tokens.from_headers({k.lower(): v for k, v in (headers or {}).items()})
    if owner is None:
        raise ToolError(MISSING_TOKEN_MESSAGE)
    return owner


def api_key(ctx: MCPContext) -> str | None:
    """The caller's own key from the X-Anthropic-API-Key header of this MCP request (None:
    the server's key is used). Read from the transport, never a tool argument; never logged."""
    headers = ctx.headers
    value = headers.get(API_KEY_HEADER.lower()) if headers is not None else None
    return (value.strip() or None) if value else None
