"""The tools end to end: official MCP client -> real server -> real desktops -> the
loopback Messages API standing in for Claude."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
import httpx
import pytest
from mcp import Client, MCPError
from mcp_types import REQUEST_TIMEOUT, ResourceLink

from computer_use.loopback import member, say
from tests.helpers import ServerProcess
from tests.mcp_server.conftest import (
    Gate,
    Model,
    ProgressLog,
    mcp_client,
    png_size,
    text_of,
)

KEY_A = "sk-ant-client-a"
KEY_B = "sk-ant-client-b"
UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"


async def create(client: Client, remember: Callable[[str], None], **args: Any) -> dict[str, Any]:
    result = await client.call_tool("create_session", args)
    assert not result.is_error, text_of(result)
    session: dict[str, Any] | None = result.structured_content
    assert session is not None
    remember(session["session_id"])
    return session


async def processing(client: Client, session_id: str) -> bool:
    result = await client.call_tool("get_session_status", {"session_id": session_id})
    assert not result.is_error, text_of(result)
    assert result.structured_content is not None
    return bool(result.structured_content["processing"])


async def test_session_lifecycle_create_screenshot_status_destroy(
    app_server: ServerProcess, created: Callable[[str], None]
) -> None:
    async with mcp_client(app_server, key=KEY_A) as client:
        session = await create(client, created, title="MCP lifecycle")
        session_id = session["session_id"]
        assert session["status"] == "active"
        assert session["title"] == "MCP lifecycle"
        assert session["ttl_seconds"] == 3600
        assert session["vnc_url"].startswith(f"{app_server.base_url}/vnc/{session_id}?token=")

        shot = await client.call_tool("take_screenshot", {"session_id": session_id})
        assert not shot.is_error, text_of(shot)
        image, link = shot.content
        assert png_size(image) == (1024, 768)
        assert isinstance(link, ResourceLink) and link.mime_type == "image/png"
        assert shot.structured_content == {
            "session_id": session_id,
            "width": 1024,
            "height": 768,
            "mime_type": "image/png",
            "url": str(link.uri),
        }
        async with httpx.AsyncClient(timeout=10) as http:
            fetched = await http.get(str(link.uri))
        assert fetched.status_code == 200 and fetched.content.startswith(b"\x89PNG")

        status = await client.call_tool("get_session_status", {"session_id": session_id})
        assert not status.is_error, text_of(status)
        assert status.structured_content is not None
        assert status.structured_content["status"] == "active"
        assert status.structured_content["processing"] is False
        assert 0 < status.structured_content["ttl_remaining_seconds"] <= 3600
        fresh_url = status.structured_content["vnc_url"]
        assert fresh_url.startswith(f"{app_server.base_url}/vnc/{session_id}?token=")

        destroyed = await client.call_tool("destroy_session", {"session_id": session_id})
        assert not destroyed.is_error, text_of(destroyed)
        assert destroyed.structured_content == {"session_id": session_id, "destroyed": True}

        again = await client.call_tool("get_session_status", {"session_id": session_id})
        assert again.is_error
        assert "Unknown session id" in text_of(again)


@pytest.mark.parametrize(
    "tool",
    [
        "execute_task",
        "wait_for_task",
        "cancel_task",
        "get_session_status",
        "destroy_session",
        "take_screenshot",
    ],
)
async def test_unknown_session_id_is_a_tool_error_with_clear_text(
    app_server: ServerProcess, tool: str
) -> None:
    args = {"session_id": UNKNOWN_ID}
    if tool == "execute_task":
        args["task"] = "Open Firefox"
    async with mcp_client(app_server, key=KEY_A) as client:
        result = await client.call_tool(tool, args)
    assert result.is_error
    text = text_of(result)
    assert f"Unknown session id '{UNKNOWN_ID}'" in text
    assert "create_session" in text


@pytest.mark.parametrize(
    ("tool", "args", "names"),
    [
        ("create_session", {"model": "not a model id"}, "model"),
        ("execute_task", {"session_id": UNKNOWN_ID, "task": "   "}, "task"),
    ],
)
async def test_invalid_arguments_are_tool_errors_naming_the_argument(
    app_server: ServerProcess, tool: str, args: dict[str, Any], names: str
) -> None:
    async with mcp_client(app_server, key=KEY_A) as client:
        result = await client.call_tool(tool, args)
    assert result.is_error
    assert f"Invalid arguments: {names}:" in text_of(result)


@pytest.mark.parametrize(
    ("tool", "args", "expected"),
    [
        ("execute_task", {}, "session_id is missing; task is missing"),
        ("wait_for_task", {"session_id": UNKNOWN_ID, "max_wait_seconds": 600}, "max_wait_seconds:"),
        ("take_screenshot", {"session_id": 42}, "session_id: Input should be a valid string"),
    ],
)
async def test_missing_or_wrong_arguments_say_what_to_send_without_library_links(
    app_server: ServerProcess, tool: str, args: dict[str, Any], expected: str
) -> None:
    async with mcp_client(app_server, key=KEY_A) as client:
        result = await client.call_tool(tool, args)
    assert result.is_error
    text = text_of(result)
    assert text.startswith(f"Invalid arguments for {tool}: {expected}"), text
    assert "session_id (required): The session_id returned by create_session" in text
    assert "pydantic" not in text and "http" not in text and "Error executing" not in text


async def test_missing_key_is_a_tool_error_saying_how_to_configure_the_header(
    app_server: ServerProcess, model: Model, created: Callable[[str], None]
) -> None:
    before = len(model.server.requests)
    async with mcp_client(app_server) as client:  # no header; the server has no key either
        session = await create(client, created)
        result = await client.call_tool(
            "execute_task", {"session_id": session["session_id"], "task": "Open Firefox"}
        )
        assert result.is_error
        text = text_of(result)
        assert "X-Anthropic-API-Key" in text and "headers" in text and "mcp.json" in text
        assert await processing(client, session["session_id"]) is False
    assert len(model.server.requests) == before, "nothing reached the model"


async def test_execute_task_reports_actions_as_progress_and_returns_answer_and_screenshot(
    app_server: ServerProcess, model: Model, created: Callable[[str], None]
) -> None:
    prompt = model.scripted.script(
        "Look at the desktop and click the middle",
        say("Let me look first.", member("screenshot")),
        say("", member("left_click", coordinate=[512, 300])),
        say("Clicked the middle.", member("mouse_move", coordinate=[10, 20])),
        say("Done: the desktop shows an empty screen."),
    )
    progress = ProgressLog()
    async with mcp_client(app_server, key=KEY_A) as client:
        session = await create(client, created)
        result = await client.call_tool(
            "execute_task",
            {"session_id": session["session_id"], "task": prompt},
            progress_callback=progress,
        )
        assert not result.is_error, text_of(result)
        assert await processing(client, session["session_id"]) is False
    assert progress.messages == [
        "Let me look first.",
        "Step 1: take a screenshot",
        "Step 2: click at (512, 300)",
        "Clicked the middle.",
        "Step 3: move the mouse to (10, 20)",
        "Done: the desktop shows an empty screen.",
    ]
    assert progress.values == sorted(set(progress.values)), "progress must increase"
    _, image, link = result.content
    assert text_of(result) == "Done: the desktop shows an empty screen."
    assert png_size(image) == (1024, 768)
    assert isinstance(link, ResourceLink) and link.mime_type == "image/png"
    structured = result.structured_content
    assert structured is not None
    assert structured["status"] == "completed" and structured["done"] is True
    assert structured["answer"] == "Done: the desktop shows an empty screen."
    assert structured["steps"] == 3
    assert structured["last_action"] == "move the mouse to (10, 20)"
    requests = model.requests_for(prompt)
    assert len(requests) == 4
    assert {r.api_key for r in requests} == {KEY_A}
    assert not model.server.rejections


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_a_cancelled_call_only_stops_waiting_and_a_new_connection_gets_the_result(
    app_server: ServerProcess, model: Model, created: Callable[[str], None], mode: str
) -> None:
    """legacy: the client sends notifications/cancelled (2025 revisions, as Cursor does);
    auto: the 2026 revision, where closing the response stream cancels. Either way the
    agent keeps working."""
    gate = Gate(then=say("Finished after all."))
    prompt = model.scripted.script(
        f"Wait for something slow ({mode})",
        say("Taking a look.", member("screenshot")),
        gate,
    )
    progress = ProgressLog()
    async with mcp_client(app_server, key=KEY_A, mode=mode) as client:
        session = await create(client, created)
        session_id = session["session_id"]
        outcome: list[Any] = []

        async def call() -> None:
            outcome.append(
                await client.call_tool(
                    "execute_task",
                    {"session_id": session_id, "task": prompt},
                    progress_callback=progress,
                )
            )

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(call)
            with anyio.fail_after(20):
                await gate.entered.wait()  # the run is mid-flight: its 2nd model request waits
            async with mcp_client(app_server, key=KEY_B, mode=mode) as other:
                busy = await other.call_tool(
                    "execute_task", {"session_id": session_id, "task": "Something else"}
                )
            assert busy.is_error
            assert "already processing" in text_of(busy) and "wait_for_task" in text_of(busy)
            tasks.cancel_scope.cancel()
        assert outcome == [], "the cancelled call returns nothing"
        assert progress.messages == ["Taking a look.", "Step 1: take a screenshot"]

    async with mcp_client(app_server, key=KEY_B, mode=mode) as later:
        # Long enough for the cancellation to have reached the server: the run goes on.
        still = await later.call_tool(
            "wait_for_task", {"session_id": session_id, "max_wait_seconds": 2}
        )
        assert not still.is_error, text_of(still)
        assert still.structured_content is not None
        assert still.structured_content["status"] == "running"
        assert still.structured_content["steps"] == 1
        assert "wait_for_task" in still.structured_content["next_step"]
        assert await processing(later, session_id) is True
        gate.release.set()
        done = await later.call_tool("wait_for_task", {"session_id": session_id})
        assert not done.is_error, text_of(done)
        assert done.structured_content is not None
        assert done.structured_content["status"] == "completed"
        assert done.structured_content["answer"] == "Finished after all."
        # The outcome stays: asking again (nothing running) returns it at once.
        again = await later.call_tool("wait_for_task", {"session_id": session_id})
        assert again.structured_content == {
            **done.structured_content,
            "screenshot_url": again.structured_content["screenshot_url"],
        }
    assert len(model.requests_for(prompt)) == 2
    assert not model.server.rejections


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_a_call_that_times_out_on_the_client_leaves_the_run_going(
    app_server: ServerProcess, model: Model, created: Callable[[str], None], mode: str
) -> None:
    gate = Gate(then=say("Done without a waiting caller."))
    prompt = model.scripted.script(
        f"A task whose caller times out ({mode})", say("Looking.", member("screenshot")), gate
    )
    async with mcp_client(app_server, key=KEY_A, mode=mode) as client:
        session = await create(client, created)
        session_id = session["session_id"]
        with pytest.raises(MCPError) as timed_out:
            await client.call_tool(
                "execute_task", {"session_id": session_id, "task": prompt}, read_timeout_seconds=2
            )
        assert timed_out.value.error.code == REQUEST_TIMEOUT
    with anyio.fail_after(20):
        await gate.entered.wait()
    gate.release.set()
    async with mcp_client(app_server, key=KEY_B, mode=mode) as later:
        done = await later.call_tool("wait_for_task", {"session_id": session_id})
    assert done.structured_content is not None, text_of(done)
    assert done.structured_content["status"] == "completed"
    assert done.structured_content["answer"] == "Done without a waiting caller."


async def test_cancel_task_stops_the_run_and_leaves_a_valid_history(
    app_server: ServerProcess, model: Model, created: Callable[[str], None]
) -> None:
    gate = Gate(then=say("Too late: this reply is never used."))
    prompt = model.scripted.script(
        "Wait for something that never comes",
        say("Taking a look.", member("screenshot")),
        gate,
    )
    async with mcp_client(app_server, key=KEY_A) as client:
        session = await create(client, created)
        session_id = session["session_id"]
        results: list[Any] = []

        async def call() -> None:
            results.append(
                await client.call_tool("execute_task", {"session_id": session_id, "task": prompt})
            )

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(call)
            with anyio.fail_after(20):
                await gate.entered.wait()
            async with mcp_client(app_server, key=KEY_B) as other:
                cancelled = await other.call_tool("cancel_task", {"session_id": session_id})
        assert not cancelled.is_error, text_of(cancelled)
        assert cancelled.structured_content is not None
        assert cancelled.structured_content["status"] == "cancelled"
        (waiting,) = results  # the call that was waiting hears the same end
        assert waiting.structured_content is not None
        assert waiting.structured_content["status"] == "cancelled"
        assert await processing(client, session_id) is False

        nothing = await client.call_tool("cancel_task", {"session_id": session_id})
        assert not nothing.is_error
        assert "No task was running" in text_of(nothing)

        follow_up = model.scripted.script("And now something quick", say("Quick."))
        result = await client.call_tool(
            "execute_task", {"session_id": session_id, "task": follow_up}
        )
        assert not result.is_error, text_of(result)
        assert text_of(result) == "Quick."
    gate.release.set()

    (request,) = model.requests_for(follow_up)
    assert request.rejection is None and request.status == 200
    # The interrupted turn is in the history, its tool_use answered.
    blocks = [b for m in request.messages for b in m["content"] if isinstance(b, dict)]
    tool_uses = [b["id"] for b in blocks if b.get("type") == "tool_use"]
    tool_results = [b["tool_use_id"] for b in blocks if b.get("type") == "tool_result"]
    assert tool_uses and tool_uses == tool_results
    assert not model.server.rejections


async def test_wait_for_task_without_any_task_says_to_start_one(
    app_server: ServerProcess, created: Callable[[str], None]
) -> None:
    async with mcp_client(app_server, key=KEY_A) as client:
        session = await create(client, created)
        result = await client.call_tool("wait_for_task", {"session_id": session["session_id"]})
    assert result.is_error
    assert "No task has been started" in text_of(result) and "execute_task" in text_of(result)


async def test_two_clients_with_different_keys_at_once_each_use_their_own(
    app_server: ServerProcess, model: Model, created: Callable[[str], None]
) -> None:
    gates = {KEY_A: Gate(then=say("A is done.")), KEY_B: Gate(then=say("B is done."))}
    prompts = {
        KEY_A: model.scripted.script(
            "Client A's task", say("A looks.", member("screenshot")), gates[KEY_A]
        ),
        KEY_B: model.scripted.script(
            "Client B's task",
            say("B looks.", member("mouse_move", coordinate=[100, 100])),
            gates[KEY_B],
        ),
    }
    answers: dict[str, str] = {}

    async def work(key: str) -> None:
        async with mcp_client(app_server, key=key) as client:
            session = await create(client, created)
            result = await client.call_tool(
                "execute_task", {"session_id": session["session_id"], "task": prompts[key]}
            )
            assert not result.is_error, text_of(result)
            answers[key] = text_of(result)

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(work, KEY_A)
        tasks.start_soon(work, KEY_B)
        with anyio.fail_after(20):  # both runs in flight at the same time
            for gate in gates.values():
                await gate.entered.wait()
        for gate in gates.values():
            gate.release.set()
    assert answers == {KEY_A: "A is done.", KEY_B: "B is done."}
    for key, prompt in prompts.items():
        requests = model.requests_for(prompt)
        assert len(requests) == 2, prompt
        assert {r.api_key for r in requests} == {key}
