"""The websocket proxy against a real x11vnc on a real Xvfb, through a real uvicorn."""

from __future__ import annotations

import asyncio
import struct
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from computer_use.vnc import VncTokens, router
from tests.helpers import wait_for
from tests.vnc.vnc_helpers import (
    DEAD_SOCKET,
    NO_DESKTOP,
    OTHER_SESSION,
    SCREEN_HEIGHT,
    SCREEN_WIDTH,
    SECRET,
    SESSION,
    OneShotRfbServer,
    RfbClient,
    ServerThread,
    VncStack,
    move_pointer,
    pointer_position,
    proxy_sockets_to,
    proxy_tasks,
)

POLICY_VIOLATION = 1008
INTERNAL_ERROR = 1011
BINARY = [Subprotocol("binary")]  # what noVNC offers


async def _close_code(url: str) -> tuple[int, str]:
    """Connects and returns the close code and reason the server ends with."""
    async with connect(url, subprotocols=BINARY) as ws:
        with pytest.raises(ConnectionClosed):
            async with asyncio.timeout(10):
                await ws.recv()
        assert ws.close_code is not None
        return ws.close_code, ws.close_reason or ""


async def test_valid_token_completes_rfb_handshake_with_desktop_size(vnc_stack: VncStack) -> None:
    token = vnc_stack.tokens.mint(SESSION, interactive=False)
    async with connect(vnc_stack.ws_url(SESSION, token), subprotocols=BINARY) as ws:
        assert ws.subprotocol == "binary"
        init = await RfbClient(ws).handshake()
    assert (init.width, init.height) == (SCREEN_WIDTH, SCREEN_HEIGHT)


async def test_client_without_subprotocol_is_served_too(vnc_stack: VncStack) -> None:
    token = vnc_stack.tokens.mint(SESSION, interactive=False)
    async with connect(vnc_stack.ws_url(SESSION, token)) as ws:
        assert ws.subprotocol is None
        assert (await RfbClient(ws).handshake()).width == SCREEN_WIDTH


@pytest.mark.parametrize(
    "token",
    ["", "garbage", "eyJ4Ijp9.AAAA", "a.b.c"],
    ids=["missing", "garbage", "bad-signature", "three-parts"],
)
async def test_bad_token_is_closed_with_policy_violation(vnc_stack: VncStack, token: str) -> None:
    code, reason = await _close_code(vnc_stack.ws_url(SESSION, token))
    assert code == POLICY_VIOLATION
    assert "token" in reason


async def test_tampered_mode_is_closed_with_policy_violation(vnc_stack: VncStack) -> None:
    token = vnc_stack.tokens.mint(SESSION, interactive=False)
    other = vnc_stack.tokens.mint(SESSION, interactive=True)
    # A view-only payload with an interactive signature: both genuine, not together.
    spliced = token.split(".")[0] + "." + other.split(".")[1]
    code, _ = await _close_code(vnc_stack.ws_url(SESSION, spliced))
    assert code == POLICY_VIOLATION


async def test_expired_token_is_closed_with_policy_violation(vnc_stack: VncStack) -> None:
    token = VncTokens(secret=SECRET, ttl_seconds=0).mint(SESSION, interactive=True)
    code, reason = await _close_code(vnc_stack.ws_url(SESSION, token))
    assert (code, "expired" in reason) == (POLICY_VIOLATION, True)


async def test_token_of_another_session_is_closed_with_policy_violation(
    vnc_stack: VncStack,
) -> None:
    token = vnc_stack.tokens.mint(OTHER_SESSION, interactive=True)
    code, reason = await _close_code(vnc_stack.ws_url(SESSION, token))
    assert (code, "another session" in reason) == (POLICY_VIOLATION, True)


async def test_session_without_desktop_is_closed_with_reason(vnc_stack: VncStack) -> None:
    token = vnc_stack.tokens.mint(NO_DESKTOP, interactive=True)
    code, reason = await _close_code(vnc_stack.ws_url(NO_DESKTOP, token))
    assert (code, "no running desktop" in reason) == (POLICY_VIOLATION, True)


async def test_unreachable_vnc_server_is_closed_with_internal_error(vnc_stack: VncStack) -> None:
    token = vnc_stack.tokens.mint(DEAD_SOCKET, interactive=True)
    code, reason = await _close_code(vnc_stack.ws_url(DEAD_SOCKET, token))
    assert (code, reason) == (INTERNAL_ERROR, "desktop VNC unreachable")


async def test_plain_http_get_is_refused_with_upgrade_required(vnc_stack: VncStack) -> None:
    token = vnc_stack.tokens.mint(SESSION, interactive=True)
    url = f"{vnc_stack.server.base_url}/api/v1/sessions/{SESSION}/vnc/websockify?token={token}"
    async with httpx.AsyncClient() as client:
        response = await client.get(url)
    assert response.status_code == 426
    assert response.headers["upgrade"] == "websocket"


async def test_unknown_client_message_type_closes_the_connection(vnc_stack: VncStack) -> None:
    token = vnc_stack.tokens.mint(SESSION, interactive=True)
    async with connect(vnc_stack.ws_url(SESSION, token)) as ws:
        await RfbClient(ws).handshake()
        await ws.send(b"\x07garbage")
        with pytest.raises(ConnectionClosed):
            async with asyncio.timeout(10):
                while True:
                    await ws.recv()
        assert ws.close_code == POLICY_VIOLATION
        assert "unknown RFB client message type 7" in (ws.close_reason or "")


