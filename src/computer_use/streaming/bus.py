"""Per-session event bus with replay: every event stored first, then fanned out live.

Two protocols: `EventStore` is the durable half (the database in production), `EventBus` what
publishers and subscribers see. `InProcessEventBus` is the bus of one process, fanning out on
top of any store. A subscriber reconnecting with Last-Event-ID replays from the store and then
goes live with no gap and no duplicate, even while events are being published. The bus spanning
several processes, `PostgresEventBus` (pgbus.py, LISTEN/NOTIFY), is a subclass;
tests/streaming/test_bus.py is the contract every bus and store must pass.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol


@dataclass(frozen=True)
class StoredEvent:
    id: int  # increasing per session, starting at 1
    type: str
    data: dict[str, Any]
    created_at: datetime


class EventStore(Protocol):
    async def append(self, session_id: str, type: str, data: dict[str, Any]) -> StoredEvent:
        """Store an event under the session's next id."""

    async def since(self, session_id: str, after_id: int, limit: int = 1000) -> list[StoredEvent]:
        """Events with id > after_id, oldest first, at most `limit`."""


class EventBus(Protocol):
    async def publish(self, session_id: str, type: str, data: Mapping[str, object]) -> StoredEvent:
        """Store the event, then deliver it to the session's live subscribers."""

    def subscribe(
        self, session_id: str, last_event_id: int | None = None
    ) -> AsyncGenerator[StoredEvent, None]:
        """Events after `last_event_id` (all when None) in id order, then live ones, until the
        subscription is closed; no gap, no duplicate."""

    def close(self, session_id: str) -> None:
        """End every subscription of the session (after the events already delivered)."""

    def close_all(self) -> None:
        """End every subscription (the server is stopping)."""


class InMemoryEventStore:
    """An EventStore in a dict: for tests, and the reference for the contract."""

    def __init__(self) -> None:
        self._events: dict[str, list[StoredEvent]] = {}

    async def append(self, session_id: str, type: str, data: dict[str, Any]) -> StoredEvent:
        events = self._events.setdefault(session_id, [])
        event = StoredEvent(len(events) + 1, type, data, datetime.now(UTC))
        events.append(event)
        return event

    async def since(self, session_id: str, after_id: int, limit: int = 1000) -> list[StoredEvent]:
        events = self._events.get(session_id, [])
        # ids are 1..n with no holes here, so the list index is the id
        return events[max(after_id, 0) : max(after_id, 0) + limit]


class _Resync:
    """Queued in place of events a subscriber was too slow to take: read them from the store."""


_RESYNC = _Resync()


class _Close:
    """Queued to end a subscription: the session was deleted or the server is stopping."""


_CLOSE = _Close()


@dataclass(eq=False)
class _Subscriber:
    queue: asyncio.Queue[StoredEvent | _Resync | _Close]


@dataclass
class _Channel:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    subscribers: set[_Subscriber] = field(default_factory=set)
    publishing: int = 0


class InProcessEventBus:
    """The EventBus of one process: subscribers are queues in this process."""

    def __init__(
        self, store: EventStore, *, queue_size: int = 1000, replay_batch: int = 500
    ) -> None:
        self._store = store
        self._queue_size = queue_size
        self._replay_batch = replay_batch
        self._channels: dict[str, _Channel] = {}

    def _channel(self, session_id: str) -> _Channel:
        return self._channels.setdefault(session_id, _Channel())

    def _release(self, session_id: str, channel: _Channel) -> None:
        if not channel.subscribers and not channel.publishing:
            self._channels.pop(session_id, None)

    async def publish(self, session_id: str, type: str, data: Mapping[str, object]) -> StoredEvent:
        """Store the event, then hand it to every live subscriber without waiting for them."""
        channel = self._channel(session_id)
        channel.publishing += 1
        try:
            # One publisher at a time per session, so subscribers receive events in id order.
            async with channel.lock:
                event = await self._store.append(session_id, type, dict(data))
                for subscriber in channel.subscribers:
                    _offer(subscriber, event)
        finally:
            channel.publishing -= 1
            self._release(session_id, channel)
        return event

    async def subscribe(
        self, session_id: str, last_event_id: int | None = None
    ) -> AsyncGenerator[StoredEvent, None]:
        """Events after `last_event_id` (all stored events when None), then live ones, forever.

        The subscriber is registered before the replay reads the store: an event is either
        stored before registration (so the replay reads it) or offered to the queue after
        it; events seen both ways are dropped by id.
        """
        channel = self._channel(session_id)
        subscriber = _Subscriber(asyncio.Queue(self._queue_size))
        channel.subscribers.add(subscriber)
        last = last_event_id or 0
        try:
            async for event in self._replay(session_id, last):
                last = event.id
                yield event
            while True:
                item = await subscriber.queue.get()
                if isinstance(item, _Close):
                    return
                if isinstance(item, _Resync):
                    async for event in self._replay(session_id, last):
                        last = event.id
                        yield event
                elif item.id > last:
                    last = item.id
                    yield item
        finally:
            channel.subscribers.discard(subscriber)
            self._release(session_id, channel)

    def close(self, session_id: str) -> None:
        """Ends every subscription of the session (after what they have already queued)."""
        channel = self._channels.get(session_id)
        for subscriber in list(channel.subscribers if channel else ()):
            _offer(subscriber, _CLOSE)

    def close_all(self) -> None:
        for session_id in list(self._channels):
            self.close(session_id)

    async def _replay(self, session_id: str, after_id: int) -> AsyncIterator[StoredEvent]:
        while True:
            batch = await self._store.since(session_id, after_id, self._replay_batch)
            for event in batch:
                after_id = event.id
                yield event
            if len(batch) < self._replay_batch:
                return


def _offer(subscriber: _Subscriber, item: StoredEvent | _Close) -> None:
    try:
        subscriber.queue.put_nowait(item)
    except asyncio.QueueFull:
        # Never block the publisher on a slow reader: drop what it has queued and tell it to
        # catch up from the store, where every event already is.
        while not subscriber.queue.empty():
            subscriber.queue.get_nowait()
        subscriber.queue.put_nowait(_RESYNC)
        if isinstance(item, _Close):
            subscriber.queue.put_nowait(item)
