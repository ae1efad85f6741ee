"""The loopback server against the real SDK, over real HTTP on 127.0.0.1."""

from __future__ import annotations

from typing import Any

import anthropic
import pytest

from computer_use.loopback import (
    Fail,
    LoopbackModelServer,
    RecordedRequest,
    Reply,
    authentication_error,
    computer,
    invalid_request,
    overloaded,
    rate_limited,
    say,
)

KEY = "sk-ant-loopback-test-key"
COMPUTER = {
    "type": "computer_20251124",
    "name": "computer",
    "display_width_px": 1280,
    "display_height_px": 800,
    "enable_zoom": True,
}
BETAS = ["computer-use-2025-11-24"]


def client(server: LoopbackModelServer, retries: int = 0) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=server.base_url, api_key=KEY, max_retries=retries)


async def test_json_reply_and_the_request_is_recorded() -> None:
    async with LoopbackModelServer([say("Hello.")]) as server:
        message = await client(server).beta.messages.create(
            model="claude-opus-4-6",
            max_tokens=100,
            messages=[{"role": "user", "content": "Hi"}],
            betas=BETAS,
        )
    assert message.content[0].type == "text" and message.content[0].text == "Hello."
    assert message.stop_reason == "end_turn" and message.model == "claude-opus-4-6"
    assert message.id.startswith("msg_") and message.usage.output_tokens > 0
    request = server.requests[0]
    assert request.api_key == KEY and request.betas == BETAS
    assert request.body["messages"] == [{"role": "user", "content": "Hi"}]
    assert request.status == 200


async def test_streaming_sends_every_event_type_the_sdk_knows() -> None:
    reply = say("Let me look at the screen.", computer("screenshot"), thinking="Look first.")
    async with LoopbackModelServer([reply], chunk_size=5) as server:
        seen: list[str] = []
        async with client(server).beta.messages.stream(
            model="claude-opus-4-6",
            max_tokens=1000,
            messages=[{"role": "user", "content": "Go"}],
            tools=[COMPUTER],  # type: ignore[list-item]
            betas=BETAS,
            thinking={"type": "adaptive"},
        ) as stream:
            async for event in stream:
                if event.type == "content_block_delta":
                    seen.append(event.delta.type)
                else:
                    seen.append(event.type)
            message = await stream.get_final_message()
    for kind in (
        "message_start",
        "content_block_start",
        "thinking_delta",
        "signature_delta",
        "text_delta",
        "input_json_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ):
        assert kind in seen
    assert seen.count("text_delta") > 1  # really streamed in pieces
    thinking, text, tool = message.content
    assert thinking.type == "thinking" and thinking.thinking == "Look first." and thinking.signature
    assert text.type == "text" and text.text == "Let me look at the screen."
    assert tool.type == "tool_use" and tool.input == {"action": "screenshot"}
    assert tool.id.startswith("toolu_") and message.stop_reason == "tool_use"


def conversation(tool_id: str, **result: Any) -> list[dict[str, Any]]:
    return [
        {"role": "user", "content": "Go"},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": tool_id, "name": "computer", "input": {}}],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool_id, **result}]},
    ]


async def rejection(body: dict[str, Any], *, betas: list[str] = BETAS) -> str:
    async with LoopbackModelServer([say("unused")]) as server:
        with pytest.raises(anthropic.BadRequestError) as caught:
            await client(server).beta.messages.create(
                model="claude-opus-4-6", max_tokens=100, betas=betas, **body
            )
    assert server.remaining == 1  # a rejected request consumes no turn
    assert caught.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    return str(server.rejections[0])


async def test_unanswered_tool_use_is_rejected() -> None:
    messages = conversation("toolu_1", content="ok")
    messages[2]["content"] = [{"type": "text", "text": "never mind"}]
    message = await rejection({"messages": messages, "tools": [COMPUTER]})
    assert "`tool_use` ids were found without `tool_result` blocks" in message
    assert "toolu_1" in message


async def test_tool_result_must_answer_a_tool_use_and_come_first() -> None:
    messages = conversation("toolu_1", content="ok")
    messages[2]["content"][0]["tool_use_id"] = "toolu_other"
    assert "unexpected `tool_use_id`" in await rejection(
        {"messages": messages, "tools": [COMPUTER]}
    )
    messages = conversation("toolu_1", content="ok")
    messages[2]["content"].insert(0, {"type": "text", "text": "first"})
    assert "must come first" in await rejection({"messages": messages, "tools": [COMPUTER]})


async def test_more_than_four_cache_breakpoints_are_rejected() -> None:
    cached = {"type": "ephemeral"}
    system = [{"type": "text", "text": f"part {i}", "cache_control": cached} for i in range(5)]
    message = await rejection({"messages": [{"role": "user", "content": "x"}], "system": system})
    assert message == "A maximum of 4 blocks with cache_control may be provided. Found 5."


async def test_roles_must_alternate_and_tools_must_be_defined() -> None:
    two_users = [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]
    assert "roles must alternate" in await rejection({"messages": two_users})
    no_tools = {"messages": conversation("toolu_1", content="ok")}
    assert "must define tools" in await rejection(no_tools)


async def test_computer_tool_needs_its_beta_flag() -> None:
    body = {"messages": [{"role": "user", "content": "x"}], "tools": [COMPUTER]}
    assert "does not match any of the expected tags" in await rejection(body, betas=[])
    assert "computer-use-2025-04-29" in await rejection(body, betas=["computer-use-2025-04-29"])


async def test_thinking_must_come_back_unchanged() -> None:
    async with LoopbackModelServer([say("", computer("screenshot"), thinking="Plan.")]) as server:
        sdk = client(server)
        first = await sdk.beta.messages.create(
            model="claude-opus-4-6",
            max_tokens=100,
            messages=[{"role": "user", "content": "Go"}],
            tools=[COMPUTER],  # type: ignore[list-item]
            betas=BETAS,
        )
        thinking, tool = (b.model_dump(exclude_none=True) for b in first.content)
        thinking["thinking"] = "A different plan."
        messages = [
            {"role": "user", "content": "Go"},
            {"role": "assistant", "content": [thinking, tool]},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": tool["id"], "content": "ok"}],
            },
        ]
        with pytest.raises(anthropic.BadRequestError, match="Invalid `signature`"):
            await sdk.beta.messages.create(
                model="claude-opus-4-6",
                max_tokens=100,
                messages=messages,  # type: ignore[arg-type]
                tools=[COMPUTER],  # type: ignore[list-item]
                betas=BETAS,
            )


