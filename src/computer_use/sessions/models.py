"""Tables of the sessions domain: sessions, their messages and their images."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Enum, ForeignKey, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from computer_use.database import Base, UTCDateTime


class SessionStatus(enum.StrEnum):
    STARTING = "starting"
    ACTIVE = "active"
    PROCESSING = "processing"
    ERROR = "error"
    EXPIRED = "expired"


# A session created without a title keeps this until its first message names it.
UNTITLED = "Untitled session"


class Session(Base):
    __tablename__ = "sessions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    model: Mapped[str] = mapped_column(String(100))
    status: Mapped[SessionStatus] = mapped_column(
        Enum(
            SessionStatus,
            native_enum=False,
            length=20,
            values_callable=lambda e: [m.value for m in e],
        )
    )
    status_detail: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_activity_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    # Highest event id handed out; incremented atomically (UPDATE ... RETURNING) per event.
    last_event_id: Mapped[int] = mapped_column(Integer, default=0)
    # auth.owner_id of the API token that created it; None when authentication is off.
    owner: Mapped[str | None] = mapped_column(String(16), default=None, index=True)
    # Caps on what all its runs may spend, and what they spent (agent/budget.py).
    budget: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    spent: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    # The API process (Settings.instance) whose desktops hold it; None: made before there
    # was one, taken by whichever process restores it.
    host: Mapped[str | None] = mapped_column(String(255), default=None, index=True)
    # Which actions wait for a person (agent/tools/approvals.py): None is "auto", else "ask"
    # or a list of action kinds.
    approval: Mapped[str | list[str] | None] = mapped_column(JSON, default=None)
    # Who holds the desktop while the agent is paused: "person" (took control) or "api"
    # (POST .../pause); None: the agent may act.
    paused_by: Mapped[str | None] = mapped_column(String(16), default=None)

    messages: Mapped[list[Message]] = relationship(
        back_populates="session",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="Message.id",
    )

    @property
    def processing(self) -> bool:
        """A run is going on (what REST and MCP say as `processing`)."""
        return self.status == SessionStatus.PROCESSING


class Message(Base):
    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), index=True
    )
    role: Mapped[str] = mapped_column(String(16))
    # Anthropic content blocks in storage form: image sources reference `images.id`.
    content: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    usage: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    # The session's last event id when this turn was stored: its events are all at or below
    # it, so a client showing the history resumes the stream after it without duplicates.
    last_event_id: Mapped[int | None] = mapped_column(Integer, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    session: Mapped[Session] = relationship(back_populates="messages")


class Image(Base):
    __tablename__ = "images"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    session_id: Mapped[str] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), index=True
    )
    media_type: Mapped[str] = mapped_column(String(32))
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Approval(Base):
    """One action that waited for a person's decision (agent/approvals_gate.py)."""

    __tablename__ = "approvals"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    session_id: Mapped[str] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), index=True
    )
    tool_use_id: Mapped[str | None] = mapped_column(String(100), default=None)
    kind: Mapped[str] = mapped_column(String(32))
    input: Mapped[dict[str, Any]] = mapped_column(JSON)
    description: Mapped[str] = mapped_column(Text)
    # pending, then approved, declined, expired, or interrupted (the run ended first)
    state: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
