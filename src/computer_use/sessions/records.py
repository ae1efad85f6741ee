"""Session records in the database: reads, writes, activity and the TTL clock.

`SessionService` (service.py) adds the session's life with its desktop on top of these.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, delete, exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import selectinload

from computer_use import errors
from computer_use.agent import budget as budgets
from computer_use.agent import catalogue
from computer_use.agent.tools.approvals import stored_policy
from computer_use.config import Settings
from computer_use.database import transaction
from computer_use.sessions.models import UNTITLED, Message, Session, SessionStatus

LIVE_STATUSES = (
    SessionStatus.STARTING,
    SessionStatus.ACTIVE,
    SessionStatus.PROCESSING,
    SessionStatus.ERROR,
)


TITLE_FROM_MESSAGE_CHARS = 60


def image_url(session_id: str, image_id: str) -> str:
    """Where a stored screenshot is served (GET .../images/{image_id})."""
    return f"/api/v1/sessions/{session_id}/images/{image_id}"


def now() -> datetime:
    return datetime.now(UTC)


class SessionRecords:
    def __init__(
        self, *, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
    ) -> None:
        self._sessionmaker = self.sessionmaker = sessionmaker
        self._settings = settings
        self._locks: dict[str, asyncio.Lock] = {}

    def lock(self, session_id: str) -> asyncio.Lock:
        """Serialises state changes of one session (create/delete/expire/run start)."""
        return self._locks.setdefault(session_id, asyncio.Lock())

    # --- reads -------------------------------------------------------------------------

    async def get(
        self, *, session_id: str, with_messages: bool = False, owner: str | None = None
    ) -> Session:
        """`owner` (auth on): another owner's session is NotFound, exactly like a missing one."""
        async with self._sessionmaker() as db:
            stmt = select(Session).where(Session.id == session_id)
            if owner is not None:
                stmt = stmt.where(Session.owner == owner)
            if with_messages:
                stmt = stmt.options(selectinload(Session.messages))
            session = await db.scalar(stmt)
        if session is None:
            raise errors.NotFound(f"Session {session_id} not found.")
        return session

    async def get_all(
        self, *, limit: int, offset: int, owner: str | None = None
    ) -> tuple[Sequence[Session], int]:
        mine = () if owner is None else (Session.owner == owner,)
        async with self._sessionmaker() as db:
            total = await db.scalar(select(func.count()).select_from(Session).where(*mine)) or 0
            rows = await db.scalars(
                select(Session)
                .where(*mine)
                .order_by(Session.created_at.desc(), Session.id)
                .limit(limit)
                .offset(offset)
            )
            return rows.all(), total

    async def get_all_ids(self) -> set[str]:
        async with self._sessionmaker() as db:
            return set((await db.scalars(select(Session.id))).all())

    def _held_here(self) -> ColumnElement[bool]:
        """Sessions whose desktop this process holds (or none does yet): the only ones it
        restores and expires when several processes share the database."""
        return or_(Session.host == self._settings.instance, Session.host.is_(None))

    def check_held_here(self, session: Session) -> None:
        """Conflict naming the process that holds the session's desktop, if not this one:
        with several API processes on one database, its desktop, run, files and VNC are
        there (docs/SCALING.md)."""
        here = self._settings.instance
        if session.host is not None and session.host != here:
            raise errors.Conflict(
                f"Session {session.id} runs on {session.host}, not on this server ({here}):"
                " send requests that use its desktop or change it there (reads work anywhere).",
                details={"host": session.host},
            )

    async def get_live_ids(self) -> set[str]:
        """The live sessions held here."""
        async with self._sessionmaker() as db:
            rows = await db.scalars(
                select(Session.id).where(Session.status.in_(LIVE_STATUSES), self._held_here())
            )
            return set(rows.all())

    @staticmethod
    def check_not_expired(
        session: Session, then: str = "create a new session to continue."
    ) -> None:
        """SessionExpired (409) once the session has expired: the one place of that rule.
        Its desktop and files are gone with it, its history is kept; `then` says what to do."""
        if session.status == SessionStatus.EXPIRED:
            raise errors.SessionExpired(
                f"This session has expired: its desktop and files were deleted, its history "
                f"is kept; {then}"
            )

    def ttl_remaining(self, session: Session) -> int:
        if session.status == SessionStatus.EXPIRED:
            return 0
        ttl = self._settings.session_ttl_seconds
        if session.processing:
            return ttl
        idle = (now() - session.last_activity_at).total_seconds()
        return max(0, int(ttl - idle))

    # --- writes ------------------------------------------------------------------------

    def check_model(self, model: str | None) -> str:
        """The model a new session gets (`model` or DEFAULT_MODEL). The one rule REST, MCP and
        the console share: a retired model is refused (422, naming its retirement date and
        replacement); a deprecated or unknown one is accepted (see model_notice)."""
        chosen = model or self._settings.default_model
        try:
            catalogue.check_usable(chosen)
        except catalogue.RetiredModel as exc:
            raise errors.InvalidInput(str(exc), details={"model": chosen}) from None
        return chosen

    def check_budget(self, model: str, budget: dict[str, Any] | None) -> dict[str, Any] | None:
        """The budget as stored (None: no caps); 422 when `model` cannot be held to it."""
        caps = budgets.Budget.from_dict(budget)
        try:
            budgets.check(model, caps)
        except ValueError as exc:
            raise errors.InvalidInput(str(exc), details={"budget": budget}) from None
        return caps.to_dict() if caps else None

    async def create(
        self,
        *,
        title: str,
        model: str | None,
        owner: str | None = None,
        budget: dict[str, Any] | None = None,
        approval: str | list[str] | None = None,
        session_id: str | None = None,
    ) -> Session:
        """A new session's row, `starting`. `session_id`: the id made ahead for it (a
        pooled desktop's on a Ray cluster: cluster/pool.py); by default a new one."""
        chosen = self.check_model(model)
        budget = self.check_budget(chosen, budget)
        moment = now()
        session = Session(
            id=session_id or str(uuid.uuid4()),
            owner=owner,
            title=title,
            model=chosen,
            status=SessionStatus.STARTING,
            host=self._settings.instance,
            created_at=moment,
            updated_at=moment,
            last_activity_at=moment,
            last_event_id=0,
            budget=budget,
            approval=stored_policy(approval),
        )
        async with transaction(self._sessionmaker) as db:
            db.add(session)
        return session

    async def update(
        self,
        *,
        session_id: str,
        owner: str | None = None,
        approval: str | list[str] | None = None,
        **changes: Any,
    ) -> Session:
        """PATCH: sets the given fields (`budget`) and the approval policy, in one write; the
        session as it is then. NotFound, a 422 for an unusable budget, then Conflict when
        another API process holds the session (its run follows both: check_held_here)."""
        session = await self.get(session_id=session_id, owner=owner)
        if "budget" in changes:
            changes["budget"] = self.check_budget(session.model, changes["budget"])
        self.check_held_here(session)  # before any write: the run to follow it is there
        if approval is not None:
            changes["approval"] = stored_policy(approval)
        async with transaction(self._sessionmaker) as db:
            updated: Session | None = await db.scalar(
                update(Session)
                .where(Session.id == session_id)
                .values(**changes, updated_at=now())
                .returning(Session)
            )
        if updated is None:
            raise errors.NotFound(f"Session {session_id} not found.")
        return updated

    async def touch(self, *, session_id: str) -> None:
        """Records activity: the TTL counts from the last one."""
        async with transaction(self._sessionmaker) as db:
            await db.execute(
                update(Session)
                .where(Session.id == session_id, Session.status != SessionStatus.EXPIRED)
                .values(last_activity_at=now())
            )

    async def delete(self, *, session_id: str) -> None:
        async with transaction(self._sessionmaker) as db:
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
        async with self._sessionmaker() as db:  # read apart from the write (see transition)
            last_event_id = await db.scalar(
                select(Session.last_event_id).where(Session.id == session_id)
            )
        if last_event_id is None:
            raise errors.NotFound(f"Session {session_id} not found.")
        async with transaction(self._sessionmaker) as db:
            if role == "user":
                await self._name_untitled(db, session_id, content)
            message = Message(
                session_id=session_id,
                role=role,
                content=content,
                usage=usage,
                last_event_id=last_event_id,
                created_at=now(),
            )
            db.add(message)
        return message

    @staticmethod
    async def _name_untitled(
        db: AsyncSession, session_id: str, content: list[dict[str, object]]
    ) -> None:
        """An untitled session takes its name from its first message's text."""
        text = " ".join(str(b.get("text", "")) for b in content if b.get("type") == "text")
        words = " ".join(text.split())
        if not words:
            return
        limit = TITLE_FROM_MESSAGE_CHARS
        title = words if len(words) <= limit else words[: limit - 1].rstrip() + "…"
        first = ~exists().where(Message.session_id == session_id)
        await db.execute(
            update(Session)
            .where(Session.id == session_id, Session.title == UNTITLED, first)
            .values(title=title)
        )

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
                    self._held_here(),
                )
            )
            return list(rows.all())
