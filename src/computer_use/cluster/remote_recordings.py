"""A session's screen recording across the cluster (RAY_ADDRESS).

The session actor records its desktop on its host, with its runtime's Recordings on its
slot's data directory (SessionActor.start with `record`), by SessionService's own
start_recording. An API replica asks the actor for the recording's state (the timeline) and
for an export: the host joins the segments into one MP4 (SessionService.export_recording,
with its NotFound and Conflict), then the replica copies it into a temporary file of its own
in chunks of at most BATCH (1 MiB), one actor call each, and the host's export file is
removed (at the copy's end, its failure, or the session's end). The recording lives on the
host with the actor: it ends with the session (delete, expiry, a lost host).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from computer_use import errors
from computer_use.cluster.calls import call
from computer_use.cluster.naming import find_session_actor
from computer_use.desktops.files import BATCH
from computer_use.desktops.recorder import EXPORT_TIMEOUT, RecordingState

if TYPE_CHECKING:
    from computer_use.sessions.service import SessionService


# --- on the API replica ----------------------------------------------------------------------


def _actor(session_id: str) -> Any:
    """The session's actor; NotFound when it is gone, and its recording with it."""
    actor = find_session_actor(session_id)
    if actor is None:
        raise errors.NotFound(
            f"Session {session_id} has no recording any more: with RAY_ADDRESS a recording"
            " lives on its desktop host and ends with the session's desktop (expiry, a lost"
            " host)."
        )
    return actor


async def recording_state(session_id: str) -> RecordingState:
    """The recording's state, from the session's actor."""
    return cast(RecordingState, await call(_actor(session_id).recording.remote("state")))


async def export_recording(session_id: str) -> Path:
    """The recording so far as one MP4 in a temporary file of this replica (the caller
    removes it), copied from the host chunk by chunk."""
    actor = _actor(session_id)
    transfer = await call(actor.recording.remote("export"), timeout=EXPORT_TIMEOUT + 10)
    fd, name = tempfile.mkstemp(prefix=f"recording-{session_id}-", suffix=".mp4")
    path = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            offset = 0
            while chunk := await call(actor.recording.remote("read", transfer, offset)):
                await asyncio.to_thread(out.write, chunk)
                offset += len(chunk)
    except BaseException:
        os.unlink(path)
        actor.recording.remote("close", transfer)  # without waiting: this may be a cancel
        raise
    await call(actor.recording.remote("close", transfer))
    return path


# --- on the desktop host, in the session actor ----------------------------------------------


class RecordingExports:
    """The recording's calls (CALLS) for API replicas; exports on the host by transfer id."""

    CALLS = frozenset({"state", "export", "read", "close"})

    def __init__(self, sessions: Callable[[], SessionService], session_id: str) -> None:
        self._sessions = sessions
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
