"""Session lifecycle: create, read, delete, activity/TTL, expiry. Used by REST and MCP alike.

Statuses (docs/API.md): `starting` while the desktop boots, `active` when ready, `processing`
while the agent works, `error` when the desktop failed, `expired` after SESSION_TTL_SECONDS of
inactivity (desktop and files released, history kept).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import ColumnElement, delete, exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import selectinload

from computer_use import errors
from computer_use.agent import catalogue, history
from computer_use.config import Settings
from computer_use.database import transaction
from computer_use.desktops import DesktopCapacityError
from computer_use.sessions.models import UNTITLED, Message, Session, SessionStatus

if TYPE_CHECKING:
    from computer_use.desktops import Desktop, DesktopManager
    from computer_use.desktops.recorder import Recordings
    from computer_use.streaming.bus import EventBus

CloseHook = Callable[..., Awaitable[None]]

logger = logging.getLogger(__name__)

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


class SessionService:
    def __init__(
        self,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        settings: Settings,
        desktops: DesktopManager | None = None,
        bus: EventBus | None = None,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._settings = settings
        self.desktops = desktops
        self.bus = bus
        self.recordings: Recordings | None = None
        # Called with session_id=... before a session's desktop goes (delete or expiry).
        self.before_close: list[CloseHook] = []
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

    async def get_live_ids(self) -> set[str]:
        """The live sessions held here."""
        async with self._sessionmaker() as db:
            rows = await db.scalars(
                select(Session.id).where(Session.status.in_(LIVE_STATUSES), self._held_here())
            )
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

    async def create(self, *, title: str, model: str | None, owner: str | None = None) -> Session:
        chosen = self.check_model(model)
        moment = now()
        session = Session(
            id=str(uuid.uuid4()),
            owner=owner,
            title=title,
            model=chosen,
            status=SessionStatus.STARTING,
            host=self._settings.instance,
            created_at=moment,
            updated_at=moment,
            last_activity_at=moment,
            last_event_id=0,
        )
        async with transaction(self._sessionmaker) as db:
            db.add(session)
        return session

    async def set_status(
        self, *, session_id: str, status: SessionStatus, detail: str | None = None
    ) -> Session:
        # Writes are single statements (no read first): on SQLite a transaction that reads and
        # then writes cannot wait for the lock and fails with "database is locked" under load.
        async with transaction(self._sessionmaker) as db:
            session: Session | None = await db.scalar(
                update(Session)
                .where(Session.id == session_id)
                .values(status=status, status_detail=detail, updated_at=now())
                .returning(Session)
            )
        if session is None:
            raise errors.NotFound(f"Session {session_id} not found.")
        return session

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
        async with self._sessionmaker() as db:  # read apart from the write (see set_status)
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

    # --- lifecycle with the desktop ---------------------------------------------------

    def desktop(self, session_id: str) -> Desktop | None:
        return self.desktops.get(session_id) if self.desktops is not None else None

    def check_held_here(self, session: Session) -> None:
        """Conflict naming the process that holds the session's desktop, if not this one:
        with several API processes on one database, its desktop, run, files and VNC are
        there (docs/SCALING.md)."""
        here = self._settings.instance
        if session.host is not None and session.host != here:
            raise errors.Conflict(
                f"Session {session.id} runs on {session.host}, not on this server ({here}):"
                " send requests for its desktop, messages, files, cancel and delete there.",
                details={"host": session.host},
            )

    def require_desktop(self, session: Session) -> Desktop:
        """The running desktop of a live session held here (Conflict when another process
        holds it, ServiceUnavailable while it is not running)."""
        self.check_held_here(session)
        desktop = self.desktop(session.id)
        if desktop is None:
            raise errors.ServiceUnavailable("The session's desktop is not running right now.")
        return desktop

    async def publish(self, session_id: str, type: str, data: dict[str, object]) -> None:
        if self.bus is not None:
            await self.bus.publish(session_id, type, data)

    async def publish_error(
        self, session_id: str, code: str, message: str, *, retryable: bool = True, **extra: str
    ) -> None:
        """An `error` event in the agent's shape (agent.events.ErrorEvent)."""
        data: dict[str, object] = {
            "code": code,
            "message": message,
            "status": None,
            "retryable": retryable,
            "request_id": None,
        }
        await self.publish(session_id, "error", {**data, **extra})

    async def _set_and_publish(
        self, session_id: str, status: SessionStatus, detail: str | None = None
    ) -> Session:
        session = await self.set_status(session_id=session_id, status=status, detail=detail)
        await self.publish(session_id, "status", {"status": status, "detail": detail})
        return session

    async def open(
        self,
        *,
        title: str,
        model: str | None,
        owner: str | None = None,
        record: bool | None = None,
    ) -> Session:
        """Creates a session and its desktop; returns once the desktop is screenshot-able.
        `record` (default RECORD_SESSIONS): the screen is recorded from the start."""
        session = await self.create(title=title, model=model, owner=owner)
        if self.desktops is None:
            return await self.set_status(session_id=session.id, status=SessionStatus.ACTIVE)
        async with self.lock(session.id):
            try:
                await self.desktops.create(session.id)
            except DesktopCapacityError as exc:
                await self.delete(session_id=session.id)
                raise errors.CapacityReached(
                    f"All {self._settings.max_displays} desktops are in use (MAX_DISPLAYS); "
                    "delete a session or try again later.",
                    retry_after=exc.retry_after,
                ) from None
            except Exception as exc:
                logger.exception("desktop of session %s failed to start", session.id)
                await self.delete(session_id=session.id)
                raise errors.ServiceUnavailable(
                    f"The session's desktop failed to start: {exc}"
                ) from exc
            if self._settings.record_sessions if record is None else record:
                await self._start_recording(session.id)
            return await self._set_and_publish(session.id, SessionStatus.ACTIVE)

    async def _start_recording(self, session_id: str) -> None:
        desktop = self.desktop(session_id)
        if self.recordings is not None and desktop is not None:
            spec = desktop.spec
            await self.recordings.start(session_id, spec.display, spec.width, spec.height)

    async def _release_desktop(self, session_id: str, *, expiring: bool = False) -> None:
        for hook in self.before_close:
            await hook(session_id=session_id)
        if self.recordings is not None:  # kept on expiry unless RECORDINGS_ON_EXPIRY=delete
            if expiring and self._settings.recordings_on_expiry == "keep":
                await self.recordings.stop(session_id)
            else:
                await self.recordings.remove(session_id)
        if self.bus is not None:
            self.bus.close(session_id)
        if self.desktops is None:
            return
        if self.desktops.get(session_id) is not None:
            await self.desktops.destroy(session_id, remove_files=True)
        else:  # not running (failed, or never restored): its files may still be on disk
            await self.desktops.homes.remove(session_id)

    async def close(self, *, session_id: str, owner: str | None = None) -> None:
        """DELETE: the desktop, its files and the whole history go."""
        self.check_held_here(await self.get(session_id=session_id, owner=owner))
        async with self.lock(session_id):
            await self._release_desktop(session_id)
            await self.delete(session_id=session_id)

    async def expire(self, *, session_id: str) -> bool:
        """Expiry: desktop and files released, record and history kept. False if it was busy."""
        async with self.lock(session_id):
            session = await self.get(session_id=session_id)
            if session.status in (SessionStatus.PROCESSING, SessionStatus.EXPIRED):
                return False
            if (
                now() - session.last_activity_at
            ).total_seconds() < self._settings.session_ttl_seconds:
                return False  # touched since it was picked
            await self._set_and_publish(
                session_id,
                SessionStatus.EXPIRED,
                f"expired after {self._settings.session_ttl_seconds} s without activity",
            )
            await self._release_desktop(session_id, expiring=True)
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
        """After a restart: bring back the desktop of every live session, on its own files.
        A run the previous process was doing is over: say so in the stream."""
        if self.desktops is None:
            return
        for session_id in sorted(await self.get_live_ids()):
            session = await self.get(session_id=session_id)
            if session.status == SessionStatus.PROCESSING:
                detail = "interrupted: the server stopped during the run"
                await self._answer_unanswered_tool_uses(session_id)
                await self.publish_error(
                    session_id,
                    "interrupted",
                    "The agent run was interrupted by a server restart; send the message "
                    "again to continue.",
                )
                await self.publish(
                    session_id,
                    "message_complete",
                    {"stop_reason": "error", "steps": 0, "usage": None, "detail": detail},
                )
            try:
                await self.desktops.restore(session_id)
            except Exception as exc:
                logger.exception("could not restore the desktop of session %s", session_id)
                await self._set_and_publish(
                    session_id, SessionStatus.ERROR, f"desktop restore failed: {exc}"
                )
                continue
            if self.recordings is not None and self.recordings.exists(session_id):
                await self._start_recording(session_id)  # a new part of the same recording
            await self._set_and_publish(session_id, SessionStatus.ACTIVE)

    async def _answer_unanswered_tool_uses(self, session_id: str) -> None:
        """A run killed mid-tool left a tool_use without its tool_result: store an
        "interrupted" one, so the stored history (REST, UI, next request) stays valid."""
        async with self._sessionmaker() as db:
            last = await db.scalar(
                select(Message)
                .where(Message.session_id == session_id)
                .order_by(Message.id.desc())
                .limit(1)
            )
        if last is None or last.role != "assistant":
            return
        ids = history.tool_use_ids({"role": last.role, "content": last.content})
        if ids:
            reason = "interrupted: the server stopped during the run"
            await self.add_message(
                session_id=session_id,
                role="user",
                content=[history.interrupted_result(i, reason) for i in ids],
            )

    async def on_desktop_event(
        self, session_id: str, component: str, kind: str, detail: str
    ) -> None:
        """The desktop supervisor reports: a component died, was restarted, or gave up."""
        try:
            session = await self.get(session_id=session_id)
        except errors.NotFound:
            return
        if kind == "exited":
            await self.publish_error(
                session_id,
                "desktop_error",
                f"The desktop's {component} stopped unexpectedly ({detail}); restarting it.",
                component=component,
            )
            if session.status == SessionStatus.ACTIVE:
                await self._set_and_publish(
                    session_id, SessionStatus.ERROR, f"{component} exited; restarting"
                )
        elif kind == "restarted":
            if session.status == SessionStatus.ERROR:
                await self._set_and_publish(session_id, SessionStatus.ACTIVE)
        elif kind == "failed":
            await self.publish_error(
                session_id,
                "desktop_error",
                f"The desktop's {component} keeps failing ({detail}); delete this session and "
                "create a new one.",
                retryable=False,
                component=component,
            )
            if session.status != SessionStatus.EXPIRED:
                await self._set_and_publish(
                    session_id, SessionStatus.ERROR, f"{component} failed: {detail}"
                )
