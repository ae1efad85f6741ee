"""The console driving real agent runs: the mission's demo end to end, against the loopback
Messages API (the offline demo model), on real desktops watched over VNC."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, BrowserContext, Page, expect

from computer_use.loopback import LoopbackModelServer, RecordedRequest, Turn, demo_responder
from computer_use.loopback.demo import forecast
from tests.helpers import ServerProcess
from tests.web.conftest import (
    INIT_SCRIPT,
    WIDE,
    Console,
    create_in_console,
    send,
    web_server_env,
)

PROMPT = "Search the weather in Santiago, Chile"
SLOW_PROMPT = "Search the weather slowly in Valparaiso"
RUN_TIMEOUT_MS = 60_000
MODEL_KEY = "sk-ant-loopback-key"

# Block kinds of one demo run (thinking, when the model thinks, is left out).
DEMO_RUN = ["user", "text", "tool", "text", "tool"]  # screenshot; write the local page
DEMO_RUN += ["text", "tool", "tool"] * 3  # open it; type its address; type the place
DEMO_RUN += ["text", "tool", "text", "tool", "text", "end"]  # click Search; look; answer

CANVAS_SIZE = """([width, height]) => {
  const canvas = document.querySelector("#screen canvas");
  return Boolean(canvas) && canvas.width === width && canvas.height === height;
}"""


class DemoModel:
    """The offline demo model; runs of SLOW_PROMPT wait before their second step until
    `release` is set, so a test can stop them mid-run."""

    def __init__(self) -> None:
        self.release = asyncio.Event()

    async def __call__(self, request: RecordedRequest) -> Turn:
        slow = any(SLOW_PROMPT in str(m.get("content")) for m in request.messages)
        started = any(m.get("role") == "assistant" for m in request.messages)
        if slow and started:
            await self.release.wait()
        return demo_responder(request)


@pytest.fixture(scope="module")
async def model() -> AsyncIterator[tuple[LoopbackModelServer, DemoModel]]:
    demo = DemoModel()
    async with LoopbackModelServer(demo, api_key=MODEL_KEY) as server:
        yield server, demo
        demo.release.set()


async def _start(env: dict[str, str], data_dir: Path) -> ServerProcess:
    # Started in a thread: the loopback model shares this event loop and must keep serving.
    return await asyncio.to_thread(ServerProcess(env, data_dir / "server.log").start)


@pytest.fixture(scope="module")
async def agent_server(
    model: tuple[LoopbackModelServer, DemoModel], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ServerProcess]:
    data_dir = tmp_path_factory.mktemp("web-agent")
    env = web_server_env(
        data_dir,
        880,
        "cu-wa",
        ANTHROPIC_API_KEY=MODEL_KEY,
        ANTHROPIC_BASE_URL=model[0].base_url,
    )
    env["MAX_DISPLAYS"] = "8"  # its tests keep their sessions (880-888, below the next range)
    server = await _start(env, data_dir)
    yield server
    await asyncio.to_thread(server.stop)


@pytest.fixture(scope="module")
async def keyless_server(
    model: tuple[LoopbackModelServer, DemoModel], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ServerProcess]:
    data_dir = tmp_path_factory.mktemp("web-agent-keyless")
    env = web_server_env(data_dir, 900, "cu-wk", ANTHROPIC_BASE_URL=model[0].base_url)  # no key
    server = await _start(env, data_dir)
    yield server
    await asyncio.to_thread(server.stop)


Opener = Callable[[ServerProcess], Awaitable[tuple[Page, Console]]]


@pytest.fixture
async def open_console(browser: Browser) -> AsyncIterator[Opener]:
    """Opens the console in fresh browser contexts, all closed after the test (before the
    server stops: an open event stream would hold its shutdown)."""
    contexts: list[BrowserContext] = []

    async def open_(server: ServerProcess) -> tuple[Page, Console]:
        context = await browser.new_context(viewport=WIDE)
        contexts.append(context)
        await context.add_init_script(INIT_SCRIPT)
        page = await context.new_page()
        console = Console()
        page.on("console", console.on_console)
        page.on("pageerror", console.on_page_error)
        await page.goto(server.base_url + "/")
        await page.wait_for_selector("body[data-ready=true]")
        return page, console

    yield open_
    for context in contexts:
        await context.close()


async def block_kinds(page: Page) -> list[str]:
    kinds: list[str] = await page.eval_on_selector_all(
        "#conversation .msg.user, #conversation .block, #conversation .run-end",
        """els => els.map(el => el.classList.contains('user') ? 'user'
             : el.classList.contains('run-end') ? 'end'
             : ['thinking', 'tool', 'error', 'text'].find(c => el.classList.contains(c)))""",
    )
    return [k for k in kinds if k != "thinking"]


async def wait_for_desktop(page: Page, config: dict[str, Any]) -> None:
    """The viewer in the right panel shows the session's live screen."""
    iframe = await page.wait_for_selector("#desktop-iframe:not([hidden])")
    assert iframe is not None
    frame = await iframe.content_frame()
    assert frame is not None
    await frame.wait_for_function(
        CANVAS_SIZE, arg=[config["screen_width"], config["screen_height"]], timeout=20_000
    )


