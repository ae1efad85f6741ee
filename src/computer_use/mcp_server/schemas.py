"""Structured results of the MCP tools (each also arrives as JSON text for older clients)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from computer_use.sessions.models import SessionStatus


class SessionCreated(BaseModel):
    session_id: str = Field(description="Pass this to the other tools.")
    title: str
    model: str = Field(description="The Claude model the agent of this session uses.")
    status: SessionStatus = Field(description="`active` once the desktop is ready.")
    vnc_url: str | None = Field(
        description="Open in a browser to watch the desktop live (view-only; fresh token)."
    )
    ttl_seconds: int = Field(
        description="Seconds of inactivity after which the session expires and its desktop goes."
    )


class SessionStatusPublic(BaseModel):
    session_id: str
    title: str
    model: str
    status: SessionStatus = Field(
        description="starting, active, processing (a task is running), error or expired."
    )
    status_detail: str | None = Field(description="Why the status is what it is, if known.")
    processing: bool = Field(description="True while a task runs (follow it with wait_for_task).")
    ttl_remaining_seconds: int = Field(
        description="Seconds of inactivity left before the session expires (0 once expired)."
    )
    vnc_url: str | None = Field(
        description="A fresh view-only viewer link; null when the desktop is not running."
    )


class SessionDestroyed(BaseModel):
    session_id: str
    destroyed: bool = Field(description="True: the desktop, its files and the history are gone.")


TaskStatus = Literal[
    "running",
    "waiting_for_approval",
    "waiting_for_answer",
    "completed",
    "stopped",
    "cancelled",
    "failed",
]


class ApprovalAsked(BaseModel):
    approval_id: str = Field(description="Pass this to answer_approval.")
    action: str = Field(description="The kind of action, e.g. type, left_click, bash.")
    description: str = Field(description="What the agent wants to do, e.g. \"type 'hello'\".")
    input: dict[str, Any] = Field(description="The action's input as the model sent it.")


class TaskResult(BaseModel):
    """execute_task, wait_for_task and cancel_task: where the session's latest task stands."""

    session_id: str
    status: TaskStatus = Field(
        description="running: not done yet, call wait_for_task; waiting_for_approval: an "
        "action waits for answer_approval (see approval); waiting_for_answer: the agent asked "
        "a question (see question), answer it with execute_task; completed: the agent "
        "finished; stopped: it ended early (step limit, budget, stuck, max_tokens, refusal, "
        "an approval expired or declined); cancelled: cancel_task stopped it; failed: an "
        "error ended it (see error)."
    )
    done: bool = Field(description="False while the agent is still working.")
    answer: str | None = Field(description="The agent's final answer, once done.")
    steps: int = Field(description="Actions (clicks, keystrokes, commands, ...) taken so far.")
    last_action: str | None = Field(description="The latest action, e.g. 'click at (512, 300)'.")
    error: str | None = Field(description="Why the task failed, when it did.")
    detail: str | None = Field(description="More on how the run ended (e.g. the step limit).")
    next_step: str = Field(description="What to call next.")
    screenshot_url: str | None = Field(
        description="URL of the desktop's current screenshot (PNG; send the API token, if any)."
    )
    approval: ApprovalAsked | None = Field(
        default=None, description="The action waiting for your approval, if any."
    )
    question: str | None = Field(
        default=None, description="The agent's question, when it waits for your answer."
    )


class Screenshot(BaseModel):
    session_id: str
    width: int
    height: int
    mime_type: str = Field(description="image/png")
    url: str = Field(description="Where to fetch a fresh screenshot again (PNG).")


class SessionSummary(BaseModel):
    session_id: str
    title: str
    model: str
    status: SessionStatus
    processing: bool
    created_at: str = Field(description="ISO 8601, UTC.")


class SessionList(BaseModel):
    sessions: list[SessionSummary] = Field(description="Your sessions, newest first.")
    total: int = Field(description="How many sessions you own in all.")
