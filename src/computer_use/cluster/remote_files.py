"""A session's files (desktops.files.Files) across the cluster: the API replica's RemoteFiles
forwards each verb to the session's actor, whose FileTransfers runs it with the real
SessionFiles on the desktop host, so quota, paths and the sandbox hold exactly as in one
process, and a refusal (FileAccessError with its code) comes back as it was raised.

Bytes cross in chunks of at most BATCH (1 MiB), one actor call each: neither side holds a
whole file. A download or an upload stays open on the host between calls, by transfer id,
until its last chunk, an error, `close` (the client went away: the replica fires it without
waiting), TRANSFER_IDLE_SECONDS without a call (the replica died), or the session's end. An
upload closed before its commit leaves nothing behind (the helper removes what it wrote).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast

from computer_use.cluster.calls import call
from computer_use.desktops.files import BATCH, FileAccessError, SessionFiles, Upload

TRANSFER_IDLE_SECONDS = 300.0


# --- on the API replica ----------------------------------------------------------------------


class RemoteFiles:
    """Files of a session whose desktop is on a desktop host, through its actor."""

    def __init__(self, actor: Any) -> None:
        self.actor = actor

    async def ask(self, verb: str, *args: Any) -> Any:
        """One of FileTransfers.CALLS on the host."""
        return await call(self.actor.files.remote(verb, *args))

    async def open(self, path: str, *, as_zip: bool = False) -> RemoteFileBody:
        transfer, header = await self.ask("open", path, as_zip)
        return RemoteFileBody(self, transfer, header)

    async def listing(self, path: str) -> dict[str, Any]:
        return cast(dict[str, Any], await self.ask("listing", path))

    async def write(self, path: str, chunks: AsyncIterator[bytes], *, limit: int) -> int:
        transfer: str | None = await self.ask("upload", path, limit)
        try:
            pending = bytearray()
            async for chunk in chunks:
                pending += chunk
                while len(pending) >= BATCH:
                    await self.ask("send", transfer, bytes(pending[:BATCH]))
                    del pending[:BATCH]
            if pending:
                await self.ask("send", transfer, bytes(pending))
            size, transfer = await self.ask("commit", transfer), None
            return cast(int, size)
        finally:
            self.release(transfer)

    async def delete(self, path: str) -> None:
        await self.ask("delete", path)

    def release(self, transfer: str | None) -> None:
        """Ends a transfer on the host without waiting (its client went away, or a refusal
        already ended it there): this may run while the request is being cancelled."""
        if transfer is not None:
            self.actor.files.remote("close", transfer)


class RemoteFileBody:
    """FileBody of a download open on the host: each chunk is one call."""

    def __init__(self, files: RemoteFiles, transfer: str, header: dict[str, Any]) -> None:
        self.files = files
        self.transfer: str | None = transfer
        self.header = header

    async def body(self) -> AsyncIterator[bytes]:
        try:
            while chunk := await self.files.ask("read", self.transfer):
                yield chunk
            self.transfer = None  # the host ended it with the last chunk
        finally:
            await self.close()

    async def close(self) -> None:
        self.files.release(self.transfer)
        self.transfer = None


# --- on the desktop host, in the session actor ----------------------------------------------


@dataclass
class _Transfer:
    close: Callable[[], Awaitable[None]]
    body: AsyncGenerator[bytes, None] | None = None
    upload: Upload | None = None
    busy: bool = False
    used: float = 0.0


class FileTransfers:
    """The files API's calls (CALLS) on one session's files, for API replicas."""

    CALLS = frozenset({"listing", "delete", "open", "read", "upload", "send", "commit", "close"})

    def __init__(
        self, files: Callable[[], SessionFiles], *, idle: float = TRANSFER_IDLE_SECONDS
    ) -> None:
        self._files = files
        self._idle = idle
        self._open: dict[str, _Transfer] = {}
        self._reaper: asyncio.Task[None] | None = None

    async def call(self, verb: str, *args: Any) -> Any:
        if verb not in self.CALLS:
            raise ValueError(f"{verb} is not a call of the files API")
        return await getattr(self, verb)(*args)

    def __len__(self) -> int:
        return len(self._open)

    async def listing(self, path: str) -> dict[str, Any]:
        return await self._files().listing(path)

    async def delete(self, path: str) -> None:
        await self._files().delete(path)

    async def open(self, path: str, as_zip: bool) -> tuple[str, dict[str, Any]]:
        stream = await self._files().open(path, as_zip=as_zip)
        return self._add(_Transfer(stream.close, body=stream.body())), stream.header

    async def read(self, transfer: str) -> bytes:
        """The next chunk of a download; b"" at its end, which ends the transfer."""
        async with self._using(transfer) as open_:
            if open_.body is None:
                raise FileAccessError("aborted", "that transfer is not a download")
            chunk = await anext(open_.body, b"")
        if not chunk:
            await self.close(transfer)
        return chunk

    async def upload(self, path: str, limit: int) -> str:
        upload = await self._files().upload(path, limit=limit)
        return self._add(_Transfer(upload.close, upload=upload))

    async def send(self, transfer: str, data: bytes) -> None:
        async with self._using(transfer) as open_:
            await _upload(open_).send(data)

    async def commit(self, transfer: str) -> int:
        try:
            async with self._using(transfer) as open_:
                return await _upload(open_).commit()
        finally:
            await self.close(transfer)

    async def close(self, transfer: str) -> None:
        """Ends a transfer (a no-op for one already ended)."""
        open_ = self._open.pop(transfer, None)
        if open_ is None:
            return
        try:
            if open_.body is not None and not open_.busy:
                await open_.body.aclose()
        finally:
            await open_.close()

    async def close_all(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            self._reaper = None
        for transfer in list(self._open):
            await self.close(transfer)

    def _add(self, transfer: _Transfer) -> str:
        transfer_id = uuid.uuid4().hex
        transfer.used = time.monotonic()
        self._open[transfer_id] = transfer
        if self._reaper is None:
            self._reaper = asyncio.create_task(self._reap())
        return transfer_id

    @contextlib.asynccontextmanager
    async def _using(self, transfer: str) -> AsyncIterator[_Transfer]:
        """A call on an open transfer: busy meanwhile (never reaped); an error ends it."""
        open_ = self._open.get(transfer)
        if open_ is None:
            raise FileAccessError(
                "aborted", "the transfer has ended (idle too long, or its session ended)"
            )
        open_.busy = True
        try:
            yield open_
        except BaseException:
            open_.busy = False
            await self.close(transfer)
            raise
        finally:
            open_.busy = False
            open_.used = time.monotonic()

    async def _reap(self) -> None:
        """Ends the transfers nobody called for `idle` seconds (their replica is gone)."""
        while self._open:
            await asyncio.sleep(self._idle / 4)
            cutoff = time.monotonic() - self._idle
            for transfer, open_ in list(self._open.items()):
                if not open_.busy and open_.used < cutoff:
                    await self.close(transfer)
        self._reaper = None


def _upload(open_: _Transfer) -> Upload:
    if open_.upload is None:
        raise FileAccessError("aborted", "that transfer is not an upload")
    return open_.upload
