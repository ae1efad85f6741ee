"""The EventBus across processes: PostgreSQL stores the events and LISTEN/NOTIFY fans them out.

Any number of API processes on one PostgreSQL database (EVENT_BUS=postgres). A publisher stores
the event and, in the same transaction, sends `NOTIFY cu_events, '<session>:<id>'` (ids only,
so no payload limit; store.py). PostgreSQL delivers a notification only after its transaction
commits, to every listening connection, in commit order; per session that is id order (the
next id comes from an UPDATE on the session row, whose lock is held until commit). Each process
holds one listening connection and, for the sessions it has subscribers of, reads what a
notification announces from the store once and hands it to those subscribers' queues.

Subscription, replay and the no-gap/no-duplicate rule are InProcessEventBus's: a subscriber is
registered before its replay reads the store, and anything offered twice is dropped by id. A
session's first notification after its first local subscriber registered starts that
session's reading position. `close` is a notification too, so a session deleted through one
process ends its streams on every process, after the events published before it.

If the listening connection drops, notifications sent meanwhile are lost: the bus reconnects
and sends every subscriber back to the store (resync), so nothing is missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any

import asyncpg
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from computer_use.streaming.bus import (
    _CLOSE,
    _RESYNC,
    EventStore,
    InProcessEventBus,
    StoredEvent,
    _Channel,
    _offer,
    _Subscriber,
)

logger = logging.getLogger(__name__)

CHANNEL = "cu_events"
CLOSE = "close"
RECONNECT_DELAYS = (0.1, 0.5, 1.0, 2.0, 5.0)  # then 5 s between attempts


class PostgresEventBus(InProcessEventBus):
    """`store` must send the notifications: DatabaseEventStore(..., notify_channel=channel)."""

    def __init__(
        self,
        store: EventStore,
        engine: AsyncEngine,
        *,
        channel: str = CHANNEL,
        queue_size: int = 1000,
        replay_batch: int = 500,
    ) -> None:
        super().__init__(store, queue_size=queue_size, replay_batch=replay_batch)
        self._engine = engine
        self._channel_name = channel
        self._inbox: asyncio.Queue[str] = asyncio.Queue()
        self._listener: Any = None  # asyncpg.Connection
        self._tasks: set[asyncio.Task[None]] = set()
        self._dispatcher: asyncio.Task[None] | None = None
        self._stopping = False
        # Per session with local subscribers: the newest id handed to them from notifications.
        self._position: dict[str, int] = {}

    # --- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Listens (fails if PostgreSQL cannot be reached) and starts delivering."""
        await self._listen()
        self._dispatcher = asyncio.create_task(self._dispatch(), name="event-bus-dispatch")

    async def stop(self) -> None:
        self._stopping = True
        self.close_all()
        for task in [*self._tasks, *([self._dispatcher] if self._dispatcher else [])]:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._dispatcher is not None:
            await asyncio.gather(self._dispatcher, return_exceptions=True)
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await self._listener.close(timeout=5)
            self._listener = None

    @property
    def listening(self) -> bool:
        """Whether notifications reach this process now (else its streams get no live events
        until the connection is back: readiness says so)."""
        return self._listener is not None and not self._listener.is_closed()

    async def _listen(self) -> None:
        url = self._engine.url
        args: dict[str, Any] = url.translate_connect_args(username="user")
        if "ssl" in url.query:  # config.py turns libpq's sslmode into asyncpg's ssl
            args["ssl"] = url.query["ssl"]
        connection = await asyncpg.connect(**args, timeout=10)
        await connection.add_listener(self._channel_name, self._notified)
        connection.add_termination_listener(self._lost)
        self._listener = connection

    def _notified(self, _connection: object, _pid: int, _channel: str, payload: str) -> None:
        self._inbox.put_nowait(payload)

    def _lost(self, _connection: object) -> None:
        if not self._stopping:
            logger.warning("event bus: lost the LISTEN connection to PostgreSQL; reconnecting")
            self._spawn(self._reconnect())

    async def _reconnect(self) -> None:
        self._listener = None
        attempt = 0
        while not self._stopping:
            try:
                await self._listen()
            except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
                delay = RECONNECT_DELAYS[min(attempt, len(RECONNECT_DELAYS) - 1)]
                logger.warning("event bus: reconnect failed (%s); retrying in %s s", exc, delay)
                attempt += 1
                await asyncio.sleep(delay)  # backoff between reconnection attempts
                continue
            # Listening again: whatever was committed before is in the store, whatever comes
            # after is notified. Each subscriber reads the store from its own last id.
            self._position.clear()
            for channel in list(self._channels.values()):
                for subscriber in list(channel.subscribers):
                    _resync(subscriber)
            logger.info("event bus: listening again")
            return

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- the EventBus protocol -----------------------------------------------------------

    async def publish(self, session_id: str, type: str, data: Mapping[str, object]) -> StoredEvent:
        """Stores the event; its notification reaches subscribers in every process (this one
        included) once the transaction commits."""
        return await self._store.append(session_id, type, dict(data))

    def close(self, session_id: str) -> None:
        """Ends the session's subscriptions in every process, after the events already
        published (the close is queued behind their notifications)."""
        if self._listener is None or self._stopping:
            super().close(session_id)
            return
        self._spawn(self._notify_close(session_id))

    def close_all(self) -> None:
        """This process's subscriptions only (it is stopping; the others go on)."""
        super().close_all()

    async def _notify_close(self, session_id: str) -> None:
        try:
            async with self._engine.begin() as connection:
                notify = func.pg_notify(self._channel_name, f"{session_id}:{CLOSE}")
                await connection.execute(select(notify))
        except Exception:
            logger.warning("event bus: could not notify the close of %s", session_id, exc_info=True)
            super().close(session_id)

    def _release(self, session_id: str, channel: _Channel) -> None:
        super()._release(session_id, channel)
        if session_id not in self._channels:
            self._position.pop(session_id, None)

    # --- delivery ------------------------------------------------------------------------

    async def _dispatch(self) -> None:
        while True:
            payloads = [await self._inbox.get()]
            while not self._inbox.empty():
                payloads.append(self._inbox.get_nowait())
            announced: dict[str, list[int]] = {}
            closed: set[str] = set()
            for payload in payloads:
                session_id, _, what = payload.rpartition(":")
                if what == CLOSE:
                    closed.add(session_id)
                elif what.isdigit():
                    announced.setdefault(session_id, []).append(int(what))
            sessions = [s for s in dict.fromkeys([*announced, *closed]) if s in self._channels]
            results = await asyncio.gather(
                *(self._deliver(s, announced.get(s, []), s in closed) for s in sessions),
                return_exceptions=True,
            )
            for session_id, result in zip(sessions, results, strict=True):
                if isinstance(result, Exception):
                    # The store failed: send the subscribers to it, they retry on their own.
                    logger.warning("event bus: delivery for %s failed: %r", session_id, result)
                    self._position.pop(session_id, None)
                    for subscriber in self._subscribers(session_id):
                        _resync(subscriber)

    async def _deliver(self, session_id: str, ids: list[int], closing: bool) -> None:
        channel = self._channels.get(session_id)
        if channel is None:
            return
        if ids:
            position = self._position.get(session_id, min(ids) - 1)
            if max(ids) > position:
                async for event in self._replay(session_id, position):
                    position = event.id
                    for subscriber in self._subscribers(session_id):
                        _offer(subscriber, event)
            if self._channels.get(session_id) is channel:
                self._position[session_id] = position
        if closing:
            for subscriber in self._subscribers(session_id):
                _offer(subscriber, _CLOSE)

    def _subscribers(self, session_id: str) -> list[_Subscriber]:
        channel = self._channels.get(session_id)
        return list(channel.subscribers) if channel else []


def _resync(subscriber: _Subscriber) -> None:
    """Send the subscriber to the store; a full queue is emptied (what it holds is stored),
    keeping a pending close."""
    queue, closing = subscriber.queue, False
    if queue.full():
        while not queue.empty():
            closing = closing or queue.get_nowait() is _CLOSE
    queue.put_nowait(_RESYNC)
    if closing:
        queue.put_nowait(_CLOSE)