async def test_weather_demo_streams_live_and_its_history_survives_a_reload(
    open_console: Opener,
    agent_server: ServerProcess,
    artifacts_dir: Path,
    model: tuple[LoopbackModelServer, DemoModel],
) -> None:
    page, console = await open_console(agent_server)
    with agent_server.client() as http:
        config = http.get("/api/v1/config").json()
    await create_in_console(page, "Weather in Santiago")
    await send(page, PROMPT)
    await expect(page.locator("#stop-button")).to_be_visible()
    await expect(page.locator(".run-end")).to_have_text(re.compile("^Done"), timeout=RUN_TIMEOUT_MS)

    assert await block_kinds(page) == DEMO_RUN
    await expect(page.locator(".block.tool .tool-desc")).to_have_text(
        [
            "take a screenshot",
            re.compile(r"^run `mkdir -p ~/demo"),
            re.compile(r"^click at \(\d+, \d+\)$"),
            "press ctrl+l",
            "type 'file:///home/user/demo/weather.html'",
            "press Return",
            "click at (240, 224)",
            "type 'Santiago, Chile'",
            "click at (520, 224)",
            "take a screenshot",
        ]
    )
    await expect(page.locator('.block.tool[data-state="done"]')).to_have_count(10)
    screenshots = page.locator(".block.tool .thumb img")
    # The default model (claude-sonnet-5-5) is on the computer toolset: the two screenshot
    # members return images, the other actions a short text ("Clicked."), bash its output.
    await expect(screenshots).to_have_count(2)
    served = [r for r in model[0].requests if r.messages and r.messages[0].get("content")]
    assert served and all(r.computer_tool_type == "computer_toolset_20260801" for r in served)
    assert all(r.betas == [] for r in served)
    loaded = await screenshots.evaluate_all("imgs => imgs.every(i => i.naturalWidth > 0)")
    assert loaded, "every screenshot thumbnail loads from the API"
    await expect(page.locator(".block.text").last).to_contain_text(
        f"The demo page shows {forecast('Santiago, Chile')} for Santiago, Chile"
    )
    await expect(page.locator("#send-button")).to_be_visible()
    await page.screenshot(path=artifacts_dir / "ui_agent_run.png")
    await wait_for_desktop(page, config)
    await page.screenshot(path=artifacts_dir / "ui_agent_desktop.png")

    # Taking control reloads the viewer with an interactive grant.
    await page.click("#control-button")
    await expect(page.locator("#control-button")).to_have_attribute("aria-pressed", "true")
    await expect(page.locator("#desktop-mode")).to_have_text("You're in control")
    viewer = page.frame_locator("#desktop-iframe")
    await expect(viewer.locator("body")).to_have_attribute("data-view-only", "false")
    await page.click("#control-button")
    await expect(viewer.locator("body")).to_have_attribute("data-view-only", "true")

    # History rebuilt from the stored messages: the same blocks, nothing twice, and the
    # toolset's member calls described from the stored blocks as the live events were.
    before = [k for k in await block_kinds(page) if k != "end"]
    descriptions = await page.locator(".block.tool .tool-desc").all_text_contents()
    await page.reload()
    await page.wait_for_selector("body[data-ready=true]")
    await expect(page.locator(".block.tool .tool-desc")).to_have_text(descriptions)
    await expect(page.locator(".block.tool .thumb img")).to_have_count(2)
    await expect(page.locator("#stream-state")).to_have_text("Live")
    after = [k for k in await block_kinds(page) if k != "end"]
    assert after == before
    await page.screenshot(path=artifacts_dir / "ui_agent_history.png")
    assert console.errors == []