@pytest.mark.parametrize(
    ("turn", "error", "status"),
    [
        (authentication_error(), anthropic.AuthenticationError, 401),
        (rate_limited(2), anthropic.RateLimitError, 429),
        (overloaded(), anthropic.InternalServerError, 529),
        (invalid_request("prompt is too long"), anthropic.BadRequestError, 400),
    ],
)
async def test_errors_have_the_documented_shape(
    turn: Fail, error: type[anthropic.APIStatusError], status: int
) -> None:
    async with LoopbackModelServer([turn]) as server:
        with pytest.raises(error) as caught:
            await client(server).beta.messages.create(
                model="claude-opus-4-6",
                max_tokens=100,
                messages=[{"role": "user", "content": "x"}],
            )
    exc = caught.value
    assert exc.status_code == status
    assert exc.body == {"type": "error", "error": {"type": turn.type, "message": turn.message}}
    assert exc.request_id is not None and exc.request_id.startswith("req_")
    if status == 429:
        assert exc.response.headers["retry-after"] == "2"


async def test_sdk_retries_honour_retry_after() -> None:
    busy = Fail(529, "overloaded_error", "Overloaded", retry_after=0.01)
    async with LoopbackModelServer([rate_limited(0.01), busy, say("ok")]) as server:
        message = await client(server, retries=2).beta.messages.create(
            model="claude-opus-4-6", max_tokens=100, messages=[{"role": "user", "content": "x"}]
        )
    assert message.content[0].type == "text" and len(server.requests) == 3


async def test_overload_mid_stream_raises_in_the_sdk() -> None:
    async with LoopbackModelServer([overloaded(mid_stream=True)]) as server:
        with pytest.raises(anthropic.APIStatusError) as caught:
            async with client(server).beta.messages.stream(
                model="claude-opus-4-6", max_tokens=100, messages=[{"role": "user", "content": "x"}]
            ) as stream:
                async for _ in stream:
                    pass
    assert caught.value.type == "overloaded_error"


async def test_wrong_or_missing_key_is_refused_when_a_key_is_set() -> None:
    async with LoopbackModelServer([say("ok")], api_key="right") as server:
        with pytest.raises(anthropic.AuthenticationError, match="invalid x-api-key"):
            await client(server).beta.messages.create(
                model="m", max_tokens=10, messages=[{"role": "user", "content": "x"}]
            )


async def test_a_turn_can_be_computed_from_the_request() -> None:
    def click_center(request: RecordedRequest) -> Reply:
        width, height = request.display_size or (0, 0)
        return say("", computer("left_click", coordinate=[width // 2, height // 2]))

    async with LoopbackModelServer([click_center]) as server:
        message = await client(server).beta.messages.create(
            model="claude-opus-4-6",
            max_tokens=100,
            messages=[{"role": "user", "content": "x"}],
            tools=[COMPUTER],  # type: ignore[list-item]
            betas=BETAS,
        )
    assert message.content[0].type == "tool_use"
    assert message.content[0].input == {"action": "left_click", "coordinate": [640, 400]}


async def test_an_exhausted_script_fails_loudly_without_retries() -> None:
    async with LoopbackModelServer([]) as server:
        with pytest.raises(anthropic.InternalServerError, match="script exhausted"):
            await client(server, retries=2).beta.messages.create(
                model="m", max_tokens=10, messages=[{"role": "user", "content": "x"}]
            )
    assert len(server.requests) == 1


async def test_prompt_cache_usage_is_simulated() -> None:
    body: dict[str, Any] = {
        "model": "m",
        "max_tokens": 10,
        "system": [{"type": "text", "text": "sys " * 500, "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": "x"}],
    }
    async with LoopbackModelServer([say("a"), say("b")]) as server:
        first = await client(server).beta.messages.create(**body)
        second = await client(server).beta.messages.create(**body)
    assert first.usage.cache_creation_input_tokens and not first.usage.cache_read_input_tokens
    assert second.usage.cache_read_input_tokens == first.usage.cache_creation_input_tokens
