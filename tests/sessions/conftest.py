"""A server whose agent runs, as bash, whatever the user's message says (the loopback model):
for tests that need the agent to see or make files, and a recorded run of known steps."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from computer_use.loopback import (
    LoopbackModelServer,
    RecordedRequest,
    Turn,
    bash,
    computer,
    member,
    say,
)
from tests.conftest import server_env
from tests.helpers import ServerProcess, wait_for_async

MODEL_KEY = "sk-ant-files-0123456789"
AUTH = {"X-Anthropic-API-Key": MODEL_KEY}
CLICK_PREFIX = "click "


def user_text(request: RecordedRequest) -> str:
    for message in reversed(request.messages):
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        texts = [b.get("text", "") for b in content if b.get("type") == "text"]
        if texts:
            return str(texts[-1])
    return ""


def shell_model(request: RecordedRequest) -> Turn:
    """`click X Y` clicks there then screenshots; anything else runs once as a bash command.
    Each step answers one tool call; the turn after the last says "done"."""
    prompt = user_text(request)
    if prompt.startswith(CLICK_PREFIX):
        x, y = (int(v) for v in prompt.removeprefix(CLICK_PREFIX).split()[:2])
        if request.computer_tool_type == "computer_toolset_20260801":
            click, look = member("left_click", coordinate=[x, y]), member("screenshot")
        else:  # the beta tool: every action answers with a screenshot
            click, look = computer("left_click", coordinate=[x, y]), computer("screenshot")
        plan = [say("Clicking.", click, thinking="Where to?"), say("Looking.", look)]
    else:
        plan = [say("Running it.", bash(prompt))]
    step = _assistant_turns_since_last_prompt(request)
    return plan[step] if step < len(plan) else say("done")


def _assistant_turns_since_last_prompt(request: RecordedRequest) -> int:
    count = 0
    for message in reversed(request.messages):
        content = message.get("content")
        if message.get("role") == "user" and (
            isinstance(content, str) or any(b.get("type") == "text" for b in content)
        ):
            break
        if message.get("role") == "assistant":
            count += 1
    return count


@pytest.fixture(scope="module")
async def shell_model_server() -> AsyncIterator[LoopbackModelServer]:
    async with LoopbackModelServer(shell_model, api_key=MODEL_KEY) as server:
        yield server


async def start_server(data_dir: Path, **env: str) -> ServerProcess:
    proc = ServerProcess(server_env(data_dir, **env), data_dir / "server.log")
    try:
        # Off the loop: the loopback model shares this event loop and must keep serving.
        return await asyncio.to_thread(proc.start)
    except BaseException:
        await asyncio.to_thread(proc.stop)
        raise


async def run_to_completion(
    http: httpx.AsyncClient, session_id: str, content: str, timeout: float = 60.0
) -> dict[str, Any]:
    """Posts `content`, waits until the session is no longer processing, returns its detail."""
    before = (await http.get(f"/api/v1/sessions/{session_id}")).json()
    sent = len(before["messages"])
    response = await http.post(
        f"/api/v1/sessions/{session_id}/messages", json={"content": content}, headers=AUTH
    )
    assert response.status_code == 202, response.text

    async def finished() -> dict[str, Any] | None:
        detail: dict[str, Any] = (await http.get(f"/api/v1/sessions/{session_id}")).json()
        done = not detail["processing"] and len(detail["messages"]) > sent + 1
        return detail if done else None

    return await wait_for_async(finished, timeout=timeout, interval=0.2, what="the run to end")


def last_tool_output(detail: dict[str, Any]) -> str:
    for message in reversed(detail["messages"]):
        for block in message["content"]:
            if block.get("type") == "tool_result":
                return "".join(c.get("text", "") for c in block["content"] if c["type"] == "text")
    raise AssertionError("no tool_result in the history")
