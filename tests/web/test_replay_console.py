"""The console's recording player on a real recorded run (the offline demo model): each
action is a marker; clicking one seeks the video there and shows the step's screenshot and
text."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from playwright.async_api import Page, expect

from computer_use.loopback import LoopbackModelServer, demo_responder
from tests.helpers import ServerProcess, wait_for_async
from tests.web.conftest import web_server_env
from tests.web.test_agent_runs import MODEL_KEY, PROMPT, Opener, _start, open_console  # noqa: F401


@pytest.fixture(scope="module")
async def recording_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[ServerProcess]:
    async with LoopbackModelServer(demo_responder, api_key=MODEL_KEY) as model:
        data_dir = tmp_path_factory.mktemp("web-replay")
        env = web_server_env(
            data_dir, 920, "cu-wr", ANTHROPIC_API_KEY=MODEL_KEY, ANTHROPIC_BASE_URL=model.base_url
        )
        server = await _start(env, data_dir)
        yield server
        server.stop()


async def test_markers_seek_the_recording_and_show_their_step(
    recording_server: ServerProcess,
    open_console: Opener,  # noqa: F811 (the fixture imported above)
) -> None:
    async with httpx.AsyncClient(base_url=recording_server.base_url, timeout=60) as http:
        # On the beta computer tool every step has its screenshot (a toolset click has none).
        body = {"record": True, "model": "claude-sonnet-4-6"}
        sid = (await http.post("/api/v1/sessions", json=body)).json()["id"]
        assert (
            await http.post(f"/api/v1/sessions/{sid}/messages", json={"content": PROMPT})
        ).status_code == 202

        async def done() -> bool:
            body = (await http.get(f"/api/v1/sessions/{sid}")).json()
            return not body["processing"] and len(body["messages"]) > 2

        await wait_for_async(done, timeout=90, interval=0.3, what="the demo run to end")

    page, console = await open_console(recording_server)
    await page.goto(f"{recording_server.base_url}/#/sessions/{sid}")
    await page.click("#recording-button")
    markers = page.locator("#recording-markers .marker")
    await expect(markers).to_have_count(10, timeout=20_000)  # the demo's ten tool calls
    await _video_ready(page)
    third = markers.nth(2)
    seconds = float(await third.get_attribute("data-seconds") or "nan")
    await third.click()
    await expect(third).to_have_attribute("aria-current", "true")
    current = await page.evaluate("() => document.getElementById('recording-video').currentTime")
    assert abs(current - seconds) < 0.5, (current, seconds)
    await expect(page.locator("#recording-shot")).to_be_visible()
    natural = await page.evaluate(
        "() => document.getElementById('recording-shot').decode().then("
        "() => document.getElementById('recording-shot').naturalWidth)"
    )
    assert natural > 0
    await expect(page.locator("#recording-text")).to_contain_text("Step ")
    assert console.errors == []


async def _video_ready(page: Page) -> None:
    await page.wait_for_function(
        "() => { const v = document.getElementById('recording-video');"
        " return v.readyState >= 1 && v.duration > 0; }",
        timeout=20_000,
    )
