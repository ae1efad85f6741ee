"""The loop end to end: the real SDK against the loopback server, tools on a real session
desktop (tests/agent/conftest.py)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from datetime import date
from typing import Any

from computer_use.agent import history
from computer_use.agent.tools import SessionTools
from computer_use.desktops import Desktop
from computer_use.loopback import (
    LoopbackModelServer,
    RecordedRequest,
    Reply,
    bash,
    computer,
    edit,
    say,
)
from tests.agent.fakes import KEY, RecordingHooks, run
from tests.desktop_fixtures import session_read
from tests.helpers import wait_for_async


async def test_scripted_task_runs_end_to_end_with_events_in_order(
    tools: SessionTools, desktop: Desktop
) -> None:
    note = f"{desktop.spec.home}/note.txt"
    script = [
        say("Let me look.", computer("screenshot"), thinking="First, look at the screen."),
        say("Clicking.", computer("left_click", coordinate=[100, 100])),
        say("Typing.", computer("type", text="weather Santiago")),
        say("", bash("cd /tmp && export CITY=Santiago")),
        say("", edit("create", note, file_text="Santiago")),
        say("It is sunny in Santiago."),
    ]
    hooks = RecordingHooks()
    async with LoopbackModelServer(script) as server:
        result = await run(server, tools, hooks, today=date(2026, 11, 26))

    assert server.rejections == []
    assert (result.stop_reason, result.steps) == ("end_turn", 6)
    assert hooks.types() == [
        "thinking", "text", "tool_use", "usage", "tool_result",
        "text", "tool_use", "usage", "tool_result",
        "text", "tool_use", "usage", "tool_result",
        "tool_use", "usage", "tool_result",
        "tool_use", "usage", "tool_result",
        "text", "usage", "message_complete",
    ]  # fmt: skip
    deltas = "".join(d["text"] for d in hooks.of("text_delta"))
    assert deltas == "".join(d["text"] for d in hooks.of("text"))
    assert [d["description"] for d in hooks.of("tool_use")] == [
        "take a screenshot",
        "click at (100, 100)",
        "type 'weather Santiago'",
        "run `cd /tmp && export CITY=Santiago`",
        f"create {note}",
    ]
    results = hooks.of("tool_result")
    assert results[0]["image_url"] == "/api/v1/images/img1" and not results[0]["is_error"]
    assert results[3] == {
        "tool_use_id": hooks.of("tool_use")[3]["id"],
        "is_error": False,
        "output": "(no output)",
        "image_id": None,
        "image_url": None,
    }
    complete = hooks.of("message_complete")[0]
    usage = complete["usage"]
    assert complete["stop_reason"] == "end_turn" and usage["cache_read_input_tokens"] > 0
    assert usage["cache_creation_input_tokens"] > 0 and usage["output_tokens"] > 0
    assert await session_read(desktop, note) == "Santiago"

    first, second = server.requests[0], server.requests[1]
    assert first.api_key == KEY and first.betas == ["computer-use-2025-11-24"]
    assert [t["type"] for t in first.tools] == [
        "computer_20251124",
        "bash_20250124",
        "text_editor_20250728",
        "custom",  # ask_person
    ]
    assert first.tool("computer") == {
        "type": "computer_20251124",
        "name": "computer",
        "display_width_px": 1280,
        "display_height_px": 800,
        "enable_zoom": True,
    }
    assert first.body["thinking"] == {"type": "adaptive", "display": "summarized"}
    system = first.body["system"][0]["text"]
    assert "Thursday, November 26, 2026" in system and "/home/user" in system
    # the thinking block goes back unchanged (the server checks its signature too)
    assert second.messages[1]["content"][0]["type"] == "thinking"
    assert [r.count_cache_breakpoints() for r in server.requests] == [2, 3, 4, 4, 4, 4]

    # storage form: image references, no base64; rebuilding it gives what the loop sent
    stored = json.dumps(hooks.messages)
    assert '"base64"' not in stored and '"stored"' in stored
    assert await history.to_api(hooks.messages, hooks.load_image) == result.messages


def screenshot_until(steps: int) -> Any:
    def responder(request: RecordedRequest) -> Reply:
        done = sum(1 for m in request.messages if m["role"] == "assistant")
        return say("Done.") if done >= steps else say("", computer("screenshot"))

    return responder


async def test_screenshots_are_pruned_in_chunks_keeping_the_cache(tools: SessionTools) -> None:
    hooks = RecordingHooks()
    async with LoopbackModelServer(screenshot_until(10)) as server:
        result = await run(server, tools, hooks, images_to_keep=3, image_chunk=2)
    assert result.stop_reason == "end_turn" and server.rejections == []
    assert [r.image_count() for r in server.requests] == [0, 1, 2, 3, 4, 3, 4, 3, 4, 3, 4]
    reads = [r.extras["response"]["usage"]["cache_read_input_tokens"] for r in server.requests]
    # Between chunk boundaries each request reads the whole previous prefix (images included);
    # at a boundary (5th, 7th, 9th screenshot) only tools + system are still cached.
    boundaries = {5, 7, 9}
    for index, read in enumerate(reads[2:], start=2):
        assert (read < 1500) if index in boundaries else (read > 1500), (index, reads)


class Signal:
    """A marker file in the session's HOME: `touch ~/<name>` in a bash command tells the test
    "started" (the session's programs cannot connect to this host, so no socket)."""

    def __init__(self, desktop: Desktop) -> None:
        name = f"started-{uuid.uuid4().hex}"
        self.command = f"touch ~/{name}"
        self.marker = desktop.sandbox.home / name  # the same HOME, on the host's side
        self.event = asyncio.Event()

    async def __aenter__(self) -> Signal:
        self.watch = asyncio.create_task(self._watch())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.watch.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.watch

    async def _watch(self) -> None:
        async def touched() -> bool:
            return self.marker.exists()

        await wait_for_async(touched, timeout=10, what="the command to start")
        self.event.set()

    async def wait(self) -> None:
        await asyncio.shield(self.watch)


async def test_cancel_mid_tool_leaves_a_valid_history(
    tools: SessionTools, desktop: Desktop
) -> None:
    hooks = RecordingHooks()
    async with Signal(desktop) as started:
        script = [say("Working.", bash(f"{started.command}; sleep 30"), computer("screenshot"))]
        async with LoopbackModelServer(script) as server:
            # the cancel event is set once the command runs
            result = await run(server, tools, hooks, cancel=started.event)
            assert result.stop_reason == "cancelled"
            assert hooks.types()[-3:] == ["tool_result", "tool_result", "message_complete"]
            for item in hooks.of("tool_result"):
                assert item["is_error"] and item["output"] == "interrupted by the user"
            assert hooks.messages[-1]["role"] == "user"

            server.add(say("Picking up again."))
            again = await run(server, tools, hooks, prompt="Go on")
            assert again.stop_reason == "end_turn"
            assert server.rejections == []


async def test_cancel_while_streaming_then_next_message_is_valid(tools: SessionTools) -> None:
    cancel = asyncio.Event()
    hooks = RecordingHooks(on_event=lambda t, d: cancel.set() if t == "text_delta" else None)
    script = [say("A long answer " * 50), say("Second answer.")]
    async with LoopbackModelServer(script, delay=0.01, chunk_size=4) as server:
        result = await run(server, tools, hooks, cancel=cancel)
        assert result.stop_reason == "cancelled" and result.steps == 1
        assert [m["role"] for m in hooks.messages] == ["user"]
        hooks.on_event = None
        await run(server, tools, hooks, prompt="Try again")
    assert server.rejections == []
    texts = [b["text"] for b in server.requests[1].messages[0]["content"]]
    assert texts == ["Search the weather in Santiago, Chile", "Try again"]


async def test_cancelling_the_task_still_answers_every_tool_use(
    tools: SessionTools, desktop: Desktop
) -> None:
    hooks = RecordingHooks()
    async with (
        Signal(desktop) as started,
        LoopbackModelServer([say("", bash(f"{started.command}; sleep 30"))]) as server,
    ):
        task = asyncio.create_task(run(server, tools, hooks))
        await started.wait()
        task.cancel()
        async with asyncio.timeout(5):
            with contextlib.suppress(asyncio.CancelledError):
                await task
    assert hooks.types()[-2:] == ["tool_result", "message_complete"]
    assert hooks.of("message_complete")[0]["stop_reason"] == "cancelled"
    assert hooks.messages[-1]["content"][0]["type"] == "tool_result"


async def test_step_cap_ends_the_run_with_valid_history(tools: SessionTools) -> None:
    hooks = RecordingHooks()
    async with LoopbackModelServer(screenshot_until(100)) as server:
        result = await run(server, tools, hooks, max_steps=3)
        assert (result.stop_reason, result.steps) == ("max_steps", 3)
        assert "step limit" in hooks.of("message_complete")[0]["detail"]
        await run(server, tools, hooks, prompt="continue", max_steps=1)
    assert server.rejections == []


async def test_bash_state_persists_across_runs(tools: SessionTools) -> None:
    hooks = RecordingHooks()
    script = [
        say("", bash("cd /tmp && export CITY=Santiago")),
        say("Set."),
        say("", bash('echo "$PWD $CITY"')),
        say("Checked."),
    ]
    async with LoopbackModelServer(script) as server:
        await run(server, tools, hooks, prompt="set up")
        await run(server, tools, hooks, prompt="check")
    assert hooks.of("tool_result")[-1]["output"] == "/tmp Santiago"


async def test_older_models_get_older_tools_and_a_thinking_budget(tools: SessionTools) -> None:
    hooks = RecordingHooks()
    async with LoopbackModelServer([say("", computer("screenshot")), say("ok")]) as server:
        await run(server, tools, hooks, model="claude-haiku-4-5", thinking_budget=2048)
    request = server.requests[0]
    assert request.betas == ["computer-use-2025-01-24"]
    assert request.tool("computer") == {
        "type": "computer_20250124",
        "name": "computer",
        "display_width_px": 1280,
        "display_height_px": 800,
    }
    assert request.body["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert server.rejections == []
