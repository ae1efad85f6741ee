"""EventStore on the database: per-session increasing ids, kept for replay.

With `notify_channel` (PostgreSQL only), each append also sends `NOTIFY channel,
'<session id>:<event id>'` in the same transaction: PostgreSQL delivers it on commit only, so a
listener that reads the store on the notification always finds the row (streaming/pgbus.py).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from computer_use.database import transaction
from computer_use.sessions.models import Session
from computer_use.streaming.bus import StoredEvent
from computer_use.streaming.models import Event


class DatabaseEventStore:
    def __init__(
        self, sessionmaker: async_sessionmaker[AsyncSession], *, notify_channel: str | None = None
    ) -> None:
        self._sessionmaker = sessionmaker
        self._notify_channel = notify_channel

    async def append(self, session_id: str, type: str, data: dict[str, Any]) -> StoredEvent:
        now = datetime.now(UTC)
        async with transaction(self._sessionmaker) as db:
            # The counter lives on the session row: one atomic UPDATE ... RETURNING hands out
            # the next id on SQLite and PostgreSQL alike, with no race between writers.
            next_id = (
                await db.execute(
                    update(Session)
                    .where(Session.id == session_id)
                    .values(last_event_id=Session.last_event_id + 1)
                    .returning(Session.last_event_id)
                )
            ).scalar_one()
            db.add(Event(session_id=session_id, id=next_id, type=type, data=data, created_at=now))
            if self._notify_channel is not None:
                await db.execute(
                    select(func.pg_notify(self._notify_channel, f"{session_id}:{next_id}"))
                )
        return StoredEvent(id=next_id, type=type, data=data, created_at=now)

    async def since(self, session_id: str, after_id: int, limit: int = 1000) -> list[StoredEvent]:
        async with self._sessionmaker() as db:
            rows = (
                await db.scalars(
                    select(Event)
                    .where(Event.session_id == session_id, Event.id > after_id)
                    .order_by(Event.id)
                    .limit(limit)
                )
            ).all()
        return [StoredEvent(r.id, r.type, r.data, r.created_at) for r in rows]
