"""SessionService.transition, the one function that changes a session's status: it writes,
then announces, in that order, on a real SQLite database (no desktop is started)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select

from computer_use import errors
from computer_use.cli import migrate
from computer_use.config import Settings
from computer_use.runtime import Runtime, build_runtime
from computer_use.sessions.models import SessionStatus
from computer_use.streaming.models import Event


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    settings = Settings(_env_file=None, data_dir=tmp_path)
    migrate(settings)  # synchronous (Alembic runs its own loop): before the test's loop
    return settings


@pytest.fixture
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    runtime = build_runtime(settings)
    try:
        yield runtime
    finally:
        await runtime.runner.shutdown()
        await runtime.engine.dispose()


async def events_of(runtime: Runtime, session_id: str) -> list[tuple[str, dict[str, object]]]:
    async with runtime.sessionmaker() as db:
        rows = await db.scalars(
            select(Event).where(Event.session_id == session_id).order_by(Event.id)
        )
        return [(row.type, row.data) for row in rows]


async def test_a_transition_writes_the_status_then_announces_it(runtime: Runtime) -> None:
    sessions = runtime.sessions
    session = await sessions.create(title="t", model=None)
    changed = await sessions.transition(session.id, SessionStatus.ERROR, "Xvfb exited")
    assert changed is not None and changed.status == SessionStatus.ERROR
    stored = await sessions.get(session_id=session.id)
    assert (stored.status, stored.status_detail) == (SessionStatus.ERROR, "Xvfb exited")
    assert await events_of(runtime, session.id) == [
        ("status", {"status": "error", "detail": "Xvfb exited"})
    ]

    with pytest.raises(errors.NotFound):
        await sessions.transition("no-such-session", SessionStatus.ACTIVE)


async def test_a_conditional_transition_changes_and_announces_only_from_its_status(
    runtime: Runtime,
) -> None:
    sessions = runtime.sessions
    session = await sessions.create(title="t", model=None)
    await sessions.transition(session.id, SessionStatus.PROCESSING)
    done = ("message_complete", {"stop_reason": "end_turn"})

    # The run's end: message_complete between the write and the status event.
    changed = await sessions.transition(
        session.id, SessionStatus.ACTIVE, only_from=SessionStatus.PROCESSING, first=done
    )
    assert changed is not None and changed.status == SessionStatus.ACTIVE
    # Not processing any more: no change, no status event, but the news still goes out.
    again = await sessions.transition(
        session.id, SessionStatus.ACTIVE, only_from=SessionStatus.PROCESSING, first=done
    )
    assert again is None
    assert (await sessions.get(session_id=session.id)).status == SessionStatus.ACTIVE
    assert await events_of(runtime, session.id) == [
        ("status", {"status": "processing", "detail": None}),
        done,
        ("status", {"status": "active", "detail": None}),
        done,
    ]
    # A session that is gone is no error for a conditional transition.
    assert (
        await sessions.transition("gone", SessionStatus.ACTIVE, only_from=SessionStatus.PROCESSING)
        is None
    )
