"""Structured results of the MCP tools (each also arrives as JSON text for older clients)."""

from __future__ import annotations

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
    processing: bool = Field(description="True while a task runs; execute_task waits until false.")
    ttl_remaining_seconds: int = Field(
        description="Seconds of inactivity left before the session expires (0 once expired)."
    )
    vnc_url: str | None = Field(
        description="A fresh view-only viewer link; null when the desktop is not running."
    )


class SessionDestroyed(BaseModel):
    session_id: str
    destroyed: bool = Field(description="True: the desktop, its files and the history are gone.")
