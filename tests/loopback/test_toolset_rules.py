"""The loopback server speaks the computer toolset and refuses what the API refuses, over HTTP
with the real SDK."""

from __future__ import annotations

from typing import Any

import anthropic
import pytest

from computer_use.loopback import LoopbackModelServer, member, say

KEY = "sk-ant-loopback-test-key"
TOOLSET: Any = {"type": "computer_toolset_20260801"}
BETA_TOOL: Any = {
    "type": "computer_20251124",
    "name": "computer",
    "display_width_px": 1280,
    "display_height_px": 800,
}
PROMPT: Any = [{"role": "user", "content": "Click the button."}]


def client(server: LoopbackModelServer) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=server.base_url, api_key=KEY, max_retries=0)


async def test_batched_member_calls_stream_with_their_toolset_name() -> None:
    reply = say("Both at once.", member("screenshot"), member("left_click", coordinate=[120, 90]))
    async with (
        LoopbackModelServer([reply]) as server,
        client(server).beta.messages.stream(
            model="claude-sonnet-5-5", max_tokens=1000, tools=[TOOLSET], messages=PROMPT
        ) as stream,
    ):
        message = await stream.get_final_message()
    uses = [b for b in message.content if b.type == "tool_use"]
    assert [(u.name, u.toolset_name, u.input) for u in uses] == [
        ("screenshot", "computer", {}),
        ("left_click", "computer", {"coordinate": [120, 90]}),
    ]
    assert message.stop_reason == "tool_use" and server.requests[0].betas == []


@pytest.mark.parametrize(
    ("model", "extra", "message"),
    [
        (
            "claude-sonnet-5-5",
            {"tools": [BETA_TOOL], "betas": ["computer-use-2025-11-24"]},
            "computer_20251124 is not supported on claude-sonnet-5-5; "
            "use computer_toolset_20260801",
        ),
        (
            "claude-opus-5-5",
            {"tools": [TOOLSET], "thinking": {"type": "disabled"}},
            '"thinking.type.disabled" is not supported for this model.',
        ),
        (
            "claude-opus-5-5",
            {"tools": [TOOLSET], "thinking": {"type": "enabled", "budget_tokens": 2048}},
            '"thinking.type.enabled" is not supported for this model.',
        ),
        (
            "claude-sonnet-5-5",
            {"tools": [TOOLSET], "thinking": {"type": "disabled"}},
            "between_tools",
        ),
        (
            "claude-sonnet-5-5",
            {"tools": [TOOLSET], "thinking": {"type": "between_tools"},
             "output_config": {"effort": "max"}},
            "cannot be combined with effort",
        ),
        (
            "claude-sonnet-5-5",
            {"tools": [TOOLSET, {"name": "note", "input_schema": {"type": "object"}}],
             "tool_choice": {"type": "tool", "name": "note"}},
            "forced tool use",
        ),
        (
            "claude-sonnet-4-6",
            {"tools": [TOOLSET]},
            "computer_toolset_20260801 is not supported on claude-sonnet-4-6",
        ),
        (
            "claude-haiku-4-5",
            {"tools": [{**BETA_TOOL}], "betas": ["computer-use-2025-11-24"]},
            "use computer_20250124",
        ),
        (
            "claude-sonnet-5-5",
            {"tools": [{**TOOLSET, "display_width_px": 1280}]},
            "display_width_px: Extra inputs are not permitted",
        ),
        (
            "claude-sonnet-5-5",
            {"tools": [{**TOOLSET, "configs": {"teleport": {"enabled": True}}}]},
            "configs.teleport: Extra inputs are not permitted",
        ),
    ],
)  # fmt: skip
async def test_requests_the_api_refuses_are_400s(
    model: str, extra: dict[str, Any], message: str
) -> None:
    async with LoopbackModelServer([say("unreachable")]) as server:
        with pytest.raises(anthropic.BadRequestError) as refused:
            await client(server).beta.messages.create(
                model=model, max_tokens=4096, messages=PROMPT, **extra
            )
    assert message in str(refused.value)
    assert server.remaining == 1  # nothing of the script was used


def history(result: dict[str, Any]) -> list[dict[str, Any]]:
    use = {
        "type": "tool_use",
        "id": "toolu_1",
        "name": "left_click",
        "input": {"coordinate": [1, 1]},
        "toolset_name": "computer",
    }
    return [*PROMPT, {"role": "assistant", "content": [use]}, {"role": "user", "content": [result]}]


@pytest.mark.parametrize(
    ("result", "message"),
    [
        ({"type": "tool_result", "tool_use_id": "toolu_1", "content": "Clicked."},
         "toolset_name: must be 'computer'"),
        ({"type": "tool_result", "tool_use_id": "toolu_1", "toolset_name": "computer",
          "is_error": True, "content": []},
         "needs non-empty text content"),
    ],
)  # fmt: skip
async def test_member_results_must_echo_the_toolset_and_errors_be_text(
    result: dict[str, Any], message: str
) -> None:
    async with LoopbackModelServer([say("ok")]) as server:
        with pytest.raises(anthropic.BadRequestError) as refused:
            await client(server).beta.messages.create(
                model="claude-sonnet-5-5",
                max_tokens=4096,
                tools=[TOOLSET],
                messages=history(result),  # type: ignore[arg-type]
            )
    assert message in str(refused.value)
    good = {**result, "toolset_name": "computer", "content": "Clicked.", "is_error": False}
    async with LoopbackModelServer([say("ok")]) as server:
        answer = await client(server).beta.messages.create(
            model="claude-sonnet-5-5",
            max_tokens=4096,
            tools=[TOOLSET],
            messages=history(good),  # type: ignore[arg-type]
        )
    assert answer.content[0].type == "text"
