"""The viewer page: static markup with per-session values in data attributes.

No inline script or style: behaviour lives in assets/viewer.js, looks in assets/viewer.css, so
the page can carry a strict Content-Security-Policy (sent here already).
"""

from __future__ import annotations

from html import escape
from typing import Any
from urllib.parse import quote

from computer_use import appstate
from computer_use.vnc.tokens import VncGrant, VncTokens

VIEWER_PATH = "/vnc/{session_id}"

# 'self' in connect-src covers ws:/wss: to the same host (CSP level 3). The token sits in the
# URL, so no referrer may carry it away, and no cache may keep it.
VIEWER_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'self'"
    ),
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Desktop of session {title}</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="assets/viewer.css">
<script type="module" src="assets/viewer.js"></script>
</head>
<body data-websocket-path="{websocket_path}" data-view-only="{view_only}"
      data-expires-at="{expires_at}">
<div id="status" role="status">Loading…</div>
<div id="screen"></div>
</body>
</html>
"""


def render_viewer(*, session_id: str, websocket_path: str, grant: VncGrant) -> str:
    return _PAGE.format(
        title=escape(session_id),
        websocket_path=escape(websocket_path, quote=True),
        view_only="false" if grant.interactive else "true",
        expires_at=grant.expires_at,
    )


class VncUrlMinter:
    """`app.state.vnc_url_for`: a fresh viewer URL (relative) with a new token per call."""

    def __init__(self, tokens: VncTokens) -> None:
        self._tokens = tokens

    def __call__(self, session_id: str, interactive: bool = False) -> str:
        token = self._tokens.mint(session_id, interactive=interactive)
        return VIEWER_PATH.format(session_id=quote(session_id, safe="")) + f"?token={token}"


def vnc_url_for(tokens: VncTokens) -> VncUrlMinter:
    return VncUrlMinter(tokens)


def vnc_tokens_of(app: Any) -> VncTokens | None:
    """The app's VNC token signer (create_app puts it on app.state.vnc_tokens)."""
    return appstate.read(app, "vnc_tokens", VncTokens)


def vnc_minter_of(app: Any) -> VncUrlMinter | None:
    """The app's viewer URL minter (create_app puts it on app.state.vnc_url_for)."""
    return appstate.read(app, "vnc_url_for", VncUrlMinter)
