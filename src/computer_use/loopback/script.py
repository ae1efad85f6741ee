"""What the loopback model says: scripted turns, and the requests it received.

A script is a list of turns consumed one per request, or a `Responder` (a function of the
request) asked for every request. A list item may itself be a responder, for the one step that
has to look at the request ("click where the button is").
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Text:
    text: str


@dataclass(frozen=True)
class Thinking:
    """A thinking block; the server signs it and later checks it comes back unchanged."""

    thinking: str


@dataclass(frozen=True)
class ToolUse:
    """A tool call; with `toolset_name` ("computer"), a call of that toolset's member `name`."""

    name: str
    input: Mapping[str, Any]
    id: str | None = None  # generated when None
    toolset_name: str | None = None


Block = Text | Thinking | ToolUse


@dataclass(frozen=True)
class Reply:
    """One assistant message. stop_reason defaults to tool_use when a ToolUse is present."""

    blocks: Sequence[Block]
    stop_reason: str | None = None

    @property
    def effective_stop_reason(self) -> str:
        if self.stop_reason is not None:
            return self.stop_reason
        return "tool_use" if any(isinstance(b, ToolUse) for b in self.blocks) else "end_turn"


@dataclass(frozen=True)
class Fail:
    """An error answer in the API's documented shape.

    `mid_stream` sends it as an SSE `error` event after some content instead of an HTTP
    status (streaming requests only), as the API does when it overloads mid-response.
    """

    status: int
    type: str
    message: str
    retry_after: float | None = None
    mid_stream: bool = False


Turn = Reply | Fail
Responder = Callable[["RecordedRequest"], Turn | Awaitable[Turn]]
ScriptItem = Turn | Responder


def say(text: str, *tools: ToolUse, thinking: str | None = None) -> Reply:
    """Shorthand: optional thinking, a text block, then tool calls."""
    blocks: list[Block] = [Thinking(thinking)] if thinking else []
    if text:
        blocks.append(Text(text))
    blocks.extend(tools)
    return Reply(blocks)


def computer(action: str, **params: Any) -> ToolUse:
    return ToolUse("computer", {"action": action, **params})


def member(name: str, **params: Any) -> ToolUse:
    """A computer toolset member call (computer_toolset_20260801), e.g. member("left_click",
    coordinate=[120, 90])."""
    return ToolUse(name, params, toolset_name="computer")


def bash(command: str | None = None, *, restart: bool = False) -> ToolUse:
    params: dict[str, Any] = {"restart": True} if restart else {"command": command}
    return ToolUse("bash", params)


def edit(command: str, path: str, **params: Any) -> ToolUse:
    return ToolUse("str_replace_based_edit_tool", {"command": command, "path": path, **params})


def authentication_error() -> Fail:
    return Fail(401, "authentication_error", "invalid x-api-key")


def rate_limited(retry_after: float = 1.0) -> Fail:
    return Fail(
        429,
        "rate_limit_error",
        "Number of request tokens has exceeded your per-minute rate limit.",
        retry_after=retry_after,
    )


def overloaded(*, mid_stream: bool = False) -> Fail:
    return Fail(529, "overloaded_error", "Overloaded", mid_stream=mid_stream)


def invalid_request(message: str) -> Fail:
    return Fail(400, "invalid_request_error", message)


@dataclass
class RecordedRequest:
    """One request as the server received it; `rejection` is set when validation failed."""

    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    body: dict[str, Any]
    rejection: str | None = None
    status: int | None = None  # the HTTP status the server answered
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def api_key(self) -> str | None:
        """The credential sent: `x-api-key`, or a bearer token (anthropic 2.x sends the key so)."""
        bearer = self.headers.get("authorization", "")
        if bearer.lower().startswith("bearer "):
            return bearer[7:].strip() or None
        return self.headers.get("x-api-key")

    @property
    def betas(self) -> list[str]:
        raw = self.headers.get("anthropic-beta", "")
        return [b.strip() for b in raw.split(",") if b.strip()]

    @property
    def messages(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = self.body.get("messages", [])
        return messages

    @property
    def tools(self) -> list[dict[str, Any]]:
        tools: list[dict[str, Any]] = self.body.get("tools", [])
        return tools

    @property
    def tool_names(self) -> list[str]:
        return [str(t.get("name")) for t in self.tools if "name" in t]

    @property
    def toolset_names(self) -> list[str]:
        """The toolset families declared ("computer" for computer_toolset_20260801)."""
        return [
            str(t["type"]).split("_toolset_")[0]
            for t in self.tools
            if "_toolset_" in str(t.get("type", ""))
        ]

    @property
    def computer_tool_type(self) -> str | None:
        """The computer tool or toolset type the request declared."""
        for tool in self.tools:
            kind = str(tool.get("type", ""))
            if kind.startswith("computer_"):
                return kind
        return None

    def tool(self, name: str) -> dict[str, Any] | None:
        return next((t for t in self.tools if t.get("name") == name), None)

    @property
    def display_size(self) -> tuple[int, int] | None:
        """The (width, height) advertised in the computer tool definition."""
        tool = self.tool("computer")
        if tool is None or "display_width_px" not in tool:
            return None
        return int(tool["display_width_px"]), int(tool["display_height_px"])

    def last_tool_results(self) -> list[dict[str, Any]]:
        """The tool_result blocks of the last user message."""
        if not self.messages or self.messages[-1].get("role") != "user":
            return []
        content = self.messages[-1].get("content")
        if not isinstance(content, list):
            return []
        return [b for b in content if isinstance(b, dict) and b.get("type") == "tool_result"]

    def last_tool_result_text(self) -> str:
        texts: list[str] = []
        for result in self.last_tool_results():
            content = result.get("content")
            if isinstance(content, str):
                texts.append(content)
            elif isinstance(content, list):
                texts.extend(str(c.get("text", "")) for c in content if c.get("type") == "text")
        return "\n".join(texts)

    def count_cache_breakpoints(self) -> int:
        return count_cache_control(self.body)

    def image_count(self) -> int:
        return count_blocks(self.messages, "image")


def count_blocks(node: object, block_type: str) -> int:
    """Blocks of `block_type` anywhere under `node` (tool_result content included)."""
    if isinstance(node, dict):
        own = 1 if node.get("type") == block_type else 0
        return own + sum(count_blocks(v, block_type) for v in node.values())
    if isinstance(node, list):
        return sum(count_blocks(v, block_type) for v in node)
    return 0


def count_cache_control(node: object) -> int:
    """cache_control markers anywhere in a request body (blocks, tools, system, top level)."""
    if isinstance(node, dict):
        own = 1 if node.get("cache_control") else 0
        return own + sum(count_cache_control(v) for k, v in node.items() if k != "cache_control")
    if isinstance(node, list):
        return sum(count_cache_control(v) for v in node)
    return 0
