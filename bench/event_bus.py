"""Event delivery latency: publish to a live SSE subscriber's queue, in one process
(InProcessEventBus) against across two (PostgresEventBus: published through one bus, received
through another with its own engine and listening connection), on the same PostgreSQL
database, measured in the same run.

    .venv/bin/python bench/event_bus.py [--events 300] [--admin-dsn postgresql://...]

Creates a throw-away database and drops it. Each event is published after the previous one
arrived, so the figure is one event's way, not a queue's backlog.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncpg
from bench.common import Report, percentile

from computer_use.config import Settings
from computer_use.database import (
    create_engine,
    create_sessionmaker,
    migrate,
    transaction,
)
from computer_use.sessions.models import Session, SessionStatus
from computer_use.streaming.bus import InProcessEventBus
from computer_use.streaming.pgbus import CHANNEL, PostgresEventBus
from computer_use.streaming.store import DatabaseEventStore


async def _admin(dsn: str, sql: str) -> None:
    connection = await asyncpg.connect(dsn, timeout=10)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


async def _latencies(publisher: Any, subscriber: Any, session_id: str, n: int) -> list[float]:
    stream = subscriber.subscribe(session_id, None)
    first = asyncio.ensure_future(anext(stream))
    await publisher.publish(session_id, "status", {"status": "active"})
    await first  # subscribed and live
    out = []
    for i in range(n):
        start = time.perf_counter()
        await publisher.publish(session_id, "text", {"text": f"step {i}"})
        await anext(stream)
        out.append((time.perf_counter() - start) * 1000)
    await stream.aclose()
    return out


async def main(events: int, admin_dsn: str) -> None:
    name = f"cu_bench_bus_{uuid.uuid4().hex[:8]}"
    await _admin(admin_dsn, f'CREATE DATABASE "{name}"')
    engines = []
    try:
        settings = Settings(
            _env_file=None,
            data_dir=Path(tempfile.mkdtemp(prefix="cu-bench-bus-")),
            database_url=f"{admin_dsn.rsplit('/', 1)[0]}/{name}",
        )
        await asyncio.to_thread(migrate, settings, quiet=True)
        engines = [create_engine(settings), create_engine(settings)]
        makers = [create_sessionmaker(e) for e in engines]

        async def new_session() -> str:
            now = datetime.now(UTC)
            sid = str(uuid.uuid4())
            async with transaction(makers[0]) as db:
                db.add(
                    Session(
                        id=sid,
                        title="bench",
                        model="m",
                        status=SessionStatus.ACTIVE,
                        created_at=now,
                        updated_at=now,
                        last_activity_at=now,
                    )
                )
            return sid

        local = InProcessEventBus(DatabaseEventStore(makers[0]))
        a, b = (
            PostgresEventBus(DatabaseEventStore(m, notify_channel=CHANNEL), e)
            for m, e in zip(makers, engines, strict=True)
        )
        await a.start()
        await b.start()
        report = Report()
        print(f"{events} events, each published after the previous one arrived:")
        for label, publisher, subscriber in [
            ("EVENT_BUS=local, one process", local, local),
            ("EVENT_BUS=postgres, one process", a, a),
            ("EVENT_BUS=postgres, published on A, received on B", a, b),
        ]:
            ms = await _latencies(publisher, subscriber, await new_session(), events)
            report.add(f"{label}: p50", f"{percentile(ms, 0.5):.2f} ms")
            report.add(f"{label}: p95", f"{percentile(ms, 0.95):.2f} ms")
        await a.stop()
        await b.stop()
    finally:
        for engine in engines:
            await engine.dispose()
        await _admin(admin_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300)
    parser.add_argument("--admin-dsn", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    asyncio.run(main(args.events, args.admin_dsn))
