"""The EventBus contract, on every EventStore: the in-memory one, and the database store on SQLite
and on PostgreSQL; and on the bus across processes (PostgreSQL LISTEN/NOTIFY), within one
process and split over two (publishing on one, subscribing on the other, each with its own
engine and listening connection). Replay then live with no gap and no duplicate, id order,
Last-Event-ID resume, fan-out to every subscriber, separate sessions, and slow readers never
blocking writers."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

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
from computer_use.streaming.pgbus import PostgresEventBus
from computer_use.streaming.store import DatabaseEventStore
from tests.conftest import _pg_admin
from tests.helpers import wait_for_async

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


class SplitBus:
    """Two processes' buses on one database, seen as one: events are published (and sessions
    closed) through `publisher`, subscribed to through `subscriber`."""

    def __init__(self, publisher: PostgresEventBus, subscriber: PostgresEventBus) -> None:
        self.publisher, self.subscriber = publisher, subscriber
        self._channels = subscriber._channels

    async def publish(self, session_id: str, type: str, data: Any) -> StoredEvent:
        return await self.publisher.publish(session_id, type, data)

    def subscribe(self, session_id: str, last_event_id: int | None = None) -> Any:
        return self.subscriber.subscribe(session_id, last_event_id)

    def close(self, session_id: str) -> None:
        self.publisher.close(session_id)

    def close_all(self) -> None:
        self.subscriber.close_all()


@dataclass
class Backend:
    store: EventStore
    new_session: Callable[[], Awaitable[str]]  # an id events can be stored under
    kind: str = "local"  # local | postgres (one process) | replicas (two processes)
    engines: tuple[AsyncEngine, ...] = ()
    started: list[PostgresEventBus] = field(default_factory=list)

    async def bus(self, **options: int) -> Any:
        """InProcessEventBus, PostgresEventBus or SplitBus: an EventBus."""
        if self.kind == "local":
            return InProcessEventBus(self.store, **options)
        buses = []
        for engine in self.engines[: 2 if self.kind == "replicas" else 1]:
            store = DatabaseEventStore(create_sessionmaker(engine), notify_channel=CHANNEL)
            bus = PostgresEventBus(store, engine, channel=CHANNEL, **options)
            await bus.start()
            self.started.append(bus)
            buses.append(bus)
        return buses[0] if len(buses) == 1 else SplitBus(buses[0], buses[1])


CHANNEL = f"cu_test_{uuid.uuid4().hex[:8]}"  # not the servers' channel, should they share it


async def _memory_session() -> str:
    return str(uuid.uuid4())


@pytest.fixture(
    scope="module", params=["memory", "sqlite", "postgresql", "pg-notify", "pg-replicas"]
)
def database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, Settings | None]:
    """None for the in-memory store; else a migrated database (Alembic runs its own loop, so
    this fixture is not async)."""
    if request.param == "memory":
        return request.param, None
    data_dir: Path = tmp_path_factory.mktemp("bus-db")
    sqlite = request.param == "sqlite"
    url = "" if sqlite else request.getfixturevalue("postgres_url")
    settings = Settings(_env_file=None, data_dir=data_dir, database_url=url)
    migrate(settings, quiet=True)
    return request.param, settings


@pytest.fixture(scope="module")
async def backend(database: tuple[str, Settings | None]) -> AsyncIterator[Backend]:
    kind, settings = database
    if settings is None:
        yield Backend(YieldingStore(), _memory_session)
        return
    engines = tuple(create_engine(settings) for _ in range(2 if kind == "pg-replicas" else 1))
    sessionmaker = create_sessionmaker(engines[0])

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

    bus_kind = {"pg-notify": "postgres", "pg-replicas": "replicas"}.get(kind, "local")
    backend = Backend(DatabaseEventStore(sessionmaker), new_session, bus_kind, engines)
    try:
        yield backend
    finally:
        for bus in backend.started:
            await bus.stop()
        for engine in engines:
            await engine.dispose()


async def collect(
    bus: EventBus | SplitBus, session: str, last: int | None, until: int
) -> list[int]:
    ids: list[int] = []
    async for event in bus.subscribe(session, last):
        ids.append(event.id)
        if event.id >= until:
            break
    return ids


async def test_replay_then_live_with_concurrent_publishers_has_no_gaps_or_dups(
    backend: Backend,
) -> None:
    bus, sid = await backend.bus(replay_batch=7), await backend.new_session()
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
    bus, sid = await backend.bus(replay_batch=3), await backend.new_session()
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
    bus, sid = await backend.bus(), await backend.new_session()
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
    bus, sid = await backend.bus(), await backend.new_session()
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
    bus, sid = await backend.bus(), await backend.new_session()
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
    bus = await backend.bus()
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
    bus, sid = await backend.bus(queue_size=4), await backend.new_session()
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


async def test_a_lost_listening_connection_is_reopened_and_nothing_is_missed(
    backend: Backend,
) -> None:
    if backend.kind == "local":
        pytest.skip("only the bus across processes holds a listening connection")
    bus, sid = await backend.bus(), await backend.new_session()
    listening = bus.subscriber if isinstance(bus, SplitBus) else bus
    stream = bus.subscribe(sid, None)
    pending = asyncio.ensure_future(anext(stream))
    await bus.publish(sid, "text", {"n": 0})
    async with asyncio.timeout(DEADLINE):
        assert (await pending).id == 1
    lost = listening._listener
    database = backend.engines[0].url.database
    # No new connection to the database until the events below are stored: the bus cannot
    # listen again before they are all committed, unnotified.
    await _pg_admin(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
    try:
        await _pg_admin(f"SELECT pg_terminate_backend({lost.get_server_pid()})")
        await wait_for_async(
            _not_listening(listening), timeout=DEADLINE, what="the lost connection noticed"
        )
        assert not listening.listening  # what readiness reports
        for n in range(1, 30):  # on the pool's open connections
            await bus.publish(sid, "text", {"n": n})
    finally:
        await _pg_admin(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
    await wait_for_async(
        lambda: _listening_again(listening, lost), timeout=DEADLINE, what="a new connection"
    )
    assert listening.listening
    await bus.publish(sid, "text", {"n": 30})
    async with asyncio.timeout(DEADLINE):
        ids = [(await anext(stream)).id for _ in range(30)]
    assert ids == list(range(2, 32))
    await stream.aclose()


def _not_listening(bus: PostgresEventBus) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return bus._listener is None

    return check


async def _listening_again(bus: PostgresEventBus, lost: object) -> bool:
    return bus._listener is not None and bus._listener is not lost
