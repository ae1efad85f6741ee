"""How an API replica reaches the x11vnc of a session on another host: a relay in the session
actor, listening on the host's node address, that lets through only a connection whose first
bytes are the relay's secret, and then carries bytes both ways between it and the session's
x11vnc unix socket; each connection it carries is a viewer of the desktop, for which x11vnc
runs (desktops/viewing.py). The replica gets the address and the secret from the actor (a Ray
call), connects, sends the secret, and proxies RFB as it does for a local desktop: view-only
is still enforced by the replica's filter. Without the secret a connection is closed unread,
so the port opens nothing to whoever else reaches the host.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import secrets
from asyncio import StreamReader, StreamWriter
from collections.abc import Awaitable, Callable
from pathlib import Path

logger = logging.getLogger(__name__)

SECRET_BYTES = 32
SECRET_TIMEOUT = 5.0
CHUNK = 256 * 1024


class VncRelay:
    def __init__(
        self,
        open_viewer: Callable[[], Awaitable[Path | None]],
        close_viewer: Callable[[], None],
        host: str,
    ) -> None:
        """`open_viewer`: a viewer comes, the session's x11vnc socket once it listens (None:
        no running desktop); `close_viewer`: that viewer has gone."""
        self._open_viewer = open_viewer
        self._close_viewer = close_viewer
        self._host = host
        self.secret = secrets.token_bytes(SECRET_BYTES)
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()

    async def endpoint(self) -> tuple[str, int, bytes]:
        """(address, port, secret) of the relay, started on first use."""
        if self._server is None:
            self._server = await asyncio.start_server(self._serve, self._host, 0)
        port = self._server.sockets[0].getsockname()[1]
        return self._host, port, self.secret

    async def _serve(self, reader: StreamReader, writer: StreamWriter) -> None:
        try:
            offered = await asyncio.wait_for(reader.readexactly(SECRET_BYTES), SECRET_TIMEOUT)
        except (TimeoutError, asyncio.IncompleteReadError, OSError):
            writer.close()
            return
        if not hmac.compare_digest(offered, self.secret):
            writer.close()
            return
        try:
            path = await self._open_viewer()
        except Exception as exc:
            logger.warning("VNC relay: x11vnc did not start: %s", exc)
            path = None
        if path is None:
            writer.close()
            return
        try:
            await self._relay(reader, writer, path)
        finally:
            self._close_viewer()

    async def _relay(self, reader: StreamReader, writer: StreamWriter, path: Path) -> None:
        try:
            vnc_reader, vnc_writer = await asyncio.open_unix_connection(str(path), limit=CHUNK)
        except OSError as exc:
            logger.warning("VNC relay: x11vnc at %s unreachable: %s", path, exc)
            writer.close()
            return
        pipes = [
            asyncio.create_task(_pipe(reader, vnc_writer)),
            asyncio.create_task(_pipe(vnc_reader, writer)),
        ]
        self._pipes.update(pipes)
        try:
            await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in pipes:
                task.cancel()
            await asyncio.gather(*pipes, return_exceptions=True)
            self._pipes.difference_update(pipes)
            for end in (writer, vnc_writer):
                end.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._pipes):
                task.cancel()
            await asyncio.gather(*self._pipes, return_exceptions=True)
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None


async def _pipe(source: StreamReader, sink: StreamWriter) -> None:
    with contextlib.suppress(OSError, ConnectionError):
        while chunk := await source.read(CHUNK):
            sink.write(chunk)
            await sink.drain()


async def open_relay(address: str, port: int, secret: bytes) -> tuple[StreamReader, StreamWriter]:
    """The replica's end: a connection through the relay, the secret already sent."""
    reader, writer = await asyncio.open_connection(address, port, limit=CHUNK)
    writer.write(secret)
    await writer.drain()
    return reader, writer
