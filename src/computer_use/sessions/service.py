"""Session lifecycle with the desktop: open, close, expiry, restore after a restart, desktop
supervision events. Used by REST and MCP alike; the records themselves are in records.py.

Statuses (docs/API.md): `starting` while the desktop boots, `active` when ready, `processing`
while the agent works, `error` when the desktop failed, `expired` after SESSION_TTL_SECONDS of
inactivity (desktop and files released, history kept).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from computer_use import errors
from computer_use.agent import history
from computer_use.config import Settings
from computer_use.database import transaction
from computer_use.desktops import DesktopCapacityError
from computer_use.desktops.files import Files, SessionFiles
from computer_use.sessions.models import Message, Session, SessionStatus
from computer_use.sessions.recording_reader import (
    RecordingDownload,
    RecordingReader,
    file_download,
)
from computer_use.sessions.records import SessionRecords, now

if TYPE_CHECKING:
    from computer_use.desktops import Desktop, DesktopManager, EventCallback
    from computer_use.desktops.recorder import Recordings, RecordingState
    from computer_use.streaming.bus import EventBus

CloseHook = Callable[..., Awaitable[None]]
# Makes the DesktopManager, given the callback it reports supervision events to.
DesktopFactory = Callable[["EventCallback"], "DesktopManager"]

logger = logging.getLogger(__name__)


class SessionClosing:
    """Who must let go of a session before its desktop goes (delete or expiry): the agent
    runner. Made first and passed to SessionService and AgentRunner, so that neither is
    patched after construction; a listener subscribes in its own constructor."""

    def __init__(self) -> None:
        self._hooks: list[CloseHook] = []

    def listen(self, hook: CloseHook) -> None:
        self._hooks.append(hook)

    async def __call__(self, session_id: str) -> None:
        for hook in self._hooks:
            await hook(session_id=session_id)


class SessionService(SessionRecords):
    def __init__(
        self,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        settings: Settings,
        desktops: DesktopFactory,
        closing: SessionClosing,
        bus: EventBus,
        recordings: Recordings,
    ) -> None:
        super().__init__(sessionmaker=sessionmaker, settings=settings)
        # Made here: the manager reports to on_desktop_event (component died, restarted...).
        self.desktops = desktops(self.on_desktop_event)
        self.closing = closing
        self.bus = bus
        self.recordings = recordings

    # --- lifecycle with the desktop ---------------------------------------------------

    def desktop(self, session_id: str) -> Desktop | None:
        return self.desktops.get(session_id)

    def viewable(self, session: Session) -> bool:
        """Whether the session has a running desktop to watch (its JSON then has a vnc_url)."""
        return self.desktop(session.id) is not None

    def require_desktop(self, session: Session) -> Desktop:
        """The session's running desktop, else DesktopNotRunning (the one place of that rule);
        Conflict when another API process holds it (check_held_here)."""
        self.check_held_here(session)
        desktop = self.desktop(session.id)
        if desktop is None:
            raise errors.DesktopNotRunning(session.status)
        return desktop

    async def running_desktop(self, *, session_id: str, owner: str | None) -> Desktop:
        """The desktop of the caller's live session, for a screenshot or its files: NotFound
        (unknown, or another owner's), SessionExpired (its desktop and files are gone),
        DesktopNotRunning. Counts as activity."""
        session = await self.get(session_id=session_id, owner=owner)
        self.check_not_expired(session)
        desktop = self.require_desktop(session)
        await self.touch(session_id=session.id)
        return desktop

    async def screenshot(self, *, session_id: str, owner: str | None) -> bytes:
        """A PNG of the caller's live session's desktop now (running_desktop's rules)."""
        desktop = await self.running_desktop(session_id=session_id, owner=owner)
        return await desktop.screenshot()

    async def files(self, *, session_id: str, owner: str | None) -> Files:
        """The files of the caller's live session, through its sandbox (running_desktop's
        rules)."""
        desktop = await self.running_desktop(session_id=session_id, owner=owner)
        return SessionFiles(desktop.sandbox)

    # --- the desktops of this process, for the lifespan and health ------------------------

    async def start_desktops(self) -> dict[str, Any]:
        """Takes the desktop range (keeping the files of the live sessions held here);
        returns the health report."""
        await self.desktops.start(keep=await self.get_live_ids())
        return self.desktops.health()

    def desktops_health(self) -> dict[str, Any]:
        return self.desktops.health()

    def desktops_readiness(self) -> str:
        return self.desktops.readiness()

    async def stop_desktops(self) -> None:
        await self.desktops.shutdown()

    def background_jobs(self) -> list[Coroutine[Any, Any, None]]:
        """Work to run for the life of the process besides the idle-expiry pass."""
        return []

    async def publish(self, session_id: str, type: str, data: dict[str, object]) -> None:
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

    async def transition(
        self,
        session_id: str,
        status: SessionStatus,
        detail: str | None = None,
        *,
        only_from: SessionStatus | None = None,
        first: tuple[str, dict[str, Any]] | None = None,
    ) -> Session | None:
        """Every change of a session's status: writes it, then publishes the `status` event;
        returns the changed row. `only_from`: only when the session is in that status now
        (else None and no `status` event); without it an unknown session is NotFound.
        `first`: an event published between the write and the `status` event, whether or not
        the status changed (the run's `message_complete`: the session takes the next message
        the moment a client sees it)."""
        where = [Session.id == session_id]
        if only_from is not None:
            where.append(Session.status == only_from)
        # One statement (no read first): on SQLite a transaction that reads and then writes
        # cannot wait for the lock and fails with "database is locked" under load.
        async with transaction(self._sessionmaker) as db:
            session: Session | None = await db.scalar(
                update(Session)
                .where(*where)
                .values(status=status, status_detail=detail, updated_at=now())
                .returning(Session)
            )
        if session is None and only_from is None:
            raise errors.NotFound(f"Session {session_id} not found.")
        if first is not None:
            await self.publish(session_id, *first)
        if session is not None:
            await self.publish(session_id, "status", {"status": status, "detail": detail})
        return session

    async def open(
        self,
        *,
        title: str,
        model: str | None,
        owner: str | None = None,
        record: bool | None = None,
        budget: dict[str, Any] | None = None,
        approval: str | list[str] | None = None,
    ) -> Session:
        """Creates a session and its desktop; returns once the desktop is screenshot-able.
        `record` (default RECORD_SESSIONS): the screen is recorded from the start."""
        session = await self.create(
            title=title, model=model, owner=owner, budget=budget, approval=approval
        )
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
            if self.wants_recording(record):
                await self.start_recording(session.id)
            await self.transition(session.id, SessionStatus.ACTIVE)
        return await self.get(session_id=session.id)

    def wants_recording(self, record: bool | None) -> bool:
        """Whether a new session is recorded: `record`, by default RECORD_SESSIONS."""
        return self._settings.record_sessions if record is None else record

    async def start_recording(self, session_id: str) -> None:
        """Records the session's running desktop (a new part, if it has a recording)."""
        desktop = self.desktop(session_id)
        if desktop is not None:
            spec = desktop.spec
            await self.recordings.start(session_id, spec.display, spec.width, spec.height)

    def check_recorded(self, session_id: str) -> None:
        """NotFound saying how to get a recording, unless the session has one here."""
        RecordingReader(self.recordings).check_recorded(session_id)

    async def recording_of(self, session_id: str) -> RecordingState:
        """The recording's state, once the session has one (check_recorded)."""
        return await RecordingReader(self.recordings).recording_of(session_id)

    async def export_recording(self, session_id: str) -> Path:
        """The recording so far as one MP4 file, which the caller removes: NotFound (none),
        Conflict (not a frame recorded yet)."""
        return await RecordingReader(self.recordings).export_recording(session_id)

    async def recording_download(self, session_id: str) -> RecordingDownload:
        """export_recording's MP4 to send (DownloadResponse); its end removes the file."""
        return await file_download(await self.export_recording(session_id))

    def keeps_recording(self, *, expiring: bool) -> bool:
        """Whether a session's end keeps its recording: on expiry, unless
        RECORDINGS_ON_EXPIRY=delete; never on delete."""
        return expiring and self._settings.recordings_on_expiry == "keep"

    async def _release_desktop(self, session_id: str, *, expiring: bool = False) -> None:
        await self.closing(session_id)
        if self.keeps_recording(expiring=expiring):
            await self.recordings.stop(session_id)
        else:
            await self.recordings.remove(session_id)
        self.bus.close(session_id)
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
            expired = await self.transition(
                session_id,
                SessionStatus.EXPIRED,
                f"expired after {self._settings.session_ttl_seconds} s without activity",
                only_from=session.status,  # another replica may be expiring it too
            )
            if expired is None:
                return False
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
        for session_id in sorted(await self.get_live_ids()):
            session = await self.get(session_id=session_id)
            if session.processing:
                await self.end_lost_run(
                    session_id,
                    "interrupted: the server stopped during the run",
                    "The agent run was interrupted by a server restart; send the message "
                    "again to continue.",
                )
            try:
                await self.desktops.restore(session_id)
            except Exception as exc:
                logger.exception("could not restore the desktop of session %s", session_id)
                await self.transition(
                    session_id, SessionStatus.ERROR, f"desktop restore failed: {exc}"
                )
                continue
            if self.recordings.exists(session_id):
                await self.start_recording(session_id)  # a new part of the same recording
            await self.transition(session_id, SessionStatus.ACTIVE)

    async def end_lost_run(self, session_id: str, detail: str, message: str) -> None:
        """A run whose process is gone: its history made valid again, an `interrupted` error
        saying `message`, and its `message_complete` (stop reason `error`, `detail`)."""
        await self._answer_unanswered_tool_uses(session_id, detail)
        await self.publish_error(session_id, "interrupted", message)
        await self.publish(
            session_id,
            "message_complete",
            {"stop_reason": "error", "steps": 0, "usage": None, "detail": detail},
        )

    async def _answer_unanswered_tool_uses(self, session_id: str, reason: str) -> None:
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
                await self.transition(
                    session_id, SessionStatus.ERROR, f"{component} exited; restarting"
                )
        elif kind == "restarted":
            if session.status == SessionStatus.ERROR:
                await self.transition(session_id, SessionStatus.ACTIVE)
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
                await self.transition(
                    session_id, SessionStatus.ERROR, f"{component} failed: {detail}"
                )
