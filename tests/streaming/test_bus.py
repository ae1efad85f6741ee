"""The EventBus contract, on every EventStore: the in-memory one, and the database store on SQLite
and on PostgreSQL. Replay then live with no gap and no duplicate, id order, Last-Event-ID resume,
fan-out to every subscriber, separate sessions, and slow readers never blocking writers."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from computer_use.config import Settings
from computer_use.database import create_engine, create_sessionmaker, migrate, transaction
from computer_use.sessions.models import Session, SessionStatus
from computer_use.streaming.bus import (
    EventBus,
    EventStore,
    InMemoryEventStore,
    InProcessEventBus,
    StoredEvent,
)
from computer_use.streaming.store import DatabaseEventStore

DEADLINE = 20.0


class YieldingStore(InMemoryEventStore):
    """Gives the loop away inside every call, as a database round trip would."""

    async def append(self, session_id: str, type: str, data: dict[str, Any]) -> StoredEvent:
        await asyncio.sleep(0)
        event = await super().append(session_id, type, data)
        await asyncio.sleep(0)
        return event

    async def since(self, session_id: str, after_id: int, limit: int = 1000) -> list[StoredEvent]:
        await asyncio.sleep(0)
        return await super().since(session_id, after_id, limit)


@dataclass
class Backend:
    store: EventStore
    new_session: Callable[[], Awaitable[str]]  # an id events can be stored under

    def bus(self, **options: int) -> InProcessEventBus:
        return InProcessEventBus(self.store, **options)


async def _memory_session() -> str:
    return str(uuid.uuid4())


@pytest.fixture(scope="module", params=["memory", "sqlite", "postgresql"])
def database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Settings | None:
    """None for the in-memory store; else a migrated database (Alembic runs its own loop, so
    this fixture is not async)."""
    if request.param == "memory":
        return None
    data_dir: Path = tmp_path_factory.mktemp("bus-db")
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else ""
    settings = Settings(_env_file=None, data_dir=data_dir, database_url=url)
    migrate(settings, quiet=True)
    return settings


@pytest.fixture(scope="module")
async def backend(database: Settings | None) -> AsyncIterator[Backend]:
    if database is None:
        yield Backend(YieldingStore(), _memory_session)
        return
    settings = database
    engine = create_engine(settings)
    sessionmaker = create_sessionmaker(engine)

    async def new_session() -> str:
        now = datetime.now(UTC)
        session_id = str(uuid.uuid4())
        async with transaction(sessionmaker) as db:
            db.add(
                Session(
                    id=session_id,
                    title="bus contract",
                    model="m",
                    status=SessionStatus.ACTIVE,
                    created_at=now,
                    updated_at=now,
                    last_activity_at=now,
                )
            )
        return session_id

    try:
        yield Backend(DatabaseEventStore(sessionmaker), new_session)
    finally:
        await engine.dispose()


async def collect(bus: EventBus, session: str, last: int | None, until: int) -> list[int]:
    ids: list[int] = []
    async for event in bus.subscribe(session, last):
        ids.append(event.id)
        if event.id >= until:
            break
    return ids


async def test_replay_then_live_with_concurrent_publishers_has_no_gaps_or_dups(
    backend: Backend,
) -> None:
    bus, sid = backend.bus(replay_batch=7), await backend.new_session()
    per_publisher = 60
    for n in range(20):  # some history before anyone subscribes
        await bus.publish(sid, "text", {"n": n})
    total = 20 + 3 * per_publisher

    async def publisher(name: str) -> None:
        for n in range(per_publisher):
            await bus.publish(sid, "text", {"from": name, "n": n})
            if random.random() < 0.3:
                await asyncio.sleep(0)

    joins = [(None, 0), (0, 5), (10, 40), (19, 200), (None, 400), (100, 10)]

    async def late_subscriber(last: int | None, wait: int) -> list[int]:
        for _ in range(wait):  # join at a random point of the publishing
            await asyncio.sleep(0)
        return await collect(bus, sid, last, total)

    async with asyncio.timeout(DEADLINE):
        subscribers = [asyncio.create_task(late_subscriber(*join)) for join in joins]
        await asyncio.gather(*(publisher(p) for p in "abc"))
        results = await asyncio.gather(*subscribers)
    for (last, _), ids in zip(joins, results, strict=True):
        assert ids == list(range((last or 0) + 1, total + 1))


async def test_replay_returns_what_was_published_in_id_order(backend: Backend) -> None:
    bus, sid = backend.bus(replay_batch=3), await backend.new_session()
    published = [
        await bus.publish(sid, kind, {"n": n, "text": f"é {n}", "nested": {"list": [n, None]}})
        for n, kind in enumerate(["status", "text", "tool_use", "text", "message_complete"] * 2)
    ]
    assert [e.id for e in published] == list(range(1, 11))
    stream = bus.subscribe(sid, None)
    async with asyncio.timeout(DEADLINE):
        replayed = [await anext(stream) for _ in published]
    await stream.aclose()
    assert [(e.id, e.type, e.data) for e in replayed] == [(e.id, e.type, e.data) for e in published]


async def test_last_event_id_resumes_after_a_disconnect(backend: Backend) -> None:
    bus, sid = backend.bus(), await backend.new_session()
    for n in range(5):
        await bus.publish(sid, "text", {"n": n})
    stream = bus.subscribe(sid, None)
    async with asyncio.timeout(DEADLINE):
        seen = [(await anext(stream)).id for _ in range(3)]
    await stream.aclose()  # the client goes away after id 3 ...
    for n in range(5, 8):  # ... while the run goes on
        await bus.publish(sid, "text", {"n": n})
    async with asyncio.timeout(DEADLINE):
        resumed = await collect(bus, sid, seen[-1], 8)
    assert seen + resumed == list(range(1, 9))
    # Resuming at the newest id yields only what comes next.
    stream = bus.subscribe(sid, 8)
    waiting = asyncio.ensure_future(anext(stream))
    await bus.publish(sid, "text", {"n": 8})
    async with asyncio.timeout(DEADLINE):
        assert (await waiting).id == 9
    await stream.aclose()


async def test_every_live_subscriber_gets_every_event(backend: Backend) -> None:
    bus, sid = backend.bus(), await backend.new_session()
    streams = [bus.subscribe(sid, None) for _ in range(4)]
    first = [asyncio.ensure_future(anext(s)) for s in streams]  # all registered and waiting
    for n in range(12):
        await bus.publish(sid, "text", {"n": n})
    async with asyncio.timeout(DEADLINE):
        for stream, pending in zip(streams, first, strict=True):
            ids = [(await pending).id] + [(await anext(stream)).id for _ in range(11)]
            assert ids == list(range(1, 13))
    for stream in streams:
        await stream.aclose()


async def test_close_ends_subscriptions_after_what_they_were_sent(backend: Backend) -> None:
    bus, sid = backend.bus(), await backend.new_session()
    stream = bus.subscribe(sid, None)
    pending = asyncio.ensure_future(anext(stream))
    await bus.publish(sid, "text", {"n": 0})
    async with asyncio.timeout(DEADLINE):
        assert (await pending).id == 1  # subscribed and live
    await bus.publish(sid, "text", {"n": 1})
    await bus.publish(sid, "text", {"n": 2})
    bus.close(sid)
    async with asyncio.timeout(DEADLINE):
        assert [e.id async for e in stream] == [2, 3]


async def test_sessions_are_separate_and_channels_are_released(backend: Backend) -> None:
    bus = backend.bus()
    a, b = await backend.new_session(), await backend.new_session()
    await bus.publish(a, "text", {"x": 1})
    await bus.publish(a, "text", {"x": 2})
    await bus.publish(b, "text", {"x": 3})
    stream = bus.subscribe(b, None)
    async with asyncio.timeout(DEADLINE):
        event = await anext(stream)
    assert (event.id, event.data) == (1, {"x": 3})  # ids count per session
    await stream.aclose()
    assert bus._channels == {}


async def test_slow_subscriber_does_not_block_publishers_and_catches_up(backend: Backend) -> None:
    bus, sid = backend.bus(queue_size=4), await backend.new_session()
    stream = bus.subscribe(sid, None)
    pending = asyncio.ensure_future(anext(stream))
    await bus.publish(sid, "text", {"n": 0})
    first = await pending  # live now, and then it stops reading
    async with asyncio.timeout(DEADLINE):
        for n in range(1, 100):
            await bus.publish(sid, "text", {"n": n})
    rest = []
    async with asyncio.timeout(DEADLINE):
        async for event in stream:
            rest.append(event)
            if event.id == 100:
                break
    assert [first.id] + [e.id for e in rest] == list(range(1, 101))
    assert rest[-1].data == {"n": 99}
    await stream.aclose()
