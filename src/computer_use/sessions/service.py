"""Session lifecycle: create, read, delete, activity/TTL, expiry. Used by REST and MCP alike.

Statuses (docs/API.md): `starting` while the desktop boots, `active` when ready, `processing`
while the agent works, `error` when the desktop failed, `expired` after SESSION_TTL_SECONDS of
inactivity (desktop and files released, history kept).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import selectinload

from computer_use import errors
from computer_use.config import Settings
from computer_use.sessions.models import Message, Session, SessionStatus

if TYPE_CHECKING:
    from computer_use.desktops import Desktop, DesktopManager

logger = logging.getLogger(__name__)

LIVE_STATUSES = (
    SessionStatus.STARTING,
    SessionStatus.ACTIVE,
    SessionStatus.PROCESSING,
    SessionStatus.ERROR,
)


def now() -> datetime:
    return datetime.now(UTC)


class SessionService:
    def __init__(
        self,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        settings: Settings,
        desktops: DesktopManager | None = None,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._settings = settings
        self.desktops = desktops
        self._locks: dict[str, asyncio.Lock] = {}

    def lock(self, session_id: str) -> asyncio.Lock:
        """Serialises state changes of one session (create/delete/expire/run start)."""
        return self._locks.setdefault(session_id, asyncio.Lock())

    # --- reads -------------------------------------------------------------------------

    async def get(self, *, session_id: str, with_messages: bool = False) -> Session:
        async with self._sessionmaker() as db:
            stmt = select(Session).where(Session.id == session_id)
            if with_messages:
                stmt = stmt.options(selectinload(Session.messages))
            session = await db.scalar(stmt)
        if session is None:
            raise errors.NotFound(f"Session {session_id} not found.")
        return session

    async def get_all(self, *, limit: int, offset: int) -> tuple[Sequence[Session], int]:
        async with self._sessionmaker() as db:
            total = await db.scalar(select(func.count()).select_from(Session)) or 0
            rows = await db.scalars(
                select(Session)
                .order_by(Session.created_at.desc(), Session.id)
                .limit(limit)
                .offset(offset)
            )
            return rows.all(), total

    async def get_live_ids(self) -> set[str]:
        async with self._sessionmaker() as db:
            rows = await db.scalars(select(Session.id).where(Session.status.in_(LIVE_STATUSES)))
            return set(rows.all())

    def ttl_remaining(self, session: Session) -> int:
        if session.status == SessionStatus.EXPIRED:
            return 0
        ttl = self._settings.session_ttl_seconds
        if session.status == SessionStatus.PROCESSING:
            return ttl
        idle = (now() - session.last_activity_at).total_seconds()
        return max(0, int(ttl - idle))

    # --- writes ------------------------------------------------------------------------

    async def create(self, *, title: str, model: str | None) -> Session:
        moment = now()
        session = Session(
            id=str(uuid.uuid4()),
            title=title,
            model=model or self._settings.default_model,
            status=SessionStatus.STARTING,
            created_at=moment,
            updated_at=moment,
            last_activity_at=moment,
            last_event_id=0,
        )
        async with self._sessionmaker() as db, db.begin():
            db.add(session)
        return session

    async def set_status(
        self, *, session_id: str, status: SessionStatus, detail: str | None = None
    ) -> Session:
        async with self._sessionmaker() as db, db.begin():
            session = await db.get(Session, session_id)
            if session is None:
                raise errors.NotFound(f"Session {session_id} not found.")
            session.status = status
            session.status_detail = detail
            session.updated_at = now()
        return session

    async def touch(self, *, session_id: str) -> None:
        """Records activity: the TTL counts from the last one."""
        async with self._sessionmaker() as db, db.begin():
            session = await db.get(Session, session_id)
            if session is not None and session.status != SessionStatus.EXPIRED:
                session.last_activity_at = now()

    async def delete(self, *, session_id: str) -> None:
        async with self._sessionmaker() as db, db.begin():
            result = await db.execute(delete(Session).where(Session.id == session_id))
        if result.rowcount == 0:  # type: ignore[attr-defined]
            raise errors.NotFound(f"Session {session_id} not found.")
        self._locks.pop(session_id, None)

    async def add_message(
        self,
        *,
        session_id: str,
        role: str,
        content: list[dict[str, object]],
        usage: dict[str, object] | None = None,
    ) -> Message:
        message = Message(
            session_id=session_id, role=role, content=content, usage=usage, created_at=now()
        )
        async with self._sessionmaker() as db, db.begin():
            db.add(message)
        return message

    async def get_idle_ids(self) -> list[str]:
        """Sessions whose inactivity passed the TTL; a processing session never is."""
        cutoff = now() - timedelta(seconds=self._settings.session_ttl_seconds)
        async with self._sessionmaker() as db:
            rows = await db.scalars(
                select(Session.id).where(
                    Session.status.in_(
                        (SessionStatus.STARTING, SessionStatus.ACTIVE, SessionStatus.ERROR)
                    ),
                    Session.last_activity_at < cutoff,
                )
            )
            return list(rows.all())

    # --- lifecycle with the desktop ---------------------------------------------------

    def desktop(self, session_id: str) -> Desktop | None:
        return self.desktops.get(session_id) if self.desktops is not None else None

    async def open(self, *, title: str, model: str | None) -> Session:
        """Creates a session and its desktop; returns once the desktop is screenshot-able."""
        if self.desktops is not None:
            self.desktops.check_capacity()
        session = await self.create(title=title, model=model)
        if self.desktops is None:
            return await self.set_status(session_id=session.id, status=SessionStatus.ACTIVE)
        async with self.lock(session.id):
            try:
                await self.desktops.create(session.id)
            except errors.CapacityReached:
                await self.delete(session_id=session.id)
                raise
            except Exception as exc:
                logger.exception("desktop of session %s failed to start", session.id)
                await self.set_status(
                    session_id=session.id,
                    status=SessionStatus.ERROR,
                    detail=f"desktop failed to start: {exc}",
                )
                raise errors.ServiceUnavailable(
                    f"The session's desktop failed to start: {exc}"
                ) from exc
            return await self.set_status(session_id=session.id, status=SessionStatus.ACTIVE)

    async def close(self, *, session_id: str) -> None:
        """DELETE: the desktop, its files and the whole history go."""
        await self.get(session_id=session_id)
        async with self.lock(session_id):
            if self.desktops is not None:
                await self.desktops.destroy(session_id, remove_files=True)
            await self.delete(session_id=session_id)

    async def expire(self, *, session_id: str) -> bool:
        """Expiry: desktop and files released, record and history kept. False if it was busy."""
        async with self.lock(session_id):
            session = await self.get(session_id=session_id)
            if session.status in (SessionStatus.PROCESSING, SessionStatus.EXPIRED):
                return False
            if self.desktops is not None:
                await self.desktops.destroy(session_id, remove_files=True)
            await self.set_status(
                session_id=session_id,
                status=SessionStatus.EXPIRED,
                detail=f"expired after {self._settings.session_ttl_seconds} s without activity",
            )
        logger.info("session %s expired", session_id)
        return True

    async def expire_idle(self) -> list[str]:
        expired = []
        for session_id in await self.get_idle_ids():
            try:
                if await self.expire(session_id=session_id):
                    expired.append(session_id)
            except errors.NotFound:
                continue
        return expired

    async def restore_all(self) -> None:
        """After a restart: bring back the desktop of every live session, on its own files."""
        if self.desktops is None:
            return
        for session_id in sorted(await self.get_live_ids()):
            try:
                await self.desktops.restore(session_id)
            except Exception as exc:
                logger.exception("could not restore the desktop of session %s", session_id)
                await self.set_status(
                    session_id=session_id,
                    status=SessionStatus.ERROR,
                    detail=f"desktop restore failed: {exc}",
                )
                continue
            session = await self.get(session_id=session_id)
            if session.status != SessionStatus.ACTIVE:
                await self.set_status(session_id=session_id, status=SessionStatus.ACTIVE)
