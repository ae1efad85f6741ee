"""The built-in demo script, and the CLI that serves it."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import anthropic
import httpx

from computer_use.loopback import RecordedRequest, ToolUse, demo_responder
from computer_use.loopback.demo import DEMO_PAGE, forecast, search_query
from tests.helpers import REPO, free_port, wait_for_async

TOOLS = [
    {
        "type": "computer_20251124",
        "name": "computer",
        "display_width_px": 1280,
        "display_height_px": 800,
        "enable_zoom": True,
    },
    {"type": "bash_20250124", "name": "bash"},
]


def request(messages: list[dict[str, Any]]) -> RecordedRequest:
    return RecordedRequest("POST", "/v1/messages", {}, {"messages": messages, "tools": TOOLS})


def test_demo_searches_the_weather_step_by_step() -> None:
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": "Search the weather in Santiago, Chile"}
    ]
    actions: list[list[dict[str, Any]]] = []
    for _ in range(10):
        reply = demo_responder(request(messages))
        tools = [b for b in reply.blocks if isinstance(b, ToolUse)]  # type: ignore[union-attr]
        if not tools:
            break
        actions.append([dict(t.input) for t in tools])
        ids = [f"t{len(actions)}_{i}" for i in range(len(tools))]
        messages.append(
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": i, "name": "computer", "input": {}} for i in ids
                ],
            }
        )
        messages.append(
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": i, "content": "ok"} for i in ids
                ],
            }
        )
    assert actions[1][0]["command"].startswith(f"mkdir -p ~/demo && cat > {DEMO_PAGE} <<'HTML'")
    del actions[1]
    assert actions == [
        [{"action": "screenshot"}],
        [{"action": "left_click", "coordinate": [640, 60]}, {"action": "key", "text": "ctrl+l"}],
        [
            {"action": "type", "text": f"file://{DEMO_PAGE}"},
            {"action": "key", "text": "Return"},
        ],
        [
            {"action": "left_click", "coordinate": [240, 224]},
            {"action": "type", "text": "Santiago, Chile"},
        ],
        [{"action": "left_click", "coordinate": [520, 224]}],
        [{"action": "screenshot"}],
    ]
    final = demo_responder(request(messages))
    text = final.blocks[0].text  # type: ignore[union-attr]
    assert f"shows {forecast('Santiago, Chile')} for Santiago, Chile" in text


def test_search_query_is_taken_from_the_prompt() -> None:
    assert search_query("Search the weather in San Francisco") == "weather in San Francisco"
    assert search_query("What's up?") == "What's up?"


async def test_cli_serves_the_demo_to_the_sdk() -> None:
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "computer_use.loopback", "--port", str(port), "--delay", "0"),
        cwd=REPO,
        stdout=asyncio.subprocess.DEVNULL,
    )
    try:
        base_url = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient() as http:

            async def answers() -> bool:  # each attempt fails fast until it listens
                await http.get(f"{base_url}/v1/models")
                return True

            await wait_for_async(answers, timeout=15, what="the loopback server to answer")
        sdk = anthropic.AsyncAnthropic(base_url=base_url, api_key="any", max_retries=0)
        message = await sdk.beta.messages.create(
            model="claude-opus-4-6",
            max_tokens=100,
            messages=[{"role": "user", "content": "Search the weather in Santiago, Chile"}],
            tools=TOOLS,  # type: ignore[arg-type]
            betas=["computer-use-2025-11-24"],
        )
        assert message.stop_reason == "tool_use"
        assert message.content[-1].type == "tool_use"
        assert message.content[-1].input == {"action": "screenshot"}
    finally:
        proc.terminate()
        async with asyncio.timeout(10):
            await proc.wait()
