"""The console with a person in the loop, in real Chromium against the real server: approve on
the step (button and keyboard), the agent's question and its answer, take control and hand
back (the agent is held while the person has the desktop)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect

from computer_use.loopback import LoopbackModelServer
from computer_use.loopback.script import ToolUse, member, say
from tests.helpers import ServerProcess
from tests.web.conftest import (
    INIT_SCRIPT,
    WIDE,
    Console,
    create_in_console,
    send,
    web_server_env,
)

MODEL_KEY = "sk-ant-loopback-key"
RUN_TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
async def model() -> AsyncIterator[LoopbackModelServer]:
    async with LoopbackModelServer([], api_key=MODEL_KEY) as server:
        yield server


@pytest.fixture(scope="module")
async def person_server(
    model: LoopbackModelServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ServerProcess]:
    data_dir = tmp_path_factory.mktemp("web-person")
    env = web_server_env(
        data_dir, 1900, "cu-wp", ANTHROPIC_API_KEY=MODEL_KEY, ANTHROPIC_BASE_URL=model.base_url
    )
    server = await asyncio.to_thread(ServerProcess(env, data_dir / "server.log").start)
    yield server
    await asyncio.to_thread(server.stop)


@pytest.fixture
async def page(browser: Browser, person_server: ServerProcess) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport=WIDE)
    await context.add_init_script(INIT_SCRIPT)
    page = await context.new_page()
    console = Console()
    page.on("console", console.on_console)
    page.on("pageerror", console.on_page_error)
    await page.goto(person_server.base_url + "/")
    await page.wait_for_selector("body[data-ready=true]")
    yield page
    await context.close()
    assert console.errors == []
    with person_server.client() as http:
        for session in http.get("/api/v1/sessions", params={"limit": 200}).json()["items"]:
            http.delete(f"/api/v1/sessions/{session['id']}")


async def test_approve_on_the_step_and_decline_with_the_keyboard(
    page: Page, model: LoopbackModelServer, artifacts_dir: Path
) -> None:
    await create_in_console(page, "Approvals", ask=True)
    await expect(page.locator("#chat-meta")).to_contain_text("asks before acting")
    model.add(say("Typing.", member("type", text="hello")), say("Typed it."))
    await send(page, "type hello")
    step = page.locator(".block.tool:has(.tool-desc:text-is(\"type 'hello'\"))")
    approval = step.locator(".approval")
    await expect(approval).to_contain_text("Approve? type 'hello'", timeout=RUN_TIMEOUT_MS)
    await page.screenshot(path=artifacts_dir / "ui_approval.png")
    await approval.get_by_role("button", name="Approve", exact=True).click()
    await expect(approval).to_have_text("Approved")
    await expect(page.locator(".run-end").last).to_have_text(
        re.compile("^Done"), timeout=RUN_TIMEOUT_MS
    )
    await expect(step).to_have_attribute("data-state", "done")
    assert model.requests[-1].last_tool_result_text() == "Typed."

    model.add(say("Pressing Enter.", member("key", text="Return")), say("Fine, I won't."))
    await send(page, "press enter")
    pending = page.locator(".approval:has(button)")
    await expect(pending).to_be_visible(timeout=RUN_TIMEOUT_MS)
    await page.locator("#conversation").click()  # out of the prompt: the shortcut applies
    await page.keyboard.press("d")
    await expect(page.locator(".approval").last).to_have_text("Declined")
    await expect(page.locator(".run-end")).to_have_count(2, timeout=RUN_TIMEOUT_MS)
    await expect(page.locator(".run-end").last).to_have_text(re.compile("^Done"))
    await expect(page.locator(".block.tool").last).to_have_attribute("data-state", "error")
    assert "The person declined" in model.requests[-1].last_tool_result_text()


async def test_the_question_shows_and_the_next_message_answers_it(
    page: Page, model: LoopbackModelServer
) -> None:
    await create_in_console(page, "Questions", ask=False)
    model.add(
        say("One thing first.", ToolUse("ask_person", {"question": "Which city?"})),
        say("Looking up Lima."),
    )
    await send(page, "weather please")
    question = page.locator(".block.question")
    await expect(question).to_contain_text("Claude asks: Which city?", timeout=RUN_TIMEOUT_MS)
    await expect(page.locator("#prompt")).to_have_attribute("placeholder", re.compile("answer"))
    await expect(page.locator("#send-button")).to_be_enabled()
    await send(page, "Lima")
    await expect(page.locator(".block.text").last).to_have_text(
        "Looking up Lima.", timeout=RUN_TIMEOUT_MS
    )
    assert model.requests[-1].last_tool_result_text() == "Lima"


async def test_take_control_holds_the_agent_and_release_hands_back(
    page: Page, model: LoopbackModelServer, person_server: ServerProcess
) -> None:
    sid = await create_in_console(page, "Take over", ask=False)
    control = page.locator("#control-button")
    await expect(control).to_be_enabled(timeout=30_000)
    await control.click()
    await expect(control).to_have_text("Release control")
    await expect(page.locator("#chat-meta")).to_contain_text("a person holds the desktop")
    with person_server.client() as http:
        assert http.get(f"/api/v1/sessions/{sid}").json()["held_by"] == "person"

    requests = len(model.requests)
    model.add(say("Looking.", member("screenshot")), say("I see your changes."))
    await send(page, "carry on")
    await expect(page.locator(".run-note.paused")).to_be_visible(timeout=RUN_TIMEOUT_MS)
    assert len(model.requests) == requests, "the agent asked the model while held"

    await control.click()
    await expect(control).to_have_text("Take control")
    await expect(page.locator(".run-note.resumed")).to_be_visible(timeout=RUN_TIMEOUT_MS)
    await expect(page.locator(".run-end").last).to_have_text(
        re.compile("^Done"), timeout=RUN_TIMEOUT_MS
    )
    first = model.requests[requests].messages[-1]["content"]
    assert any("A person took control" in str(b.get("text", "")) for b in first)
    with person_server.client() as http:
        assert http.get(f"/api/v1/sessions/{sid}").json()["held_by"] == "agent"
