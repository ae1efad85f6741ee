"""The viewer page: HTTP answers, then a real Chromium running noVNC through the proxy."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from computer_use.errors import install_error_handlers
from computer_use.vnc import VncTokens, create_router, vnc_url_for
from computer_use.vnc.novnc import NoVncFiles
from tests.helpers import wait_for
from tests.vnc.vnc_helpers import (
    LEFT_COLOUR,
    NO_DESKTOP,
    RIGHT_COLOUR,
    SCREEN_HEIGHT,
    SCREEN_WIDTH,
    SESSION,
    PointerRecorder,
    RecordingTargets,
    VncStack,
    move_pointer,
    pointer_position,
)

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]

# Records the page's websockets (to play a tampered client) and any CSP violation.
INIT_SCRIPT = """
window.__vncSockets = [];
window.__cspViolations = [];
// A Proxy, not a subclass: noVNC checks the socket's direct prototype for WebSocket's members.
window.WebSocket = new Proxy(window.WebSocket, {
  construct(target, args) {
    const socket = new target(...args);
    window.__vncSockets.push(socket);
    return socket;
  },
});
document.addEventListener("securitypolicyviolation",
  (e) => window.__cspViolations.push(e.violatedDirective + " " + e.blockedURI));
"""

# True once noVNC's canvas has the desktop's size and shows both halves of the painted root.
DESKTOP_SHOWN = """([width, height, left, right]) => {
  const canvas = document.querySelector("#screen canvas");
  if (!canvas || canvas.width !== width || canvas.height !== height) return false;
  const ctx = canvas.getContext("2d");
  const px = (x, y) => Array.from(ctx.getImageData(x, y, 1, 1).data.slice(0, 3));
  const same = (a, b) => a.every((v, i) => v === b[i]);
  return same(px(width / 4, height / 2), left) && same(px(3 * width / 4, height / 2), right);
}"""


# --- plain HTTP ------------------------------------------------------------------------


async def test_viewer_page_is_served_with_a_strict_policy(vnc_stack: VncStack) -> None:
    url = vnc_url_for(vnc_stack.tokens)(SESSION)
    async with httpx.AsyncClient(base_url=vnc_stack.server.base_url) as client:
        page = await client.get(url)
        script = await client.get("/vnc/assets/viewer.js")
        rfb = await client.get("/novnc/core/rfb.js")
    assert page.status_code == 200
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["referrer-policy"] == "no-referrer"
    assert "<script>" not in page.text and "style=" not in page.text
    assert f'data-websocket-path="/api/v1/sessions/{SESSION}/vnc/websockify"' in page.text
    assert 'data-view-only="true"' in page.text
    assert script.status_code == rfb.status_code == 200
    assert "javascript" in rfb.headers["content-type"]


def test_vnc_url_is_relative_and_carries_the_mode() -> None:
    tokens = VncTokens()
    url = vnc_url_for(tokens)("s 1", interactive=True)
    assert url.startswith("/vnc/s%201?token=")
    assert tokens.verify(url.split("token=")[1], "s 1").interactive


@pytest.mark.parametrize(
    ("session_id", "token_for", "status", "code"),
    [
        (SESSION, None, 401, "invalid_vnc_token"),
        (SESSION, "sess-other", 401, "vnc_token_wrong_session"),
        (NO_DESKTOP, NO_DESKTOP, 404, "not_found"),
    ],
    ids=["no-token", "other-session", "no-desktop"],
)
async def test_viewer_page_refusals(
    vnc_stack: VncStack, session_id: str, token_for: str | None, status: int, code: str
) -> None:
    token = vnc_stack.tokens.mint(token_for, interactive=False) if token_for else ""
    async with httpx.AsyncClient(base_url=vnc_stack.server.base_url) as client:
        response = await client.get(f"/vnc/{session_id}", params={"token": token})
    assert response.status_code == status
    assert response.json()["error"]["code"] == code


async def test_viewer_and_novnc_answer_503_when_novnc_is_missing(tmp_path: Path) -> None:
    app = FastAPI()
    install_error_handlers(app, debug=False)
    app.include_router(create_router(novnc=NoVncFiles(candidates=(tmp_path / "nowhere",))))
    tokens = VncTokens()
    app.state.vnc_tokens = tokens
    app.state.vnc_targets = RecordingTargets({SESSION: Path("/nonexistent/vnc.sock")})
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        viewer = await client.get(vnc_url_for(tokens)(SESSION))
        files = await client.get("/novnc/core/rfb.js")
    assert viewer.status_code == files.status_code == 503
    assert "install the 'novnc' package" in viewer.json()["error"]["message"]
    assert "install the 'novnc' package" in files.text


# --- in Chromium -----------------------------------------------------------------------


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


# Tests take `vnc_stack` before `context`: the context (and its viewers) closes first, then
# vnc_stack waits for the server to finish with them.
@pytest.fixture
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    context = await browser.new_context(viewport={"width": 1200, "height": 700})
    await context.add_init_script(INIT_SCRIPT)
    try:
        yield context
    finally:
        await context.close()


async def open_viewer(context: BrowserContext, vnc_stack: VncStack, *, interactive: bool) -> Page:
    page = await context.new_page()
    url = vnc_stack.server.base_url + vnc_url_for(vnc_stack.tokens)(SESSION, interactive)
    await page.goto(url)
    await page.wait_for_function(
        DESKTOP_SHOWN, arg=[SCREEN_WIDTH, SCREEN_HEIGHT, LEFT_COLOUR, RIGHT_COLOUR], timeout=15000
    )
    return page


def near(point: tuple[int, int], target: tuple[int, int]) -> bool:
    # Page coordinates are whole CSS pixels of a scaled canvas: allow one desktop pixel off.
    return abs(point[0] - target[0]) <= 1 and abs(point[1] - target[1]) <= 1


async def page_point(page: Page, x: int, y: int) -> tuple[float, float]:
    """Where desktop pixel (x, y) is on the page, through noVNC's scaling."""
    box = await page.locator("#screen canvas").bounding_box()
    assert box is not None
    scale_x, scale_y = box["width"] / SCREEN_WIDTH, box["height"] / SCREEN_HEIGHT
    return box["x"] + (x + 0.5) * scale_x, box["y"] + (y + 0.5) * scale_y


