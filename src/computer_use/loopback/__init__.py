"""A loopback server that speaks the Anthropic Messages API, scripted turn by turn.

Tests and the offline demo point the real `anthropic` SDK at it (`base_url`). It answers JSON
and streaming requests, validates them the way the API does where it matters to us (tool_use /
tool_result pairing, cache_control count, roles, tool definitions, thinking signatures, beta
flags), records every request, and simulates prompt-cache usage.
"""

from computer_use.loopback.demo import demo_responder
from computer_use.loopback.script import (
    Fail,
    RecordedRequest,
    Reply,
    Responder,
    ScriptItem,
    Text,
    Thinking,
    ToolUse,
    Turn,
    authentication_error,
    bash,
    computer,
    edit,
    invalid_request,
    member,
    overloaded,
    rate_limited,
    say,
)
from computer_use.loopback.server import LoopbackModelServer

__all__ = [
    "Fail",
    "LoopbackModelServer",
    "RecordedRequest",
    "Reply",
    "Responder",
    "ScriptItem",
    "Text",
    "Thinking",
    "ToolUse",
    "Turn",
    "authentication_error",
    "bash",
    "computer",
    "demo_responder",
    "edit",
    "invalid_request",
    "member",
    "overloaded",
    "rate_limited",
    "say",
]
