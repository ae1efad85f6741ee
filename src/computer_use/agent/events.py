"""The event vocabulary of an agent run: names and payloads, as the SSE stream carries them.

The stable core (the mission's list): `text`, `thinking`, `tool_use`, `tool_result`,
`message_complete`, `error`. Extras: `text_delta`, `thinking_delta` (live typing, may be
ignored: the complete block follows as `text` / `thinking`), `status` (session status) and
`usage` (what the run and the session have spent so far, after each model response).
A person in the loop: `approval_required` / `approval_resolved` (agent/approvals_gate.py),
`paused` / `resumed` (agent/controls.py), `question` (agent/questions.py).
Every run ends with exactly one `message_complete`; a failed run sends `error` just before it.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal, NotRequired, TypedDict


class EventType(StrEnum):
    TEXT = "text"
    THINKING = "thinking"
    TOOL_USE = "tool_use"
    TOOL_RESULT = "tool_result"
    MESSAGE_COMPLETE = "message_complete"
    ERROR = "error"
    TEXT_DELTA = "text_delta"
    THINKING_DELTA = "thinking_delta"
    STATUS = "status"
    USAGE = "usage"
    APPROVAL_REQUIRED = "approval_required"
    APPROVAL_RESOLVED = "approval_resolved"
    PAUSED = "paused"
    RESUMED = "resumed"
    QUESTION = "question"


class TextEvent(TypedDict):
    """A complete text block of the assistant. {"text": "I'll open Firefox."}"""

    text: str


class ThinkingEvent(TypedDict):
    """A complete thinking block (its signature stays in the history, not in events)."""

    thinking: str


class TextDeltaEvent(TypedDict):
    """A piece of the text block being written; `index` is the block's position."""

    index: int
    text: str


class ThinkingDeltaEvent(TypedDict):
    index: int
    thinking: str


class ToolUseEvent(TypedDict):
    """The model asks for a tool. `description` is short and human-readable:
    "click at (512, 300)", "type 'weather Santiago'", "run `ls -la`"."""

    id: str
    name: str  # the tool, or the toolset member ("left_click") when toolset_name is set
    input: dict[str, Any]
    description: str
    toolset_name: NotRequired[str]  # "computer" for a computer toolset member call


class ToolResultEvent(TypedDict):
    """What the tool returned. `output` is its text (or error message when `is_error`);
    `image_url` points at the screenshot it returned, when it returned one."""

    tool_use_id: str
    is_error: bool
    output: str
    image_id: str | None
    image_url: str | None


class Usage(TypedDict):
    """Token totals over every request of the run."""

    input_tokens: int
    output_tokens: int
    cache_creation_input_tokens: int
    cache_read_input_tokens: int


class Totals(TypedDict):
    """What was spent (agent/budget.py): model requests, tokens by kind and in all (`tokens`),
    USD at the model's list prices (None for a model without prices), wall-time seconds."""

    steps: int
    input_tokens: int
    output_tokens: int
    cache_creation_input_tokens: int
    cache_read_input_tokens: int
    tokens: int
    cost_usd: float | None
    seconds: float


class RunAndSession(TypedDict):
    run: Totals
    session: Totals  # every run of the session, this one included


class BudgetCaps(TypedDict, total=False):
    max_steps: int
    max_tokens: int
    max_cost_usd: float
    max_seconds: float


class Budgets(TypedDict):
    run: BudgetCaps | None  # the message's own budget
    session: BudgetCaps | None


class UsageEvent(TypedDict):
    """After each model response: the live totals, and the budgets they are held against."""

    totals: RunAndSession
    budget: Budgets


StopReason = Literal[
    "end_turn",
    "max_tokens",
    "refusal",
    "stop_sequence",
    "max_steps",
    "cancelled",
    "error",
    "budget",
    "stuck",
    "approval_expired",
    "declined",
    "question",
]


class MessageCompleteEvent(TypedDict):
    """The run is over. `stop_reason` is the model's own (end_turn, max_tokens, refusal, ...)
    or ours: max_steps (the step cap was reached), cancelled (the user stopped it), error (an
    `error` event came just before), budget (a cap of the message's or the session's budget
    was reached), stuck (the run's actions stopped changing the screen: agent/stuck.py);
    `detail` says which cap or rule; approval_expired (nobody answered an approval in time),
    declined (the person declined actions until the run could not go on), question (the agent
    asked the person; their next message is the answer). `steps` counts model requests."""

    stop_reason: StopReason
    steps: int
    usage: Usage
    detail: str | None
    totals: NotRequired[RunAndSession]  # absent when a restart interrupted the run


ErrorCode = Literal[
    "authentication_error",
    "permission_error",
    "rate_limit_error",
    "overloaded_error",
    "invalid_request_error",
    "api_error",
    "connection_error",
    "timeout_error",
    "configuration_error",
    "internal_error",
]


class ErrorEvent(TypedDict):
    """Why the run failed, in words a user can act on; never carries the API key.
    `status` is the HTTP status when the API answered; `retryable` says whether trying the
    same message again later may work."""

    code: ErrorCode
    message: str
    status: int | None
    retryable: bool
    request_id: str | None


class StatusEvent(TypedDict):
    """A session status change (starting, active, processing, error, expired)."""

    status: str