async def test_stop_ends_a_running_agent(open_console: Opener, agent_server: ServerProcess) -> None:
    page, console = await open_console(agent_server)
    await create_in_console(page, "Stop me")
    await send(page, SLOW_PROMPT)
    await expect(page.locator('.block.tool[data-state="done"]')).to_have_count(1, timeout=20_000)
    await expect(page.locator(".session-item.selected .status")).to_have_text("Working")
    await page.click("#stop-button")
    await expect(page.locator(".run-end")).to_contain_text("Stopped by you", timeout=20_000)
    await expect(page.locator("#send-button")).to_be_visible()
    await expect(page.locator(".session-item.selected .status")).to_have_text("Ready")
    assert console.errors == []


async def test_a_session_created_without_a_title_is_named_after_its_first_message(
    open_console: Opener, agent_server: ServerProcess
) -> None:
    page, console = await open_console(agent_server)
    await expect(page.locator("#create-title")).not_to_have_attribute("required", "")
    await page.click("#create-button")  # no title typed: no browser bubble, a session all the same
    item = page.locator(".session-item.selected")
    await expect(item.locator(".session-title")).to_have_text("Untitled session", timeout=30_000)
    await send(page, SLOW_PROMPT)
    # the list refreshes on the run's events (and every 10 s)
    await expect(item.locator(".session-title")).to_have_text(SLOW_PROMPT, timeout=20_000)
    await expect(page.locator("#chat-title")).to_have_text(SLOW_PROMPT)
    await page.click("#stop-button")
    await expect(page.locator(".run-end")).to_contain_text("Stopped by you", timeout=20_000)
    assert console.errors == []


async def test_two_sessions_run_at_the_same_time(
    open_console: Opener, agent_server: ServerProcess
) -> None:
    first, first_console = await open_console(agent_server)
    second, second_console = await open_console(agent_server)
    await create_in_console(first, "Santiago")
    await create_in_console(second, "San Francisco")
    await send(first, PROMPT)
    await send(second, "Search the weather in San Francisco")
    for page, place in ((first, "Santiago, Chile"), (second, "San Francisco")):
        await expect(page.locator(".run-end")).to_have_text(
            re.compile("^Done"), timeout=RUN_TIMEOUT_MS
        )
        await expect(page.locator(".block.text").last).to_contain_text(place)
        assert await block_kinds(page) == DEMO_RUN
    first_desktop = await first.get_attribute("#desktop-iframe", "src")
    second_desktop = await second.get_attribute("#desktop-iframe", "src")
    assert first_desktop and second_desktop
    assert first_desktop.split("?")[0] != second_desktop.split("?")[0]
    assert first_console.errors == second_console.errors == []


async def test_a_key_pasted_in_the_console_runs_the_agent(
    open_console: Opener, keyless_server: ServerProcess
) -> None:
    page, _ = await open_console(keyless_server)
    await expect(page.locator("#key-form")).to_be_visible()
    await create_in_console(page, "My own key")
    await page.fill("#prompt", PROMPT)
    await page.keyboard.press("Enter")
    await expect(page.locator("#key-reason")).to_contain_text("X-Anthropic-API-Key")
    await page.fill("#key-input", MODEL_KEY)
    await page.click("#key-form button[type=submit]")
    await expect(page.locator(".run-end")).to_have_text(re.compile("^Done"), timeout=RUN_TIMEOUT_MS)
    assert MODEL_KEY not in await page.content()


