"""The response of a recording's download: Starlette's FileResponse (its Content-Length,
ETag, Range and multi-range answers, 416, HEAD) on a RecordingDownload's bytes, read a chunk
(at most BATCH) at a time as the client takes them, so an export on a desktop host
(RAY_ADDRESS) is never copied whole to the replica first.

FileResponse reads its file through `_open_file` (an async context manager giving `seek`,
`read`); this class gives it the download instead of a path. That hook is Starlette's own,
not a documented API: tests/cluster/test_remote_recordings.py checks a whole download, a
range and HEAD through it, so a Starlette that reads files another way fails there.
"""

from __future__ import annotations

import contextlib
import os
import stat
import time
from collections.abc import AsyncIterator, Mapping

from starlette.responses import FileResponse
from starlette.types import Receive, Scope, Send

from computer_use.desktops.files import BATCH
from computer_use.sessions.recording_reader import RecordingDownload

PATHSEND = "http.response.pathsend"  # an ASGI server's send-a-path extension: no path here


class DownloadResponse(FileResponse):
    chunk_size = BATCH

    def __init__(
        self,
        download: RecordingDownload,
        *,
        media_type: str,
        filename: str,
        headers: Mapping[str, str],
    ) -> None:
        now = time.time()
        size = download.size
        # What FileResponse reads from a stat: the size and a modification time (its ETag).
        stat_result = os.stat_result((stat.S_IFREG | 0o600, 0, 0, 1, 0, 0, size, now, now, now))
        super().__init__(
            filename,  # never opened: the bytes come from `download`
            media_type=media_type,
            filename=filename,
            headers=headers,
            stat_result=stat_result,
        )
        self.download = download

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        extensions = {k: v for k, v in scope.get("extensions", {}).items() if k != PATHSEND}
        try:
            await super().__call__({**scope, "extensions": extensions}, receive, send)
        finally:  # sent, failed or abandoned by the client: the export goes
            self.download.close()

    @contextlib.asynccontextmanager
    async def _open_file(self) -> AsyncIterator[_DownloadReader]:  # type: ignore[override]
        yield _DownloadReader(self.download)


class _DownloadReader:
    """The download as the file FileResponse reads."""

    def __init__(self, download: RecordingDownload) -> None:
        self._download = download
        self._offset = 0

    async def seek(self, offset: int) -> None:
        self._offset = offset

    async def read(self, size: int) -> bytes:
        chunk = await self._download.read_at(self._offset, size)
        self._offset += len(chunk)
        return chunk
