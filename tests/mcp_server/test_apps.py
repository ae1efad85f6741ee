"""The live desktop as an MCP App: what a client advertising Apps sees, that a client without
it sees the plain results, and the app itself drawing the desktop in Chromium through a
minimal host (an iframe answering the app's postMessage JSON-RPC)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from mcp import Client
from mcp.client.extension import ClientExtension
from mcp.server.apps import APP_MIME_TYPE, EXTENSION_ID
from mcp_types import CallToolResult, ReadResourceResult, ResourceLink, TextResourceContents
from playwright.async_api import Browser, async_playwright

from tests.helpers import ServerProcess
from tests.mcp_server.conftest import mcp_client

URI = "ui://computer-use/live-desktop"
LIVE = "computer-use/live-view"
KEY = "sk-ant-apps"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync"]


class AppsSupport(ClientExtension):
    identifier = EXTENSION_ID

    def settings(self) -> dict[str, Any]:
        return {"mimeTypes": [APP_MIME_TYPE]}


async def create(server: ServerProcess, remember: Callable[[str], None], **kw: Any) -> Any:
    async with mcp_client(server, key=KEY, **kw) as client:
        result = await client.call_tool("create_session", {})
    assert not result.is_error and result.structured_content is not None
    remember(result.structured_content["session_id"])
    return result


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_an_apps_client_lists_and_reads_the_app_and_results_reference_it(
    app_server: ServerProcess, created: Callable[[str], None], mode: str
) -> None:
    async with mcp_client(app_server, key=KEY, extensions=[AppsSupport()], mode=mode) as client:
        resources = (await client.list_resources()).resources
        tools = {t.name: t for t in (await client.list_tools()).tools}
        read = await client.read_resource(URI)
    (app,) = [r for r in resources if str(r.uri) == URI]
    assert app.mime_type == APP_MIME_TYPE
    (page,) = read.contents
    assert isinstance(page, TextResourceContents) and page.mime_type == APP_MIME_TYPE
    assert page.text.startswith("<!doctype html>") and "ui/initialize" in page.text
    csp = (page.meta or {})["ui"]["csp"]
    port = app_server.base_url.rsplit(":", 1)[1]
    assert csp["connectDomains"] == [f"ws://127.0.0.1:{port}", f"http://127.0.0.1:{port}"]
    assert csp["resourceDomains"] == [f"http://127.0.0.1:{port}"]
    for name in ("create_session", "execute_task", "wait_for_task"):
        assert (tools[name].meta or {})["ui"]["resourceUri"] == URI, name
    assert "ui" not in (tools["destroy_session"].meta or {})

    result = await create(app_server, created, extensions=[AppsSupport()], mode=mode)
    live = (result.meta or {})[LIVE]
    session_id = result.structured_content["session_id"]
    assert live["session_id"] == session_id
    assert live["websocket_url"].startswith(
        f"ws://127.0.0.1:{port}/api/v1/sessions/{session_id}/vnc/websockify?token="
    )
    assert live["takeover_url"].startswith(f"{app_server.base_url}/vnc/{session_id}?token=")


async def test_a_client_without_apps_sees_the_plain_results(
    app_server: ServerProcess, created: Callable[[str], None]
) -> None:
    plain = await create(app_server, created)
    apps = await create(app_server, created, extensions=[AppsSupport()])
    assert plain.meta is None or LIVE not in plain.meta
    assert [type(c) for c in plain.content] == [type(c) for c in apps.content]
    assert set(plain.structured_content) == set(apps.structured_content)
    link = plain.content[-1]
    assert isinstance(link, ResourceLink)
    assert str(link.uri) == plain.structured_content["vnc_url"]


HOST = """<!doctype html><html><body>
<iframe id="app" sandbox="allow-scripts" style="width:800px;height:700px"></iframe>
<script>
const frame = document.getElementById("app");
window.received = [];
window.addEventListener("message", (event) => {
  const message = event.data;
  window.received.push(message.method || "response");
  if (message.method === "ui/initialize") {
    frame.contentWindow.postMessage({jsonrpc: "2.0", id: message.id, result: {
      protocolVersion: "2026-01-26", hostInfo: {name: "test-host", version: "1"},
      hostCapabilities: {}, hostContext: {}}}, "*");
  } else if (message.method === "ui/notifications/initialized") {
    frame.contentWindow.postMessage({jsonrpc: "2.0",
      method: "ui/notifications/tool-result", params: window.toolResult}, "*");
  } else if (message.method === "tools/call") {
    window.callTool(message.params).then((result) => frame.contentWindow.postMessage(
      {jsonrpc: "2.0", id: message.id, result}, "*"));
  } else if (message.method === "ui/open-link") {
    window.opened = message.params.url;
    frame.contentWindow.postMessage({jsonrpc: "2.0", id: message.id, result: {}}, "*");
  }
});
window.start = (html, toolResult) => {
  window.toolResult = toolResult;
  frame.srcdoc = html;
};
</script></body></html>"""


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


async def test_the_app_draws_the_live_desktop_in_a_minimal_host(
    app_server: ServerProcess, created: Callable[[str], None], browser: Browser
) -> None:
    async with mcp_client(app_server, key=KEY, extensions=[AppsSupport()]) as client:
        html = await client.read_resource(URI)
        result: CallToolResult = await client.call_tool("create_session", {})
        await show_in_host(app_server, client, browser, html, result, created)


async def show_in_host(
    app_server: ServerProcess,
    client: Client,
    browser: Browser,
    html: ReadResourceResult,
    result: CallToolResult,
    created: Callable[[str], None],
) -> None:
    assert result.structured_content is not None
    created(result.structured_content["session_id"])
    (page_contents,) = html.contents
    assert isinstance(page_contents, TextResourceContents)
    tool_result = result.model_dump(mode="json", by_alias=True, exclude_none=True)
    # As a host does: the app runs under the CSP its resource declares, nothing more.
    csp = (page_contents.meta or {})["ui"]["csp"]
    policy = (
        "default-src 'none'; style-src 'unsafe-inline'; "
        f"script-src 'unsafe-inline' {' '.join(csp['resourceDomains'])}; "
        f"img-src data: blob:; connect-src {' '.join(csp['connectDomains'])}"
    )
    app_html = page_contents.text.replace(
        "<head>", f'<head><meta http-equiv="Content-Security-Policy" content="{policy}">', 1
    )
    page = await browser.new_page()
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    called: list[dict[str, Any]] = []

    async def call_tool(params: dict[str, Any]) -> dict[str, Any]:
        # The host relays the app's tools/call to the server, as hosts do.
        called.append(params)
        relayed = await client.call_tool(params["name"], params["arguments"])
        return relayed.model_dump(mode="json", by_alias=True, exclude_none=True)

    await page.expose_function("callTool", call_tool)
    try:
        await page.set_content(HOST)
        await page.evaluate("([html, result]) => start(html, result)", [app_html, tool_result])
        app = page.frame_locator("#app")
        try:
            await app.locator("body[data-connected='true']").wait_for(timeout=20000)
        except Exception:
            status = await app.locator("#status").text_content()
            raise AssertionError(f"not connected: {status!r}; console: {console}") from None
        canvas = app.locator("#screen canvas")
        box = await canvas.bounding_box()
        assert box is not None and box["width"] > 300 and box["height"] > 200
        frame = page.frames[1]
        sample = """() => {
              const canvas = document.querySelector("#screen canvas");
              const data = canvas.getContext("2d").getImageData(
                0, 0, canvas.width, canvas.height).data;
              const colours = new Set();
              for (let i = 0; i < data.length; i += 4 * 997) {
                colours.add(data[i] << 16 | data[i + 1] << 8 | data[i + 2]);
              }
              return [canvas.width, canvas.height, colours.size];
            }"""
        # "Connected" comes with the handshake; the first picture follows (x11vnc may just
        # have started for this viewer: desktops/viewing.py).
        try:
            await frame.wait_for_function(f"() => ({sample})()[2] > 1", timeout=20000)
        except Exception:
            drawn = await frame.evaluate(sample)
            raise AssertionError(f"the canvas shows one flat colour: {drawn}") from None
        drawn = await frame.evaluate(sample)
        assert drawn[0] == 1024 and drawn[1] == 768
        assert drawn[2] > 1, "the canvas shows the desktop, not one flat colour"
        # Take over: a fresh interactive viewer link, opened by the host (not framed).
        session_id = result.structured_content["session_id"]
        await app.locator("#takeover").click()
        await page.wait_for_function("() => window.opened !== undefined", timeout=10000)
        opened = await page.evaluate("window.opened")
        assert called == [{"name": "get_session_status", "arguments": {"session_id": session_id}}]
        assert opened.startswith(f"{app_server.base_url}/vnc/{session_id}?token=")
        async with httpx.AsyncClient(timeout=10) as http:
            viewer = await http.get(opened)
        assert viewer.status_code == 200 and 'data-view-only="false"' in viewer.text
        assert "frame-ancestors 'self'" in viewer.headers["content-security-policy"]
    finally:
        await page.close()
