"""A session's recording as its routes read it, with their errors: a 404 saying how to get a
recording when there is none, a 409 before the first frame. One rule for every place a
recording is read from: a process's own recordings (SessionService), and with RAY_ADDRESS a
session actor's or the recordings a desktop host keeps after their sessions' actors ended
(cluster/kept_recordings.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from computer_use import errors
from computer_use.desktops.files import BATCH
from computer_use.desktops.recorder import Recordings, RecordingState


@dataclass(frozen=True)
class RecordingDownload:
    """An exported MP4 being sent (download_response.py): its size, its bytes from an offset
    (at most BATCH a call), and its end (`close`: the export removed, without waiting)."""

    size: int
    read_at: Callable[[int, int], Awaitable[bytes]]
    close: Callable[[], None]


def read_at(path: Path, offset: int, length: int = BATCH) -> bytes:
    """Up to `length` (at most BATCH) bytes of the file at `path` from `offset`."""
    with path.open("rb") as f:
        f.seek(offset)
        return f.read(min(length, BATCH))


async def file_download(path: Path) -> RecordingDownload:
    """An export file of this process as a download; its end removes the file."""
    size = (await asyncio.to_thread(path.stat)).st_size

    async def read(offset: int, length: int) -> bytes:
        return await asyncio.to_thread(read_at, path, offset, length)

    return RecordingDownload(size, read, lambda: path.unlink(missing_ok=True))


def no_recording(session_id: str) -> errors.NotFound:
    """The 404 of a session without a recording, saying how to record one."""
    return errors.NotFound(
        f'Session {session_id} has no recording: create sessions with "record": true '
        "(or set RECORD_SESSIONS=true)."
    )


class RecordingReader:
    """The recordings of `recordings` as the API reads them (RecordingSource)."""

    def __init__(self, recordings: Recordings) -> None:
        self.recordings = recordings

    def check_recorded(self, session_id: str) -> None:
        """NotFound saying how to get a recording, unless the session has one here."""
        if not self.recordings.exists(session_id):
            raise no_recording(session_id)

    async def recording_of(self, session_id: str) -> RecordingState:
        """The recording's state, once the session has one."""
        self.check_recorded(session_id)
        return self.recordings.state(session_id)

    async def export_recording(self, session_id: str) -> Path:
        """The recording so far as one MP4 file, which the caller removes: NotFound (none),
        Conflict (not a frame recorded yet)."""
        self.check_recorded(session_id)
        try:
            return await self.recordings.export(session_id)
        except FileNotFoundError:
            raise errors.Conflict("Nothing is recorded yet; try again in a moment.") from None
