from __future__ import annotations

from typing import Any

from computer_use.agent import context, history
from computer_use.agent.tools.base import ToolResult
from computer_use.loopback.script import count_cache_control
from tests.agent.fakes import RecordingHooks, png


def screenshot_turn(tool_id: str, image: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": tool_id, "name": "computer", "input": {}}],
        },
        {
            "role": "user",
            "content": [history.tool_result_block(tool_id, ToolResult(), image)],
        },
    ]


async def test_storage_form_round_trips_to_api_form() -> None:
    hooks = RecordingHooks()
    image = png(4, 4)
    api = [{"role": "user", "content": "hi"}, *screenshot_turn("t1", history.base64_image(image))]
    stored = [await history.to_storage(m, hooks.save_image) for m in api]
    result_content = stored[2]["content"][0]["content"][0]
    assert result_content["source"] == {
        "type": "stored",
        "image_id": "img1",
        "media_type": "image/png",
    }
    rebuilt = await history.to_api(stored, hooks.load_image)
    assert rebuilt[2] == api[2]
    assert rebuilt[0] == {"role": "user", "content": [{"type": "text", "text": "hi"}]}


async def test_to_api_answers_dangling_tool_use_and_merges_user_turns() -> None:
    hooks = RecordingHooks()
    stored = [
        {"role": "user", "content": [{"type": "text", "text": "first"}]},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "t1", "name": "bash", "input": {}}],
        },
        {"role": "user", "content": [{"type": "text", "text": "second"}]},
        {"role": "user", "content": [{"type": "text", "text": "third"}]},
    ]
    rebuilt = await history.to_api(stored, hooks.load_image)
    assert [m["role"] for m in rebuilt] == ["user", "assistant", "user"]
    last = rebuilt[2]["content"]
    assert last[0]["type"] == "tool_result" and last[0]["is_error"] is True
    assert last[0]["content"] == [{"type": "text", "text": history.INTERRUPTED}]
    assert [b.get("text") for b in last[1:]] == ["second", "third"]


def test_images_are_pruned_in_chunks_and_placeholders_keep_counting() -> None:
    messages: list[dict[str, Any]] = [{"role": "user", "content": "go"}]
    present = []
    for n in range(1, 13):
        messages += screenshot_turn(f"t{n}", history.base64_image(b"x"))
        pruned = context.prune_images(messages, keep=3, chunk=4)
        present.append(sum(1 for s in context._image_slots(pruned) if _is_image(pruned, s)))
        assert context.prune_images(pruned, keep=3, chunk=4) == pruned
    assert present == [1, 2, 3, 4, 5, 6, 3, 4, 5, 6, 3, 4]


def _is_image(messages: list[dict[str, Any]], slot: tuple[int, int, int]) -> bool:
    m, b, c = slot
    return bool(messages[m]["content"][b]["content"][c]["type"] == "image")


def test_cache_breakpoints_mark_the_last_three_user_turns() -> None:
    messages: list[dict[str, Any]] = [{"role": "user", "content": "go"}]
    for n in range(5):
        messages += screenshot_turn(f"t{n}", history.base64_image(b"x"))
    marked = context.with_cache_breakpoints(messages)
    assert count_cache_control(marked) == 3
    assert [i for i, m in enumerate(marked) if "cache_control" in m["content"][-1]] == [6, 8, 10]
    # idempotent on an already-marked list, and the input is untouched
    assert count_cache_control(context.with_cache_breakpoints(marked)) == 3
    assert count_cache_control(messages) == 0
