"""The live desktop as an MCP App (extension `io.modelcontextprotocol/ui`).

Hosts that render apps (Claude, VS Code, ...) show `ui://computer-use/live-desktop` next to
the results of the tools bound to it: the session's desktop, live and view-only, through the
VNC websocket with a short-lived token from the result's `_meta`, plus a take-over button that
opens the interactive viewer page in the browser (the app never frames that page, whose
frame-ancestors stay strict). Its CSP names this server's own origin, as the client reached it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from mcp.server.apps import Apps, ResourceCsp

LIVE_DESKTOP_URI = "ui://computer-use/live-desktop"
_HTML = Path(__file__).with_name("static") / "live_desktop.html"


def live_desktop_app() -> Apps:
    apps = Apps()
    apps.add_html_resource(
        LIVE_DESKTOP_URI,
        _HTML.read_text(encoding="utf-8"),
        name="live-desktop",
        title="Live desktop",
        description="The session's desktop, live and view-only, with a take-over button.",
        prefers_border=True,
    )
    return apps


def ui_meta(base_url: str) -> dict[str, Any]:
    """`_meta.ui` of the app as read through `base_url`: noVNC's modules load from this
    origin, and the websocket connects to it."""
    parts = urlsplit(base_url)
    origin = f"{parts.scheme}://{parts.netloc}"
    ws_origin = f"{'wss' if parts.scheme == 'https' else 'ws'}://{parts.netloc}"
    csp = ResourceCsp(connect_domains=[ws_origin, origin], resource_domains=[origin])
    return {"csp": csp.model_dump(by_alias=True, exclude_none=True), "prefersBorder": True}
