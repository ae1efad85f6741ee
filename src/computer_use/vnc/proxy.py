"""Byte pump between an accepted browser websocket and a session's x11vnc unix socket.

Two tasks, one per direction. Whichever ends first (either peer closed, a protocol violation,
a socket error) decides the close code; the other is cancelled, the x11vnc socket is closed and
awaited, and the websocket is closed unless the browser already went away. Nothing outlives
`run_proxy`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.websockets import WebSocket, WebSocketDisconnect

from computer_use.vnc.rfb import ClientStreamFilter, RfbProtocolError

logger = logging.getLogger(__name__)

# One read of up to 256 KiB becomes one websocket frame: big enough that a full-screen update
# takes a handful of frames, small enough to keep per-connection memory modest.
READ_CHUNK = 256 * 1024

ACTIVITY_CLOSE_TIMEOUT = 2.0

CLOSE_NORMAL = 1000
CLOSE_UNSUPPORTED_DATA = 1003
CLOSE_POLICY_VIOLATION = 1008
CLOSE_INTERNAL_ERROR = 1011


@dataclass(frozen=True, slots=True)
class ProxyEnd:
    code: int
    reason: str
    client_gone: bool = False  # the browser closed first: nothing left to send it


class ActivityThrottle:
    """Reports input as session activity at most once per `interval` seconds.

    The report (a database write) runs in its own task so keystrokes never wait on it, with
    at most one in flight; `aclose` waits for it so no task outlives the connection.
    """

    def __init__(
        self,
        report: Callable[[], Awaitable[None]],
        *,
        interval: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._report = report
        self._interval = interval
        self._clock = clock
        self._last: float | None = None
        self._task: asyncio.Task[None] | None = None

    def notify(self) -> None:
        now = self._clock()
        if self._last is not None and now - self._last < self._interval:
            return
        if self._task is not None and not self._task.done():
            return
        self._last = now
        self._task = asyncio.create_task(self._run(), name="vnc-activity")

    async def _run(self) -> None:
        try:
            await self._report()
        except Exception:
            # Activity is best effort: a failed write must not cut the user's VNC connection.
            logger.exception("recording VNC activity failed")

    async def aclose(self) -> None:
        if self._task is None:
            return
        # A stuck database must not hold the connection's teardown; wait_for cancels it.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._task, ACTIVITY_CLOSE_TIMEOUT)


async def _client_to_server(
    websocket: WebSocket,
    writer: asyncio.StreamWriter,
    rfb_filter: ClientStreamFilter,
    on_input: Callable[[], None] | None,
) -> ProxyEnd:
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return ProxyEnd(CLOSE_NORMAL, "browser closed", client_gone=True)
        data = message.get("bytes")
        if data is None:
            return ProxyEnd(CLOSE_UNSUPPORTED_DATA, "binary frames only")
        try:
            filtered = rfb_filter.feed(data)
        except RfbProtocolError as exc:
            return ProxyEnd(CLOSE_POLICY_VIOLATION, f"RFB protocol error: {exc}"[:120])
        if filtered.input_seen and on_input is not None:
            on_input()
        if filtered.forward:
            writer.write(filtered.forward)
            await writer.drain()


async def _server_to_client(websocket: WebSocket, reader: asyncio.StreamReader) -> ProxyEnd:
    while True:
        data = await reader.read(READ_CHUNK)
        if not data:
            return ProxyEnd(CLOSE_NORMAL, "VNC server closed the connection")
        try:
            await websocket.send_bytes(data)
        except WebSocketDisconnect:
            return ProxyEnd(CLOSE_NORMAL, "browser went away", client_gone=True)


async def _first_end(tasks: list[asyncio.Task[ProxyEnd]]) -> ProxyEnd:
    done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    task = next(iter(done))
    exc = task.exception()
    if exc is None:
        return task.result()
    if isinstance(exc, (ConnectionError, OSError)):
        return ProxyEnd(CLOSE_INTERNAL_ERROR, "connection to the desktop lost")
    if isinstance(exc, WebSocketDisconnect):
        return ProxyEnd(CLOSE_NORMAL, "browser went away", client_gone=True)
    raise exc


async def run_proxy(
    websocket: WebSocket,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    *,
    rfb_filter: ClientStreamFilter,
    on_input: Callable[[], None] | None = None,
) -> ProxyEnd:
    """Pumps until one side ends; returns why. The caller has accepted the websocket."""
    tasks = [
        asyncio.create_task(
            _client_to_server(websocket, writer, rfb_filter, on_input),
            name="vnc-client-to-server",
        ),
        asyncio.create_task(_server_to_client(websocket, reader), name="vnc-server-to-client"),
    ]
    end = ProxyEnd(CLOSE_INTERNAL_ERROR, "proxy stopped")
    try:
        end = await _first_end(tasks)
    finally:
        # Also reached when the server shuts down and cancels us: stop both pumps first.
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        if not end.client_gone:
            with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
                await websocket.close(end.code, end.reason)
    return end
