"""VNC in the browser on the app's one port: the viewer page, noVNC's files and the websocket.

- GET `/vnc/{session_id}?token=...`: our small noVNC page (assets under `/vnc/assets/`).
- `/novnc/...`: the system's noVNC, found at run time (503 with a hint when it is missing).
- WS `/api/v1/sessions/{session_id}/vnc/websockify?token=...`: token-checked proxy to the
  session's x11vnc on its unix socket (targets.py); view-only is enforced here, not trusted
  to the browser.

The app provides `app.state.vnc_tokens` (`VncTokens`) and `app.state.vnc_targets`
(`VncTargets`).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, status
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.requests import HTTPConnection, Request
from starlette.websockets import WebSocket

from computer_use import errors
from computer_use.vnc.novnc import NoVncFiles
from computer_use.vnc.proxy import (
    CLOSE_INTERNAL_ERROR,
    CLOSE_POLICY_VIOLATION,
    ActivityThrottle,
    run_proxy,
)
from computer_use.vnc.rfb import ClientStreamFilter
from computer_use.vnc.targets import VncTargets, vnc_targets_of
from computer_use.vnc.tokens import VncTokenError, VncTokens
from computer_use.vnc.viewer import VIEWER_HEADERS, render_viewer, vnc_tokens_of

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT_SECONDS = 15.0  # x11vnc may have to start first (desktops/viewing.py)
WEBSOCKET_PATH = "/api/v1/sessions/{session_id}/vnc/websockify"
STATIC_DIR = Path(__file__).with_name("static")


def websocket_path(session_id: str) -> str:
    return WEBSOCKET_PATH.format(session_id=quote(session_id, safe=""))


def get_vnc_tokens(conn: HTTPConnection) -> VncTokens:
    tokens = vnc_tokens_of(conn.app)
    if tokens is None:
        raise errors.ServiceUnavailable("VNC is not configured on this server (no vnc_tokens).")
    return tokens


def get_vnc_targets(conn: HTTPConnection) -> VncTargets:
    targets = vnc_targets_of(conn.app)
    if targets is None:
        raise errors.ServiceUnavailable("VNC is not configured on this server (no vnc_targets).")
    return targets


VncTokensDep = Annotated[VncTokens, Depends(get_vnc_tokens)]
VncTargetsDep = Annotated[VncTargets, Depends(get_vnc_targets)]


async def _refuse(websocket: WebSocket, subprotocol: str | None, code: int, reason: str) -> None:
    # Accept then close, so the client sees a close code and reason rather than a bare 403.
    await websocket.accept(subprotocol)
    await websocket.close(code, reason[:120])


async def vnc_websocket(websocket: WebSocket, session_id: str, token: str | None = None) -> None:
    offered = websocket.scope.get("subprotocols") or []
    subprotocol = "binary" if "binary" in offered else None
    # Not the HTTP dependencies: a 503 body cannot travel on a websocket, a close reason can.
    tokens = vnc_tokens_of(websocket.app)
    targets = vnc_targets_of(websocket.app)
    if tokens is None or targets is None:
        logger.error("VNC websocket refused: app.state.vnc_tokens/vnc_targets are not set")
        await _refuse(websocket, subprotocol, CLOSE_INTERNAL_ERROR, "VNC is not configured")
        return
    try:
        grant = tokens.verify(token or "", session_id)
    except VncTokenError as exc:
        await _refuse(websocket, subprotocol, CLOSE_POLICY_VIOLATION, exc.message)
        return
    try:
        stream = await asyncio.wait_for(targets.connect(session_id), CONNECT_TIMEOUT_SECONDS)
    except (OSError, TimeoutError, errors.DomainError) as exc:
        logger.warning("session %s: x11vnc unreachable: %s", session_id, exc)
        await _refuse(websocket, subprotocol, CLOSE_INTERNAL_ERROR, "desktop VNC unreachable")
        return
    if stream is None:
        reason = "session not found or it has no running desktop"
        await _refuse(websocket, subprotocol, CLOSE_POLICY_VIOLATION, reason)
        return
    try:
        await _serve_viewer(websocket, session_id, subprotocol, grant.interactive, stream, targets)
    finally:
        targets.disconnected(session_id)


async def _serve_viewer(
    websocket: WebSocket,
    session_id: str,
    subprotocol: str | None,
    interactive: bool,
    stream: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    targets: VncTargets,
) -> None:
    reader, writer = stream
    try:
        await websocket.accept(subprotocol)
    except BaseException:
        writer.close()
        raise
    mode = "interactive" if interactive else "view-only"
    logger.info("session %s: %s VNC viewer connected", session_id, mode)
    targets.viewer_opened(session_id)

    throttle: ActivityThrottle | None = None
    if interactive:
        throttle = ActivityThrottle(lambda: targets.touch(session_id))
    rfb_filter = ClientStreamFilter(view_only=not interactive)
    try:
        end = await run_proxy(
            websocket,
            reader,
            writer,
            rfb_filter=rfb_filter,
            on_input=throttle.notify if throttle is not None else None,
        )
    finally:
        if throttle is not None:
            await throttle.aclose()
    logger.info(
        "session %s: %s VNC viewer left (%d %s; %d input messages withheld)",
        session_id,
        mode,
        end.code,
        end.reason,
        rfb_filter.dropped_total,
    )


async def vnc_websocket_without_upgrade(session_id: str) -> None:
    # Without this route a plain GET would be a confusing 404 on a path that does exist.
    raise HTTPException(
        status.HTTP_426_UPGRADE_REQUIRED,
        "This endpoint speaks WebSocket only (RFB over binary frames); open it with a "
        "WebSocket client such as the viewer at /vnc/{session_id}.",
        headers={"Upgrade": "websocket", "Connection": "Upgrade"},
    )


def create_router(*, novnc: NoVncFiles | None = None) -> APIRouter:
    """The VNC routes; `novnc` locates noVNC's files (the system's, by default)."""
    novnc = novnc or NoVncFiles()
    router = APIRouter(tags=["vnc"])
    router.mount("/novnc", novnc, name="novnc")
    router.mount("/vnc/assets", StaticFiles(directory=STATIC_DIR), name="vnc-assets")

    @router.get("/vnc/{session_id}", response_class=HTMLResponse, include_in_schema=False)
    async def vnc_viewer(
        session_id: str,
        request: Request,
        tokens: VncTokensDep,
        targets: VncTargetsDep,
        token: str | None = None,
    ) -> HTMLResponse:
        if novnc.directory() is None:
            raise errors.ServiceUnavailable(
                "The noVNC web client is not installed on this server; install the 'novnc' "
                "package (Debian: apt-get install novnc)."
            )
        grant = tokens.verify(token or "", session_id)
        if not await targets.available(session_id):
            raise errors.NotFound(f"Session {session_id} not found or it has no running desktop.")
        page = render_viewer(
            session_id=session_id,
            websocket_path=request.scope.get("root_path", "") + websocket_path(session_id),
            grant=grant,
        )
        return HTMLResponse(page, headers=VIEWER_HEADERS)

    router.add_api_route(
        WEBSOCKET_PATH, vnc_websocket_without_upgrade, methods=["GET"], include_in_schema=False
    )
    router.add_api_websocket_route(WEBSOCKET_PATH, vnc_websocket)
    return router


router = create_router()
