"""A session's screen recording across the cluster (RAY_ADDRESS).

The session actor records its desktop on its host, with its runtime's Recordings on its
slot's data directory (SessionActor.start with `record`), by SessionService's own
start_recording. When the actor ends with the recording kept (expiry with
RECORDINGS_ON_EXPIRY=keep), the recording moves to its host's kept recordings, served by the
host's keeper (kept_recordings.py). An API replica asks the session's actor, or once it is
gone the keeper of the session's host, for the recording's state (the timeline) and for an
export: the host joins the segments into one MP4 (RecordingReader's rules: its NotFound and
Conflict), then the replica sends it to its client (DownloadResponse) as it reads it from the
host, in chunks of at most BATCH (1 MiB), one call each, the next once the previous one is
sent: nothing is copied whole to the replica. The host's export file is removed at the
download's end (sent, failed or abandoned), after TRANSFER_IDLE_SECONDS without a read (its
replica died), or at the session's end.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, cast

from computer_use import errors
from computer_use.cluster.calls import call
from computer_use.cluster.naming import find_keeper, find_session_actor
from computer_use.cluster.remote_files import TRANSFER_IDLE_SECONDS
from computer_use.desktops.files import BATCH
from computer_use.desktops.recorder import EXPORT_TIMEOUT, RecordingState
from computer_use.sessions.recording_reader import RecordingDownload, no_recording, read_at

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


async def open_download(session_id: str, host: str | None) -> RecordingDownload:
    """The recording so far as one MP4 exported on its host, read from there chunk by chunk
    as the client takes them (DownloadResponse); its end removes the host's export."""
    remote = _holder(session_id, host)
    opened = await call(remote("export"), timeout=EXPORT_TIMEOUT + 10)
    transfer = opened["transfer"]

    async def read(offset: int, length: int) -> bytes:
        return cast(bytes, await call(remote("read", transfer, offset, length)))

    def close() -> None:
        remote("close", transfer)  # without waiting: the client may have gone (a cancel)

    return RecordingDownload(opened["size"], read, close)


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

    def __init__(
        self,
        source: Callable[[], RecordingSource],
        session_id: str,
        *,
        idle: float = TRANSFER_IDLE_SECONDS,
    ) -> None:
        self._sessions = source
        self._session_id = session_id
        self._idle = idle
        self._open: dict[str, Path] = {}
        self._used: dict[str, float] = {}  # transfer -> when it was last called
        self._reaper: asyncio.Task[None] | None = None

    async def call(self, verb: str, *args: Any) -> Any:
        if verb not in self.CALLS:
            raise ValueError(f"{verb} is not a call of the recordings")
        return await getattr(self, verb)(*args)

    def __len__(self) -> int:
        return len(self._open)

    async def state(self) -> RecordingState:
        return await self._sessions().recording_of(self._session_id)

    async def export(self) -> dict[str, Any]:
        """Exports the recording so far: its id (`transfer`, for `read` and `close`) and its
        `size`."""
        path = await self._sessions().export_recording(self._session_id)
        transfer = uuid.uuid4().hex
        self._open[transfer] = path
        self._used[transfer] = time.monotonic()
        if self._reaper is None:
            self._reaper = asyncio.create_task(self._reap())
        try:
            size = (await asyncio.to_thread(path.stat)).st_size
        except BaseException:
            await self.close(transfer)
            raise
        return {"transfer": transfer, "size": size}

    async def read(self, transfer: str, offset: int, length: int = BATCH) -> bytes:
        """Up to `length` (at most BATCH) bytes of the export from `offset`; b"" at its end."""
        path = self._open.get(transfer)
        if path is None:
            raise errors.Conflict("The recording's export has ended; ask for it again.")
        self._used[transfer] = time.monotonic()
        return await asyncio.to_thread(read_at, path, offset, length)

    async def close(self, transfer: str) -> None:
        """Removes the export's file (a no-op for one already closed)."""
        path = self._open.pop(transfer, None)
        self._used.pop(transfer, None)
        if path is not None:
            await asyncio.to_thread(path.unlink, True)

    async def close_all(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            self._reaper = None
        for transfer in list(self._open):
            await self.close(transfer)

    async def _reap(self) -> None:
        """Removes the exports nobody read for `idle` seconds (their replica died)."""
        while self._open:
            await asyncio.sleep(self._idle / 4)
            cutoff = time.monotonic() - self._idle
            for transfer, used in list(self._used.items()):
                if used < cutoff:
                    await self.close(transfer)
        self._reaper = None
