"""Turning a scripted Reply into the API's message JSON and its SSE event sequence."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import string
from collections.abc import Iterator
from typing import Any

from computer_use.loopback.script import Reply, Text, Thinking, ToolUse

_ALPHABET = string.ascii_letters + string.digits


def new_id(prefix: str) -> str:
    """IDs shaped like the API's (msg_01..., toolu_01..., req_01...)."""
    return f"{prefix}_01" + "".join(secrets.choice(_ALPHABET) for _ in range(22))


class ThinkingSigner:
    """Signs thinking blocks so a later request can prove it passed them back unchanged."""

    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)

    def sign(self, thinking: str) -> str:
        digest = hmac.new(self._key, thinking.encode(), hashlib.sha256).digest()
        return base64.b64encode(digest).decode()

    def verify(self, thinking: str, signature: str) -> bool:
        return hmac.compare_digest(self.sign(thinking), signature)


def error_body(error_type: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": error_type, "message": message}}


def build_message(
    reply: Reply, *, model: str, usage: dict[str, int], signer: ThinkingSigner
) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    for block in reply.blocks:
        if isinstance(block, Text):
            content.append({"type": "text", "text": block.text})
        elif isinstance(block, Thinking):
            content.append(
                {
                    "type": "thinking",
                    "thinking": block.thinking,
                    "signature": signer.sign(block.thinking),
                }
            )
        else:
            tool_use: dict[str, Any] = {
                "type": "tool_use",
                "id": block.id or new_id("toolu"),
                "name": block.name,
                "input": dict(block.input),
            }
            if block.toolset_name is not None:
                tool_use["toolset_name"] = block.toolset_name
            content.append(tool_use)
    output_tokens = max(1, len(json.dumps(content)) // 4)
    return {
        "id": new_id("msg"),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": reply.effective_stop_reason,
        "stop_sequence": None,
        "usage": {**usage, "output_tokens": output_tokens},
    }


def reply_tool_names(reply: Reply) -> list[str]:
    """Plain tool names, and toolset families as "<family>_toolset", the reply calls."""
    return [
        f"{b.toolset_name}_toolset" if b.toolset_name else b.name
        for b in reply.blocks
        if isinstance(b, ToolUse)
    ]


def _chunks(text: str, size: int) -> Iterator[str]:
    for start in range(0, len(text), size):
        yield text[start : start + size]


def stream_events(
    message: dict[str, Any], *, chunk_size: int
) -> Iterator[tuple[str, dict[str, Any]]]:
    """The (event name, data) pairs of a streamed message, in the API's order."""
    start = {**message, "content": [], "stop_reason": None, "stop_sequence": None}
    start["usage"] = {**message["usage"], "output_tokens": 1}
    yield "message_start", {"type": "message_start", "message": start}
    for index, block in enumerate(message["content"]):
        yield from _block_events(index, block, chunk_size)
        if index == 0:
            yield "ping", {"type": "ping"}
    yield (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
            "usage": {"output_tokens": message["usage"]["output_tokens"]},
        },
    )
    yield "message_stop", {"type": "message_stop"}


def _block_events(
    index: int, block: dict[str, Any], chunk_size: int
) -> Iterator[tuple[str, dict[str, Any]]]:
    kind = block["type"]
    if kind == "text":
        opening: dict[str, Any] = {"type": "text", "text": ""}
        deltas = [{"type": "text_delta", "text": c} for c in _chunks(block["text"], chunk_size)]
    elif kind == "thinking":
        opening = {"type": "thinking", "thinking": ""}
        deltas = [
            {"type": "thinking_delta", "thinking": c}
            for c in _chunks(block["thinking"], chunk_size)
        ]
        deltas.append({"type": "signature_delta", "signature": block["signature"]})
    else:
        opening = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
        if "toolset_name" in block:
            opening["toolset_name"] = block["toolset_name"]
        # The API's first input_json_delta is often empty; clients must cope with it.
        deltas = [{"type": "input_json_delta", "partial_json": ""}]
        raw = json.dumps(block["input"])
        deltas += [
            {"type": "input_json_delta", "partial_json": c} for c in _chunks(raw, chunk_size)
        ]
    yield (
        "content_block_start",
        {"type": "content_block_start", "index": index, "content_block": opening},
    )
    for delta in deltas:
        yield "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
    yield "content_block_stop", {"type": "content_block_stop", "index": index}


def sse_frame(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()
