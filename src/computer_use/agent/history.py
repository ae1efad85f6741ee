"""Conversation history in two forms, and keeping it valid for the API.

API form: what the Messages API takes, images as base64 sources.
Storage form: the same, with each image replaced by a reference to a stored file,
`{"type": "image", "source": {"type": "stored", "image_id": "...", "media_type": "image/png"}}`,
so a row holds kilobytes, not megabytes of repeated base64.

`to_api` rebuilds the API form of a stored history and repairs what an interrupted process may
have left: consecutive user messages are merged, and a `tool_use` without its `tool_result`
gets an "interrupted" one, so the next request is valid.
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from anthropic.types.beta import BetaContentBlock

from computer_use.agent.context import prune_images
from computer_use.agent.tools.base import ToolResult

Message = dict[str, Any]
ImageSaver = Callable[[bytes], Awaitable[str]]
ImageLoader = Callable[[str], Awaitable[bytes]]

INTERRUPTED = "interrupted by the user"
NO_OUTPUT = "(no output)"


def base64_image(png: bytes, media_type: str = "image/png") -> dict[str, Any]:
    data = base64.b64encode(png).decode()
    return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}


def stored_image(image_id: str, media_type: str = "image/png") -> dict[str, Any]:
    source = {"type": "stored", "image_id": image_id, "media_type": media_type}
    return {"type": "image", "source": source}


def tool_result_block(
    tool_use_id: str,
    result: ToolResult,
    image: dict[str, Any] | None,
    toolset_name: str | None = None,
) -> dict[str, Any]:
    """The tool_result answering one call; a toolset member's echoes its `toolset_name` (the
    API requires it there)."""
    content: list[dict[str, Any]] = []
    if result.text:
        content.append({"type": "text", "text": result.text})
    if image is not None:
        content.append(image)
    if not content:  # the API refuses empty text blocks; say so explicitly instead
        content.append({"type": "text", "text": NO_OUTPUT})
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": tool_use_id, "content": content}
    if toolset_name is not None:
        block["toolset_name"] = toolset_name
    if result.is_error:
        block["is_error"] = True
    return block


def response_block_param(block: BetaContentBlock) -> dict[str, Any]:
    """A response block as it must be sent back (thinking with its signature, untouched)."""
    if block.type == "text":
        return {"type": "text", "text": block.text}
    if block.type == "thinking":
        return {"type": "thinking", "thinking": block.thinking, "signature": block.signature}
    if block.type == "redacted_thinking":
        return {"type": "redacted_thinking", "data": block.data}
    if block.type == "tool_use":
        param: dict[str, Any] = {
            "type": "tool_use",
            "id": block.id,
            "name": block.name,
            "input": block.input,
        }
        if block.toolset_name is not None:
            param["toolset_name"] = block.toolset_name
        return param
    return block.model_dump(mode="json", exclude_none=True)


def interrupted_result(
    tool_use_id: str, reason: str = INTERRUPTED, toolset_name: str | None = None
) -> dict[str, Any]:
    return tool_result_block(tool_use_id, ToolResult(error=reason), None, toolset_name)


def tool_uses(message: Message) -> dict[str, str | None]:
    """id -> toolset_name (None for a plain tool) of an assistant turn's tool_use blocks."""
    content = message.get("content")
    if message.get("role") != "assistant" or not isinstance(content, list):
        return {}
    return {str(b["id"]): b.get("toolset_name") for b in content if b.get("type") == "tool_use"}


def tool_use_ids(message: Message) -> list[str]:
    return list(tool_uses(message))


def _blocks(content: object) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    return list(content) if isinstance(content, list) else []


def append_user(messages: list[Message], content: str | Iterable[dict[str, Any]]) -> None:
    """Append a user turn, merged into the last message when that is a user turn too (a run
    that was cancelled or failed before the model answered leaves one behind)."""
    blocks = _blocks(content if isinstance(content, str) else list(content))
    if messages and messages[-1].get("role") == "user":
        last = messages[-1]
        messages[-1] = {**last, "content": [*_blocks(last.get("content")), *blocks]}
    else:
        messages.append({"role": "user", "content": blocks})


def repair(messages: Sequence[Message]) -> list[Message]:
    """A copy with roles alternating from a user turn, and every tool_use answered."""
    merged: list[Message] = []
    for message in messages:
        if not merged and message.get("role") != "user":
            continue  # the API requires the first turn to be the user's
        if merged and merged[-1].get("role") == message.get("role"):
            last = merged[-1]
            both = [*_blocks(last.get("content")), *_blocks(message.get("content"))]
            merged[-1] = {**last, "content": both}
        else:
            merged.append({**message, "content": _blocks(message.get("content"))})
    repaired: list[Message] = []
    for index, message in enumerate(merged):
        repaired.append(message)
        ids = tool_uses(message)
        if not ids:
            continue
        following = merged[index + 1] if index + 1 < len(merged) else None
        answered = {
            b.get("tool_use_id")
            for b in (following or {}).get("content", [])
            if b.get("type") == "tool_result"
        }
        missing = [
            interrupted_result(i, toolset_name=toolset)
            for i, toolset in ids.items()
            if i not in answered
        ]
        if missing and following is None:
            repaired.append({"role": "user", "content": missing})
        elif missing and following is not None:
            # tool_result blocks must come first in the user turn
            following["content"] = [*missing, *following["content"]]
    return repaired


async def to_storage(message: Message, save_image: ImageSaver) -> Message:
    """Storage form of an API-form message: base64 images saved and replaced by references."""
    result = copy.deepcopy(message)

    async def convert(blocks: list[dict[str, Any]]) -> None:
        for i, block in enumerate(blocks):
            if block.get("type") == "image" and block["source"].get("type") == "base64":
                png = base64.b64decode(block["source"]["data"])
                blocks[i] = stored_image(await save_image(png), block["source"]["media_type"])
            elif block.get("type") == "tool_result" and isinstance(block.get("content"), list):
                await convert(block["content"])

    if isinstance(result.get("content"), list):
        await convert(result["content"])
    return result


async def to_api(
    stored: Sequence[Message],
    load_image: ImageLoader,
    *,
    keep_images: int | None = None,
    chunk: int = 1,
) -> list[Message]:
    """API form of a stored history, repaired. With `keep_images`, screenshots the loop would
    prune anyway are not loaded at all (the same chunked rule, so the result is identical)."""
    # Only role and content belong to the API form (stored turns may carry e.g. `usage`).
    messages = repair([{"role": m["role"], "content": copy.deepcopy(m["content"])} for m in stored])
    if keep_images is not None:
        messages = prune_images(messages, keep_images, chunk)

    async def convert(blocks: list[dict[str, Any]]) -> None:
        for i, block in enumerate(blocks):
            if block.get("type") == "image" and block["source"].get("type") == "stored":
                png = await load_image(block["source"]["image_id"])
                blocks[i] = base64_image(png, block["source"].get("media_type", "image/png"))
            elif block.get("type") == "tool_result" and isinstance(block.get("content"), list):
                await convert(block["content"])

    for message in messages:
        await convert(message["content"])
    return messages
