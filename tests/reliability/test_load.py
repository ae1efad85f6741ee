"""Load, short form: 20 sessions (MAX_DISPLAYS' default) running agents at once with 200 SSE
subscribers, on SQLite and PostgreSQL. No `database is locked`, no pool exhaustion, no lost or
repeated event. (`make soak` runs the long form.)"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from computer_use.loopback import LoopbackModelServer, RecordedRequest, Reply, bash, say
from tests.conftest import PG_ADMIN_DSN, _pg_admin
from tests.reliability.conftest import (
    SseReader,
    is_type,
    make_server,
    post_message,
    start,
    wait_status,
)

SESSIONS = 20  # MAX_DISPLAYS default
SUBSCRIBERS_PER_SESSION = 10  # 200 in all
STEPS = 3  # bash tool calls per run, then a final answer
LOG_RED_FLAGS = ("database is locked", "QueuePool limit", "Traceback", "unhandled error")


def respond(request: RecordedRequest) -> Reply:
    """Each session's run by its own history, whatever order the requests interleave in."""
    step = (len(request.messages) - 1) // 2
    if step < STEPS:
        return say(f"Step {step}.", bash(f"echo step-{step}"))
    return say("All steps done.")


@pytest.fixture(scope="module")
async def load_model() -> AsyncIterator[LoopbackModelServer]:
    async with LoopbackModelServer(respond, chunk_size=32) as server:
        yield server


@pytest.fixture(scope="module")
async def fresh_postgres() -> AsyncIterator[str]:
    """A database of its own: rows of other servers' sessions would be restored on start."""
    name = f"cu_load_{uuid.uuid4().hex[:10]}"
    await _pg_admin(f'CREATE DATABASE "{name}"')
    yield f"{PG_ADMIN_DSN.rsplit('/', 1)[0]}/{name}"
    await _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.parametrize(
    ("database", "display_base", "letter"), [("sqlite", 1060, "g"), ("postgresql", 1070, "h")]
)
async def test_concurrent_runs_with_many_subscribers_lose_and_repeat_nothing(
    load_model: LoopbackModelServer,
    tmp_path: Path,
    fresh_postgres: str,
    database: str,
    display_base: int,
    letter: str,
) -> None:
    url = fresh_postgres if database == "postgresql" else ""
    server = make_server(
        tmp_path,
        display_base=display_base,
        letter=letter,
        max_displays=SESSIONS,
        ANTHROPIC_BASE_URL=load_model.base_url,
        DATABASE_URL=url,
    )
    await start(server)
    limits = httpx.Limits(max_connections=SESSIONS * SUBSCRIBERS_PER_SESSION + 20)
    try:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=60, limits=limits) as http:
            created = await asyncio.gather(
                *(
                    http.post("/api/v1/sessions", json={"title": f"load {i}"})
                    for i in range(SESSIONS)
                )
            )
            assert [r.status_code for r in created] == [201] * SESSIONS, [r.text for r in created]
            sids = [r.json()["id"] for r in created]
            readers = {
                sid: [SseReader(http, sid).start() for _ in range(SUBSCRIBERS_PER_SESSION)]
                for sid in sids
            }
            await asyncio.gather(*(post_message(http, sid, "count to three") for sid in sids))
            everyone = [reader for group in readers.values() for reader in group]
            await asyncio.gather(*(r.until(is_type("message_complete"), 45) for r in everyone))
            await asyncio.gather(*(r.close() for r in everyone))

            for sid, group in readers.items():
                replay = SseReader(http, sid, last_event_id=0).start()
                complete = await replay.until(is_type("message_complete"))
                await replay.close()
                ids = [e[0] for e in replay.events]
                assert ids == list(range(1, len(ids) + 1)), ids
                stored = [e for e in replay.events if e[0] <= complete[0]]
                for reader in group:  # each read up to message_complete, then was closed
                    got = [e for e in reader.events if e[0] <= complete[0]]
                    assert got == stored, f"a subscriber of {sid} differs from the store"
                assert replay.types().count("tool_result") == STEPS
                assert complete[2]["stop_reason"] == "end_turn"
                await wait_status(http, sid, "active")
            assert load_model.rejections == []
    finally:
        await asyncio.to_thread(server.stop)
    log = server.log_path.read_text()
    flagged = [flag for flag in LOG_RED_FLAGS if flag in log]
    assert not flagged, log[-4000:]
