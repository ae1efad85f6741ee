"""Per-model request rules through the real loop: thinking blocks go back untouched (even
after screenshot pruning), and an unknown model's refusal arrives as an error event."""

from __future__ import annotations

import copy
from typing import Any

from computer_use.agent import context
from computer_use.agent.tools import SessionTools
from computer_use.loopback import LoopbackModelServer, Reply, Text, Thinking, member, say
from tests.agent.fakes import RecordingHooks, run


def thinking_blocks(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        b
        for m in messages
        if m["role"] == "assistant"
        for b in m["content"]
        if b["type"] == "thinking"
    ]


async def test_thinking_blocks_survive_pruning_unchanged(tools: SessionTools) -> None:
    """Opus 5.5 (thinking always on): empty and summarized thinking blocks are sent back as
    received while old screenshots are pruned around them."""
    turns: list[Reply] = []
    for i in range(6):
        thought = "" if i % 2 else f"Progress note {i}."
        turns.append(Reply([Thinking(thought), Text(f"Look {i}."), member("screenshot")]))
    turns.append(say("Done."))
    hooks = RecordingHooks()
    async with LoopbackModelServer(turns) as server:
        result = await run(
            server, tools, hooks, model="claude-opus-5-5", images_to_keep=2, image_chunk=2
        )
    assert server.rejections == [] and result.stop_reason == "end_turn"
    last = server.requests[-1]
    assert last.body["thinking"] == {"type": "adaptive", "display": "summarized"}
    assert last.image_count() < 6  # pruning happened
    sent = thinking_blocks(last.messages)
    answered = [b for r in server.requests if "response" in r.extras
                for b in r.extras["response"]["content"] if b["type"] == "thinking"]  # fmt: skip
    assert sent == answered[: len(sent)] and len(sent) == 6
    assert [b["thinking"] for b in sent][:2] == ["Progress note 0.", ""]
    # Pruning itself never touches an assistant turn.
    before = copy.deepcopy(result.messages)
    pruned = context.prune_images(result.messages, 1, 1)
    assert thinking_blocks(pruned) == thinking_blocks(before)
    assert result.messages == before


async def test_an_unknown_model_is_passed_through_and_its_refusal_is_an_error_event(
    tools: SessionTools,
) -> None:
    hooks = RecordingHooks()
    async with LoopbackModelServer([say("unreachable")]) as server:
        result = await run(server, tools, hooks, model="claude-nova-9")
    request = server.requests[0]
    assert request.body["model"] == "claude-nova-9"
    assert request.computer_tool_type == "computer_toolset_20260801"  # the newest path
    assert result.stop_reason == "error"
    (error,) = hooks.of("error")
    assert error["code"] == "invalid_request_error" and error["status"] == 400
    assert "computer_toolset_20260801 is not supported on claude-nova-9" in error["message"]
