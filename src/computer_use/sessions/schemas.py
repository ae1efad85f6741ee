"""Request and response bodies of the sessions API, named by role."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import (
    BaseModel,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
)

from computer_use.sessions.controls_schemas import (
    APPROVAL_DESCRIPTION,
    ApprovalPolicy,
    RequestBody,
    check_policy,
)
from computer_use.sessions.models import UNTITLED, SessionStatus

# A list offset past this is refused (422) rather than handed to the database driver, which
# cannot bind an integer beyond 64 bits (a 500 before).
MAX_OFFSET = 2**31 - 1
_CONTROL_CHARS = {chr(c) for c in range(32)} - {"\t", "\n", "\r"}


def _reject_control_chars(value: str, what: str) -> str:
    bad = sorted({f"U+{ord(c):04X}" for c in value if c in _CONTROL_CHARS or c == "\x7f"})
    if bad:
        raise ValueError(f"{what} must not contain control characters ({', '.join(bad)})")
    return value


class BudgetSpec(RequestBody):
    """Caps on spending (agent/budget.py); each optional, reaching one ends the run with stop
    reason `budget`."""

    max_steps: int | None = Field(
        default=None, ge=1, le=1_000_000, strict=True, description="Model requests."
    )
    max_tokens: int | None = Field(
        default=None,
        ge=1,
        le=10**12,
        strict=True,
        description="Tokens the model processed: input, cache writes, cache reads and output.",
    )
    max_cost_usd: float | None = Field(
        default=None,
        gt=0,
        le=1_000_000,
        strict=True,
        allow_inf_nan=False,
        description="Those tokens at the model's list prices (GET /api/v1/models), in USD.",
    )
    max_seconds: float | None = Field(
        default=None,
        gt=0,
        le=30 * 86400,
        strict=True,
        allow_inf_nan=False,
        description="Wall time of the runs, in seconds.",
    )

    @model_serializer(mode="wrap")
    def _only_set_caps(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        return {k: v for k, v in data.items() if v is not None}


def budget_caps(budget: BudgetSpec | None) -> dict[str, Any] | None:
    """The caps that are set, as the service takes them (None: no budget given)."""
    return budget.model_dump(exclude_none=True) if budget is not None else None


class Spent(BaseModel):
    """What runs spent: model requests, tokens (by kind and in all), USD, seconds."""

    steps: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    tokens: int = 0
    cost_usd: float | None = Field(
        default=0.0, description="Null when the model has no prices in the catalogue."
    )
    seconds: float = 0.0


BUDGET_DESCRIPTION = (
    "Caps on what all the session's runs may spend together (`spent` says how much they "
    "have); omitted or {}: none."
)


class SessionCreate(RequestBody):
    title: str = Field(
        default=UNTITLED,
        min_length=1,
        max_length=200,
        description="Shown in lists. Omitted: named after the first message.",
    )
    model: str | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@/-]*$",
        description="Claude model id, e.g. claude-sonnet-5-5; DEFAULT_MODEL if omitted. "
        "GET /api/v1/models lists the catalogue; a retired model is refused (422), other ids "
        "are passed to the API as given.",
        examples=["claude-sonnet-5-5"],
    )
    record: bool | None = Field(
        default=None,
        description="Record the screen from the start (GET .../recording); RECORD_SESSIONS "
        "if omitted.",
    )
    budget: BudgetSpec | None = Field(default=None, description=BUDGET_DESCRIPTION)
    approval: ApprovalPolicy = Field(default="auto", description=APPROVAL_DESCRIPTION)

    _approval = field_validator("approval")(classmethod(lambda cls, v: check_policy(v)))

    @field_validator("title")
    @classmethod
    def _title(cls, value: str) -> str:
        value = _reject_control_chars(value, "title").strip()
        if not value:
            raise ValueError("title must not be blank")
        return value


class SessionUpdate(RequestBody):
    """PATCH: only the fields present change."""

    budget: BudgetSpec | None = Field(
        default=None,
        description=BUDGET_DESCRIPTION + " Replaces the whole budget (null or {}: no caps); "
        "a run in progress is held to the new one from its next step.",
    )
    approval: ApprovalPolicy | None = Field(
        default=None,
        description=APPROVAL_DESCRIPTION + " A run going on follows it from its next action.",
    )

    _approval = field_validator("approval")(classmethod(lambda cls, v: check_policy(v)))


class ImageRef(BaseModel):
    id: str
    url: str


class MessagePublic(BaseModel):
    id: int
    role: Literal["user", "assistant"]
    content: list[dict[str, Any]] = Field(
        description="Anthropic content blocks; image blocks carry a `url` instead of base64 data."
    )
    usage: dict[str, Any] | None = None
    created_at: datetime


class SessionPublic(BaseModel):
    id: str
    title: str
    model: str
    model_notice: str | None = Field(
        default=None,
        description="Set when the model is deprecated (it still works; move to the named "
        "replacement) or has been retired since the session began.",
    )
    status: SessionStatus
    status_detail: str | None = Field(default=None, description="Why the status is what it is.")
    host: str | None = Field(
        default=None,
        description="The API process holding the session's desktop (INSTANCE_NAME); with "
        "several processes on one database, requests for its desktop go there (409 elsewhere).",
    )
    processing: bool
    created_at: datetime
    updated_at: datetime
    last_activity_at: datetime
    ttl_remaining_seconds: int = Field(
        description="Seconds of inactivity left before the session expires (0 once expired)."
    )
    display: str | None = Field(default=None, description='X display, e.g. ":101".')
    vnc_port: int | None = Field(
        default=None,
        description="Always null: x11vnc listens on a unix socket only the service reaches; "
        "use vnc_url.",
    )
    browser: Literal["down", "starting", "up"] | None = Field(
        default=None,
        description="The desktop's Firefox: started on first use (a message, or the panel's "
        "Firefox button), so `down` until then.",
    )
    vnc_url: str | None = Field(
        default=None,
        description="Opens the live desktop viewer, view-only (token minted on each read).",
    )
    vnc_interactive_url: str | None = Field(
        default=None,
        description="A viewer that also sends mouse and keyboard (only when ?interactive=true).",
    )
    stream_url: str
    recording: bool = Field(
        default=False, description="Whether the session has a screen recording (GET .../recording)."
    )
    budget: BudgetSpec | None = Field(default=None, description=BUDGET_DESCRIPTION)
    spent: Spent = Field(
        default_factory=Spent, description="What the session's runs have spent, all together."
    )
    approval: ApprovalPolicy = Field(default="auto", description=APPROVAL_DESCRIPTION)
    paused: bool = Field(default=False, description="The agent may not act until resumed.")
    held_by: Literal["agent", "person"] = Field(
        default="agent", description="Who holds the desktop: `person` after Take control."
    )
    pending_approval_id: str | None = Field(
        default=None, description="An action waiting for approval (POST .../approvals/{id})."
    )


class SessionDetail(SessionPublic):
    messages: list[MessagePublic]
    last_event_id: int = Field(
        description="The stream's last event already reflected in `messages`: resume the "
        "stream after it (`Last-Event-ID` or `?after=`) to see only what is new."
    )


class SessionsPublic(BaseModel):
    items: list[SessionPublic]
    total: int
    limit: int
    offset: int


class MessageCreate(RequestBody):
    content: str = Field(
        min_length=1,
        description="The task or follow-up for the agent, sent to the model exactly as typed.",
        examples=["Search the weather in Santiago, Chile"],
    )
    budget: BudgetSpec | None = Field(
        default=None,
        description="Caps on this run alone, on top of the session's budget; omitted: none.",
    )

    @field_validator("content")
    @classmethod
    def _content(cls, value: str) -> str:
        _reject_control_chars(value, "content")
        if not value.strip():
            raise ValueError("content must not be blank")
        return value


class MessageAccepted(BaseModel):
    session_id: str
    status: SessionStatus
    stream_url: str


class CancelResult(BaseModel):
    session_id: str
    cancelled: bool = Field(description="False when nothing was running.")