async def test_viewer_shows_the_desktop_scaled_to_fit(
    vnc_stack: VncStack, context: BrowserContext
) -> None:
    page = await open_viewer(context, vnc_stack, interactive=False)
    box = await page.locator("#screen canvas").bounding_box()
    assert box is not None and box["height"] <= 700 and box["width"] < SCREEN_WIDTH  # scaled
    assert await page.locator("#status").text_content() == "Connected (view only)"
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=ARTIFACTS / "vnc_viewer.png")
    assert await page.evaluate("window.__cspViolations") == []


async def test_view_only_viewer_cannot_move_the_pointer_even_if_tampered(
    vnc_stack: VncStack, context: BrowserContext
) -> None:
    display = vnc_stack.display
    move_pointer(display, 10, 10)
    recorder = PointerRecorder(display)
    try:
        viewer = await open_viewer(context, vnc_stack, interactive=False)
        await viewer.mouse.click(*await page_point(viewer, 200, 150))
        # A tampered client: raw PointerEvents on the page's own socket, bypassing noVNC.
        await viewer.evaluate(
            """([x, y]) => {
              const ws = window.__vncSockets[0];
              for (const mask of [1, 0]) {
                ws.send(new Uint8Array([5, mask, x >> 8, x & 255, y >> 8, y & 255]));
              }
            }""",
            [300, 250],
        )
        # Then an interactive viewer clicks elsewhere. x11vnc reads its clients in arrival
        # order, so once this later click has landed, the earlier ones would have too.
        interactive = await open_viewer(context, vnc_stack, interactive=True)
        await interactive.mouse.click(*await page_point(interactive, 800, 600))
        await asyncio.to_thread(
            wait_for,
            lambda: near(pointer_position(display), (800, 600)),
            timeout=10,
            what="the interactive click to move the pointer",
        )
        seen = recorder.seen()
    finally:
        recorder.close()
    assert any(near(p, (800, 600)) for p in seen)
    assert not [p for p in seen if abs(p[0] - 250) < 100 and abs(p[1] - 200) < 100], seen
    assert await viewer.evaluate("window.__vncSockets[0].readyState") == 1  # not cut off
