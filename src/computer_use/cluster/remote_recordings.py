"""A session's screen recording across the cluster (RAY_ADDRESS).

The session actor records its desktop on its host, with its runtime's Recordings on its
slot's data directory (SessionActor.start with `record`), by SessionService's own
start_recording. When the actor ends with the recording kept (expiry with
RECORDINGS_ON_EXPIRY=keep), the recording moves to its host's kept recordings, served by the
host's keeper (kept_recordings.py). An API replica asks the session's actor, or once it is
gone the keeper of the session's host, for the recording's state (the timeline) and for an
export: the host joins the segments into one MP4 (RecordingReader's rules: its NotFound and
Conflict), then the replica copies it into a temporary file of its own in chunks of at most
BATCH (1 MiB), one call each, and the host's export file is removed (at the copy's end, its
failure, or the session's end).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, cast

from computer_use import errors
from computer_use.cluster.calls import call
from computer_use.cluster.naming import find_keeper, find_session_actor
from computer_use.desktops.files import BATCH
from computer_use.desktops.recorder import EXPORT_TIMEOUT, RecordingState
from computer_use.sessions.recording_reader import no_recording

logger = logging.getLogger(__name__)


class RecordingSource(Protocol):
    """Where a host reads a recording (SessionService, RecordingReader)."""

    async def recording_of(self, session_id: str) -> RecordingState: ...

    async def export_recording(self, session_id: str) -> Path: ...


# --- on the API replica ----------------------------------------------------------------------

Remote = Callable[..., Any]  # `recording.remote` of whoever holds the recording now


def _holder(session_id: str, host: str | None) -> Remote:
    """Who holds the session's recording: its actor while it lives, then its host's keeper.
    ServiceUnavailable when that host cannot be reached."""
    actor = find_session_actor(session_id)
    if actor is not None:
        return cast(Remote, actor.recording.remote)
    if host is None:  # its desktop never started: nothing was recorded
        raise no_recording(session_id)
    keeper = find_keeper(host)
    if keeper is None:
        raise errors.ServiceUnavailable(
            f"Session {session_id}'s desktop host {host} cannot be reached, nor any recording it"
            " keeps: try again once the host is back."
        )
    return cast(Remote, functools.partial(keeper.recording.remote, session_id))


async def recording_state(session_id: str, host: str | None) -> RecordingState:
    """The recording's state, from the session's actor or its host's keeper."""
    return cast(RecordingState, await call(_holder(session_id, host)("state")))


async def export_recording(session_id: str, host: str | None) -> Path:
    """The recording so far as one MP4 in a temporary file of this replica (the caller
    removes it), copied from the host chunk by chunk."""
    remote = _holder(session_id, host)
    transfer = await call(remote("export"), timeout=EXPORT_TIMEOUT + 10)
    fd, name = tempfile.mkstemp(prefix=f"recording-{session_id}-", suffix=".mp4")
    path = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            offset = 0
            while chunk := await call(remote("read", transfer, offset)):
                await asyncio.to_thread(out.write, chunk)
                offset += len(chunk)
    except BaseException:
        os.unlink(path)
        remote("close", transfer)  # without waiting: this may be a cancel
        raise
    await call(remote("close", transfer))
    return path


async def remove_kept(session_id: str, host: str | None) -> None:
    """A deleted session's recording kept on its host goes. A host that cannot be reached
    removes it when its keeper starts again (RecordingKeeper.reconcile)."""
    keeper = find_keeper(host) if host is not None else None
    if keeper is None:
        if host is not None:
            logger.warning(
                "session %s: its host %s cannot be reached; the recording it may keep goes"
                " when its keeper starts again",
                session_id,
                host,
            )
        return
    try:
        await call(keeper.remove.remote(session_id))
    except errors.ServiceUnavailable as exc:
        logger.warning("session %s: its kept recording was not removed: %s", session_id, exc)


# --- on the desktop host, in the session actor ----------------------------------------------


class RecordingExports:
    """A session's recording calls (CALLS) for API replicas; exports on the host by transfer
    id."""

    CALLS = frozenset({"state", "export", "read", "close"})

    def __init__(self, source: Callable[[], RecordingSource], session_id: str) -> None:
        self._sessions = source
        self._session_id = session_id
        self._open: dict[str, Path] = {}

    async def call(self, verb: str, *args: Any) -> Any:
        if verb not in self.CALLS:
            raise ValueError(f"{verb} is not a call of the recordings")
        return await getattr(self, verb)(*args)

    def __len__(self) -> int:
        return len(self._open)

    async def state(self) -> RecordingState:
        return await self._sessions().recording_of(self._session_id)

    async def export(self) -> str:
        """Exports the recording so far; its id, for `read` and `close`."""
        path = await self._sessions().export_recording(self._session_id)
        transfer = uuid.uuid4().hex
        self._open[transfer] = path
        return transfer

    async def read(self, transfer: str, offset: int) -> bytes:
        """Up to BATCH bytes of the export from `offset`; b"" at its end."""
        path = self._open.get(transfer)
        if path is None:
            raise errors.Conflict("The recording's export has ended; ask for it again.")
        return await asyncio.to_thread(_read_at, path, offset)

    async def close(self, transfer: str) -> None:
        """Removes the export's file (a no-op for one already closed)."""
        path = self._open.pop(transfer, None)
        if path is not None:
            await asyncio.to_thread(path.unlink, True)

    async def close_all(self) -> None:
        for transfer in list(self._open):
            await self.close(transfer)


def _read_at(path: Path, offset: int) -> bytes:
    with path.open("rb") as f:
        f.seek(offset)
        return f.read(BATCH)