async def test_text_frames_are_refused(vnc_stack: VncStack) -> None:
    token = vnc_stack.tokens.mint(SESSION, interactive=True)
    async with connect(vnc_stack.ws_url(SESSION, token)) as ws:
        await ws.send("RFB 003.008\n")
        with pytest.raises(ConnectionClosed):
            async with asyncio.timeout(10):
                while True:
                    await ws.recv()
        assert ws.close_code == 1003


async def test_view_only_click_does_not_reach_the_server(vnc_stack: VncStack) -> None:
    display = vnc_stack.display
    move_pointer(display, 10, 10)
    vnc_stack.targets.touches.clear()
    token = vnc_stack.tokens.mint(SESSION, interactive=False)
    async with connect(vnc_stack.ws_url(SESSION, token)) as ws:
        client = RfbClient(ws)
        await client.handshake()
        # Input of every kind, byte by byte: the filter must stay in step across frames.
        key = struct.pack(">BBxxI", 4, 1, 0x61)
        cut = struct.pack(">BxxxI", 6, 5) + b"hello"
        burst = client.pointer_event(700, 500, 1) + key + cut + client.pointer_event(700, 500, 0)
        for byte in burst:
            await ws.send(bytes([byte]))
        await client.sync()
        assert pointer_position(display) == (10, 10)
        await client.sync()  # the connection is still in step after the dropped messages
    assert vnc_stack.targets.touches == []  # view-only input is not activity either


async def test_interactive_click_moves_the_pointer_and_counts_as_activity(
    vnc_stack: VncStack,
) -> None:
    display = vnc_stack.display
    move_pointer(display, 10, 10)
    vnc_stack.targets.touched.clear()
    token = vnc_stack.tokens.mint(SESSION, interactive=True)
    async with connect(vnc_stack.ws_url(SESSION, token)) as ws:
        client = RfbClient(ws)
        await client.handshake()
        # Two messages in one frame, the second split across two frames.
        first, second = client.pointer_event(300, 200), client.pointer_event(640, 480, 1)
        await ws.send(first + second[:3])
        await ws.send(second[3:] + client.pointer_event(640, 480, 0))
        await client.sync()
        assert pointer_position(display) == (640, 480)
    assert await asyncio.to_thread(vnc_stack.targets.touched.wait, 10)
    assert SESSION in vnc_stack.targets.touches


async def _wait_for_no_proxy_tasks(vnc_stack: VncStack) -> None:
    await asyncio.to_thread(
        wait_for,
        lambda: proxy_tasks(vnc_stack.server.base_url) == [],
        timeout=10,
        what="the proxy's tasks to end",
    )


async def test_browser_closing_releases_the_desktop_socket_and_tasks(vnc_stack: VncStack) -> None:
    no_sockets_left = lambda: proxy_sockets_to(vnc_stack.vnc_socket) == 0  # noqa: E731
    # Earlier tests' connections may still be closing: start from none.
    await asyncio.to_thread(wait_for, no_sockets_left, timeout=10, what="a clean start")
    token = vnc_stack.tokens.mint(SESSION, interactive=True)
    async with connect(vnc_stack.ws_url(SESSION, token)) as ws:
        await RfbClient(ws).handshake()
        assert proxy_sockets_to(vnc_stack.vnc_socket) == 1
        assert sorted(await asyncio.to_thread(proxy_tasks, vnc_stack.server.base_url)) == [
            "vnc-client-to-server",
            "vnc-server-to-client",
        ]
    await asyncio.to_thread(
        wait_for, no_sockets_left, timeout=10, what="the proxy to close its x11vnc socket"
    )
    await _wait_for_no_proxy_tasks(vnc_stack)


async def test_desktop_hanging_up_closes_the_websocket(vnc_stack: VncStack, tmp_path: Path) -> None:
    server = OneShotRfbServer(tmp_path)
    vnc_stack.targets.sockets["sess-one-shot"] = server.path
    try:
        token = vnc_stack.tokens.mint("sess-one-shot", interactive=False)
        async with connect(vnc_stack.ws_url("sess-one-shot", token)) as ws:
            assert await ws.recv() == b"RFB 003.008\n"
            await ws.send(b"RFB 003.008\n")
            with pytest.raises(ConnectionClosed):
                async with asyncio.timeout(10):
                    await ws.recv()
            assert (ws.close_code, ws.close_reason) == (1000, "VNC server closed the connection")
    finally:
        server.close()
    await _wait_for_no_proxy_tasks(vnc_stack)


async def test_app_without_vnc_wiring_closes_with_a_reason() -> None:
    app = FastAPI()
    app.include_router(router)  # but no app.state.vnc_tokens / vnc_targets
    server = await asyncio.to_thread(ServerThread, app)
    try:
        url = f"{server.ws_url}/api/v1/sessions/{SESSION}/vnc/websockify?token=x"
        assert await _close_code(url) == (INTERNAL_ERROR, "VNC is not configured")
    finally:
        await asyncio.to_thread(server.stop)
