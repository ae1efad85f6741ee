"""The conversation panel fed with the agent's event vocabulary (agent/events.py) through a
scripted stream: live rendering, exactly-once across reconnects, history, Stop, the API key
and server errors. The real server answers everything else."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from playwright.async_api import Page, Request, Route, expect

from tests.helpers import ServerProcess, wait_for_async
from tests.web.conftest import Tab, create_session
from tests.web.fakes import Answer, FakeStream, serve_screenshots, weather_run

Streams = Callable[..., FakeStream]

PROMPT = "Search the weather in Santiago, Chile"
XSS = "<img src=x onerror=window.__pwned=1>"
NO_KEY_MESSAGE = (
    "No Anthropic API key: send one in the X-Anthropic-API-Key header or set "
    "ANTHROPIC_API_KEY on the server."
)


def with_xss_answer(events: list[Any]) -> list[Any]:
    """The demo run, with a final answer that tries every trick in the book."""
    out = list(events)
    for i, (event_id, event_type, data) in enumerate(out):
        if event_type == "text" and "weather.com" in data["text"]:
            tricks = (
                f"\n\n{XSS} <script>window.__pwned=2</script> "
                "[click me](javascript:window.__pwned=3) ![x](https://evil.example/x.png)"
            )
            out[i] = (event_id, event_type, {"text": data["text"] + tricks})
    return out


async def route_session_detail(page: Page, session_id: str, **overrides: Any) -> None:
    """GET /sessions/{id} answered by the real server, with some fields replaced (None:
    the field is left out, as an older server would)."""

    async def handle(route: Route, request: Request) -> None:
        if request.method != "GET":
            await route.continue_()
            return
        response = await route.fetch()
        body = await response.json()
        body.update(overrides)
        for key in [k for k, v in overrides.items() if v is None]:
            del body[key]
        await route.fulfill(response=response, body=json.dumps(body))

    await page.route(re.compile(rf".*/api/v1/sessions/{session_id}(\?.*)?$"), handle)


async def conversation_blocks(page: Page) -> list[str]:
    """The kinds of blocks in the log, in order."""
    kinds: list[str] = await page.eval_on_selector_all(
        "#conversation .msg.user, #conversation .block, #conversation .run-end",
        """els => els.map(el => el.classList.contains('user') ? 'user'
             : el.classList.contains('run-end') ? 'end'
             : ['thinking', 'tool', 'error', 'text'].find(c => el.classList.contains(c)))""",
    )
    return kinds


async def test_live_events_render_in_order_once_across_reconnects(
    tab: Tab, ui_server: ServerProcess, artifacts_dir: Path, fake_stream: Streams
) -> None:
    session = create_session(ui_server, "Weather in Santiago")
    sid = str(session["id"])
    run = with_xss_answer(weather_run(sid))
    stream = fake_stream(
        Answer(run[:9]),  # ends after event 9: the browser reconnects with Last-Event-ID
        Answer(status=503),  # the browser gives up: the console reopens it itself
        # The server replays from an older point: 5..9 must not show again.
        Answer(run[4:], hold=threading.Event()),
    )
    await stream.install(tab.page)
    images = await serve_screenshots(tab.page)
    page = await tab.open(f"/#/sessions/{sid}")

    await expect(page.locator(".run-end")).to_have_text(re.compile("^Done"))
    assert await conversation_blocks(page) == [
        "thinking",
        "text",
        "tool",
        "tool",
        "tool",
        "text",
        "end",
    ]
    headers = [c.header_last_event_id for c in stream.connections]
    queries = [c.query_after for c in stream.connections]
    assert headers[:3] == [None, "9", None]
    assert queries[:3] == [None, None, "9"]

    thinking = page.locator(".block.thinking")
    await expect(thinking.locator(".thinking-body")).to_have_text(
        "The user wants the weather in Santiago. Screenshot first."
    )
    assert await thinking.get_attribute("open") is None  # collapsed until asked
    await expect(page.locator(".block.text").first).to_have_text(
        "I'll look up the weather in Santiago, Chile."
    )
    descriptions = page.locator(".block.tool .tool-desc")
    await expect(descriptions).to_have_text(
        ["take a screenshot", "click at (512, 320)", "type 'weather Santiago Chile\\n'"]
    )
    await expect(page.locator('.block.tool[data-state="done"]')).to_have_count(3)
    await expect(page.locator(".block.tool .thumb img")).to_have_count(3)
    answer = page.locator(".block.text").last
    await expect(answer.locator("strong").first).to_have_text("Santiago, Chile")
    await expect(answer.locator("table td")).to_have_count(6)
    await expect(answer.locator('a[href^="https://weather.com/"]')).to_have_count(1)
    await expect(page.locator(".run-end")).to_contain_text("4 steps")

    # The tricks are text: no element, no script, no javascript: link, no remote image.
    await expect(answer).to_contain_text(XSS)
    await expect(answer).to_contain_text("<script>window.__pwned=2</script>")
    assert await answer.locator("img, script").count() == 0
    assert await answer.locator('a[href^="javascript"]').count() == 0
    await expect(answer.locator(".md-unsafe-link")).to_have_text("click me")
    assert await page.evaluate("window.__pwned") is None
    assert all("/images/img" in url for url in images)

    # Status events kept the composer in step: the run is over, Send is back.
    await expect(page.locator("#send-button")).to_be_visible()
    await expect(page.locator("#stop-button")).to_be_hidden()
    await page.screenshot(path=artifacts_dir / "ui_conversation.png")

    await page.locator(".block.tool .thumb").nth(1).click()
    lightbox = page.locator("#lightbox")
    await expect(lightbox).to_be_visible()
    await expect(page.locator("#lightbox-caption")).to_contain_text("click at (512, 320)")
    await page.screenshot(path=artifacts_dir / "ui_lightbox.png")
    await page.keyboard.press("Escape")
    await expect(lightbox).to_be_hidden()
    assert [e for e in tab.console.errors if "status of 503" not in e] == []  # the planned 503
    assert await tab.csp_violations() == []


def history_messages(session_id: str) -> list[dict[str, Any]]:
    """The demo run as GET /sessions/{id} returns it (image sources are URLs)."""
    image = f"/api/v1/sessions/{session_id}/images/"

    def screenshot(tool_use_id: str, image_id: str) -> dict[str, Any]:
        return {
            "type": "tool_result",
            "tool_use_id": tool_use_id,
            "is_error": False,
            "content": [{"type": "image", "source": {"type": "url", "url": image + image_id}}],
        }

    at = "2026-11-26T10:00:00Z"
    return [
        {"id": 1, "role": "user", "content": [{"type": "text", "text": PROMPT}], "created_at": at},
        {
            "id": 2,
            "role": "assistant",
            "created_at": at,
            "content": [
                {"type": "thinking", "thinking": "Screenshot first.", "signature": "sig"},
                {"type": "text", "text": "I'll look up the weather."},
                {
                    "type": "tool_use",
                    "id": "toolu_1",
                    "name": "computer",
                    "input": {"action": "screenshot"},
                },
            ],
        },
        {"id": 3, "role": "user", "content": [screenshot("toolu_1", "img1")], "created_at": at},
        {
            "id": 4,
            "role": "assistant",
            "created_at": at,
            "content": [
                {
                    "type": "tool_use",
                    "id": "toolu_2",
                    "name": "computer",
                    "input": {"action": "left_click", "coordinate": [512, 320]},
                },
                {
                    "type": "tool_use",
                    "id": "toolu_3",
                    "name": "bash",
                    "input": {"command": "curl wttr.in/Santiago"},
                },
            ],
        },
        {
            "id": 5,
            "role": "user",
            "created_at": at,
            "content": [
                screenshot("toolu_2", "img2"),
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_3",
                    "is_error": True,
                    "content": [{"type": "text", "text": "curl: (6) Could not resolve host"}],
                },
            ],
        },
        {
            "id": 6,
            "role": "assistant",
            "created_at": at,
            "content": [{"type": "text", "text": f"It is **18 °C** and sunny. {XSS}"}],
        },
    ]


async def test_history_is_rebuilt_on_reload_and_the_stream_resumes_after_it(
    tab: Tab, ui_server: ServerProcess, artifacts_dir: Path, fake_stream: Streams
) -> None:
    session = create_session(ui_server, "History")
    sid = str(session["id"])
    await route_session_detail(tab.page, sid, messages=history_messages(sid), last_event_id=42)
    stream = fake_stream()
    await stream.install(tab.page)
    await serve_screenshots(tab.page)

    page = await tab.open(f"/#/sessions/{sid}")
    expected = ["user", "thinking", "text", "tool", "tool", "tool", "text"]
    await expect(page.locator(".block.tool")).to_have_count(3)
    assert await conversation_blocks(page) == expected
    await expect(page.locator(".msg.user .user-text")).to_have_text(PROMPT)
    await expect(page.locator(".block.tool .tool-desc")).to_have_text(
        ["take a screenshot", "click at (512, 320)", "run `curl wttr.in/Santiago`"]
    )
    await expect(page.locator('.block.tool[data-state="error"] .tool-output')).to_have_text(
        "curl: (6) Could not resolve host"
    )
    await expect(page.locator(".block.tool .thumb img")).to_have_count(2)
    await expect(page.locator(".block.text").last).to_contain_text(XSS)
    assert stream.connections[0].query_after == "42"

    await page.reload()
    await page.wait_for_selector("body[data-ready=true]")
    await expect(page.locator(".block.tool")).to_have_count(3)
    assert await conversation_blocks(page) == expected
    assert await page.evaluate("window.__pwned") is None
    await page.screenshot(path=artifacts_dir / "ui_history.png")
    assert tab.console.errors == []


async def test_without_a_cursor_the_replayed_history_is_not_shown_twice(
    tab: Tab, ui_server: ServerProcess, fake_stream: Streams
) -> None:
    """A server that does not say which event its history covers replays every event."""
    session = create_session(ui_server, "Replay")
    sid = str(session["id"])
    run = weather_run(sid)
    messages = [
        {
            "id": 1,
            "role": "user",
            "content": [{"type": "text", "text": PROMPT}],
            "created_at": "2026-11-26T10:00:00Z",
        },
        {
            "id": 2,
            "role": "assistant",
            "created_at": "2026-11-26T10:00:01Z",
            "content": [
                {"type": "thinking", "thinking": run[3][2]["thinking"], "signature": "s"},
                {"type": "text", "text": run[6][2]["text"]},
                {
                    "type": "tool_use",
                    "id": "toolu_1",
                    "name": "computer",
                    "input": {"action": "screenshot"},
                },
            ],
        },
    ]
    await route_session_detail(tab.page, sid, messages=messages, last_event_id=None)
    stream = fake_stream(Answer(run[:9]))
    await stream.install(tab.page)
    await serve_screenshots(tab.page)
    page = await tab.open(f"/#/sessions/{sid}")
    await expect(page.locator(".block.tool .thumb img")).to_have_count(1)
    assert await conversation_blocks(page) == ["user", "thinking", "text", "tool"]


async def test_stop_cancels_the_run_and_says_so(
    tab: Tab, ui_server: ServerProcess, artifacts_dir: Path, fake_stream: Streams
) -> None:
    session = create_session(ui_server, "Long task")
    sid = str(session["id"])
    cancelled = threading.Event()
    run = weather_run(sid)
    await route_session_detail(tab.page, sid, processing=True, status="processing")
    stream = fake_stream(
        Answer(run[:9]),
        Answer(
            hold=cancelled,
            after=[
                (
                    10,
                    "message_complete",
                    {
                        "stop_reason": "cancelled",
                        "steps": 1,
                        "usage": {},
                        "detail": "Stopped by the user.",
                    },
                ),
                (11, "status", {"status": "active"}),
            ],
        ),
    )
    await stream.install(tab.page)
    await serve_screenshots(tab.page)
    cancel_calls: list[str] = []

    async def cancel(route: Route, request: Request) -> None:
        cancel_calls.append(request.method)
        await route.fulfill(json={"session_id": sid, "cancelled": True})
        cancelled.set()

    await tab.page.route(f"**/api/v1/sessions/{sid}/cancel", cancel)
    page = await tab.open(f"/#/sessions/{sid}")
    stop = page.locator("#stop-button")
    await expect(stop).to_be_visible()
    await expect(page.locator("#send-button")).to_be_hidden()
    await expect(page.locator(".block.tool .thumb img")).to_have_count(1)
    await page.screenshot(path=artifacts_dir / "ui_processing.png")

    await stop.click()
    await expect(page.locator(".run-end")).to_contain_text("Stopped by you")
    assert cancel_calls == ["POST"]
    await expect(stop).to_be_hidden()
    await expect(page.locator("#send-button")).to_be_visible()
    assert tab.console.errors == []


async def test_a_missing_api_key_is_asked_for_and_the_message_resent_with_it(
    tab: Tab, ui_server: ServerProcess, artifacts_dir: Path, fake_stream: Streams
) -> None:
    session = create_session(ui_server, "Bring your own key")
    sid = str(session["id"])
    await fake_stream().install(tab.page)
    sent: list[dict[str, Any]] = []

    async def messages(route: Route, request: Request) -> None:
        key = request.headers.get("x-anthropic-api-key")
        sent.append({"key": key, "body": request.post_data_json})
        if not key:
            error = {"code": "api_key_required", "message": NO_KEY_MESSAGE, "details": None}
            await route.fulfill(status=400, json={"error": error})
        else:
            body = {"session_id": sid, "status": "processing", "stream_url": "x"}
            await route.fulfill(status=202, json=body)

    await tab.page.route(f"**/api/v1/sessions/{sid}/messages", messages)
    page = await tab.open(f"/#/sessions/{sid}")
    await page.fill("#prompt", PROMPT)
    await page.keyboard.press("Enter")
    await expect(page.locator("#key-reason")).to_have_text(NO_KEY_MESSAGE)
    await expect(page.locator("#key-input")).to_be_focused()
    await expect(page.locator("#prompt")).to_have_value(PROMPT)  # nothing typed is lost
    await page.screenshot(path=artifacts_dir / "ui_api_key.png")

    secret = "sk-ant-test-0123456789"
    await page.fill("#key-input", secret)
    await page.click("#key-form button[type=submit]")
    await expect(page.locator(".msg.user .user-text")).to_have_text(PROMPT)
    await expect(page.locator("#key-form")).to_be_hidden()
    await expect(page.locator("#key-status")).to_be_visible()

    async def resent() -> bool:  # the message shows before its request reaches the route
        return len(sent) >= 2

    await wait_for_async(resent, timeout=10, what="the message resent with the key")
    assert [s["key"] for s in sent] == [None, secret]
    assert sent[1]["body"] == {"content": PROMPT}
    assert await page.evaluate("Object.keys(localStorage).length") == 0
    assert secret not in await page.content()
    assert not any(secret in e for e in tab.console.errors)

    await page.click("#key-forget")
    assert await page.evaluate("Object.keys(sessionStorage).length") == 0
    await expect(page.locator("#key-form")).to_be_visible()


async def test_server_errors_are_shown_in_place(
    tab: Tab, ui_server: ServerProcess, fake_stream: Streams
) -> None:
    session = create_session(ui_server, "Errors")
    sid = str(session["id"])
    await fake_stream(
        Answer(
            [
                (
                    1,
                    "error",
                    {
                        "code": "overloaded_error",
                        "message": "The API is overloaded.",
                        "status": 529,
                        "retryable": True,
                        "request_id": None,
                    },
                ),
                (
                    2,
                    "message_complete",
                    {"stop_reason": "error", "steps": 1, "usage": {}, "detail": None},
                ),
            ]
        )
    ).install(tab.page)
    answers = [
        (409, "conflict", "The agent is still working on the previous message."),
        (503, "service_unavailable", "The agent is not available in this build yet."),
    ]

    async def messages(route: Route, request: Request) -> None:
        if not answers:
            await route.abort("connectionrefused")
            return
        status, code, message = answers.pop(0)
        await route.fulfill(status=status, json={"error": {"code": code, "message": message}})

    await tab.page.route(f"**/api/v1/sessions/{sid}/messages", messages)
    page = await tab.open(f"/#/sessions/{sid}")
    # An `error` event from the run shows in place, with what to do about it.
    errors = page.locator(".block.error")
    await expect(errors.first).to_contain_text("The API is overloaded.")
    await expect(errors.first).to_contain_text("try again in a moment")
    await expect(page.locator(".run-end")).to_have_text(re.compile("^Ended with an error"))

    for _ in range(3):
        await page.fill("#prompt", "hello")
        await page.click("#send-button")
        await expect(page.locator("#send-button")).to_be_enabled()
    await expect(errors).to_have_count(4)
    await expect(errors.nth(1)).to_contain_text("still working on the previous message")
    await expect(errors.nth(2)).to_contain_text("not available in this build yet")
    await expect(errors.nth(3)).to_contain_text("Cannot reach the server")
    await expect(page.locator("#banner")).to_contain_text("Cannot reach the server")
    await expect(page.locator("#prompt")).to_have_value("hello")
    assert await page.locator(".msg.user").count() == 0