async def test_the_console_model_choice_creates_a_working_session(
    open_console: Opener,
    agent_server: ServerProcess,
    model: tuple[LoopbackModelServer, DemoModel],
) -> None:
    with agent_server.client() as http:
        catalogue = http.get("/api/v1/models").json()["items"]
        # This server has MAX_DISPLAYS=4: make room after the module's earlier runs.
        for old in http.get("/api/v1/sessions").json()["items"]:
            http.delete(f"/api/v1/sessions/{old['id']}")
    page, console = await open_console(agent_server)
    offered = await page.eval_on_selector_all("#model-options option", "os => os.map(o => o.value)")
    assert offered == [m["id"] for m in catalogue if m["status"] != "retired"]
    assert "claude-sonnet-4-5-20250929" not in offered and "claude-sonnet-5-5" in offered

    # A retired model is refused, and the console says what to use instead.
    await page.fill("#create-model", "claude-sonnet-4-5-20250929")
    await page.fill("#create-title", "Retired")
    await page.click("#create-button")
    await expect(page.locator("#create-error")).to_contain_text("retired on 2026-11-30")
    await expect(page.locator("#create-error")).to_contain_text("claude-sonnet-5-5")

    # An older model from the list runs the demo on its beta computer tool.
    await page.fill("#create-model", "claude-sonnet-4-6")
    session_id = await create_in_console(page, "On Sonnet 4.6")
    await expect(page.locator(".session-item.selected .session-model")).to_have_text(
        "claude-sonnet-4-6"
    )
    before = len(model[0].requests)
    await send(page, PROMPT)
    await expect(page.locator(".run-end")).to_have_text(re.compile("^Done"), timeout=RUN_TIMEOUT_MS)
    await expect(page.locator(".block.tool .thumb img")).to_have_count(9)  # beta: every action
    mine = [r for r in model[0].requests[before:] if r.body.get("model") == "claude-sonnet-4-6"]
    assert mine and all(r.computer_tool_type == "computer_20251124" for r in mine)
    assert all(r.rejection is None for r in mine)
    with agent_server.client() as http:
        assert http.get(f"/api/v1/sessions/{session_id}").json()["model"] == "claude-sonnet-4-6"
    # The browser logs the refused creation itself; nothing else went wrong.
    assert [e for e in console.errors if "status of 422" not in e] == []


async def test_spending_shows_live_and_a_budget_stops_the_run(
    open_console: Opener, agent_server: ServerProcess
) -> None:
    page, console = await open_console(agent_server)
    spent = page.locator("#session-facts dd.spent")
    watched = await create_in_console(page, "Watch the spending")
    await send(page, SLOW_PROMPT)  # waits before its second step
    # The first response's totals, live from the `usage` event, while the run goes on.
    await expect(spent).to_have_text(re.compile(r"^1 step · [\d,]+ tokens · \$0\.\d{4}"))
    await expect(page.locator("#stop-button")).to_be_visible()
    await page.click("#stop-button")
    await expect(page.locator(".run-end")).to_contain_text("Stopped by you", timeout=20_000)

    budgeted = await create_in_console(page, "On a budget")
    with agent_server.client() as http:
        patched = http.patch(
            f"/api/v1/sessions/{budgeted}", json={"budget": {"max_steps": 2, "max_cost_usd": 5}}
        )
        assert patched.status_code == 200, patched.text
    await send(page, PROMPT)
    end = page.locator(".run-end")
    await expect(end).to_contain_text("Stopped: the budget was reached", timeout=RUN_TIMEOUT_MS)
    await expect(end).to_contain_text(re.compile(r"2 steps .*\$0\.\d{4}"))  # the run's cost
    await expect(end).to_contain_text("The session's budget max_steps of 2 model requests")
    await expect(spent).to_have_text(re.compile(r"^2 steps · [\d,]+ tokens · \$0\.\d{4}"))
    await expect(page.locator("#session-facts dd.budget")).to_have_text("at most 2 steps · $5.00")
    with agent_server.client() as http:
        assert http.get(f"/api/v1/sessions/{budgeted}").json()["spent"]["steps"] == 2
        for sid in (watched, budgeted):
            assert http.delete(f"/api/v1/sessions/{sid}").status_code == 204
    assert console.errors == []
