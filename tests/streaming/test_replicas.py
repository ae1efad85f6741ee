"""Two API processes on one PostgreSQL database with EVENT_BUS=postgres: a run started through
replica A is watched live on replica B's SSE, and a client that drops B's stream mid-run and
resumes on A with Last-Event-ID gets every event exactly once. A session deleted through A ends
B's streams of it. Both count rate limits in one Redis database (RATE_LIMIT_STORAGE_URL).

The model is the loopback Messages-API server; the desktop is real and lives on A. The run is
held inside a bash command until the test uploads a file, so the reconnect happens mid-run.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from computer_use.config import Settings
from computer_use.database import create_engine, create_sessionmaker
from computer_use.loopback import LoopbackModelServer
from computer_use.loopback.script import bash, say
from computer_use.sessions.records import SessionRecords
from tests import slots
from tests.conftest import PG_ADMIN_DSN, _pg_admin, server_env
from tests.helpers import ServerProcess

KEY = "sk-ant-test-key-0123456789"
SECRET = "replicas-share-this-secret-key-0123456789"
SESSIONS_PER_MINUTE = 5
# A Redis database per test slot, emptied at the start: counts of an earlier run are gone.
REDIS_URL = f"redis://127.0.0.1:6379/{slots.SLOT + 1}"
GATE = "while [ ! -f ~/go ]; do sleep 0.1; done; echo released"

Event = tuple[int, str, dict[str, Any]]


@pytest.fixture(scope="module")
def database_url() -> Iterator[str]:
    """A database of this module's own: both replicas restore whatever live sessions it holds."""
    name = f"cu_replicas_{uuid.uuid4().hex[:10]}"
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    yield f"{PG_ADMIN_DSN.rsplit('/', 1)[0]}/{name}"
    asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="module")
async def model() -> AsyncIterator[LoopbackModelServer]:
    async with LoopbackModelServer([], chunk_size=64) as server:
        yield server


def _replica(
    data_dir: Path, database_url: str, model: LoopbackModelServer, n: int
) -> ServerProcess:
    env = server_env(
        data_dir,
        DATABASE_URL=database_url,
        EVENT_BUS="postgres",
        SECRET_KEY=SECRET,
        RATE_LIMIT_STORAGE_URL=REDIS_URL,
        RATE_LIMIT_SESSIONS=f"{SESSIONS_PER_MINUTE}/minute",
        ANTHROPIC_BASE_URL=model.base_url,
        MAX_DISPLAYS="2",
        DESKTOP_DISPLAY_BASE=str(1800 + 20 * n),
        DESKTOP_USER_PREFIX=f"cu-r{'ab'[n]}",
    )
    return ServerProcess(env, data_dir / "server.log")


@pytest.fixture(scope="module")
def replicas(
    database_url: str, model: LoopbackModelServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()
    a, b = (
        _replica(tmp_path_factory.mktemp(f"replica-{n}"), database_url, model, i)
        for i, n in enumerate("ab")
    )
    try:
        with ThreadPoolExecutor(2) as starting:  # both at once: each start migrates under a lock
            for started in [starting.submit(a.start), starting.submit(b.start)]:
                started.result()
        yield a, b
    finally:
        a.stop()
        b.stop()


async def read_events(
    http: httpx.AsyncClient,
    session_id: str,
    *,
    until: str,
    last_event_id: int | None = None,
    timeout: float = 60.0,
    started: asyncio.Event | None = None,
) -> list[Event]:
    """The session's SSE events (after `last_event_id`), up to and including the first of type
    `until`; then the connection is dropped. `started` is set at the first event: the stream is
    subscribed (a subscription registers before it replays)."""
    headers = {} if last_event_id is None else {"Last-Event-ID": str(last_event_id)}
    events: list[Event] = []
    async with (
        asyncio.timeout(timeout),
        http.stream("GET", f"/api/v1/sessions/{session_id}/stream", headers=headers) as response,
    ):
        assert response.status_code == 200
        frame: dict[str, str] = {}
        async for line in response.aiter_lines():
            if line:
                field, _, value = line.partition(": ")
                frame[field] = value
                continue
            if "id" in frame:
                events.append((int(frame["id"]), frame["event"], json.loads(frame["data"])))
                if started is not None:
                    started.set()
                if frame["event"] == until:
                    return events
            frame = {}
    raise AssertionError(f"the stream ended before {until!r}: {events}")


async def test_a_run_on_one_replica_streams_on_the_other_and_resumes_anywhere_exactly_once(
    replicas: tuple[ServerProcess, ServerProcess], model: LoopbackModelServer
) -> None:
    a, b = replicas
    model.add(say("Waiting for the go.", bash(GATE)), say("Released, done."))
    async with (
        httpx.AsyncClient(base_url=a.base_url, timeout=30) as on_a,
        httpx.AsyncClient(base_url=b.base_url, timeout=30) as on_b,
    ):
        for http in (on_a, on_b):
            assert (await http.get("/api/v1/config")).json()["event_bus"] == "postgres"
            ready = (await http.get("/api/v1/health/ready")).json()
            assert ready["checks"]["event_bus"] == "ok"  # listening
        created = await on_a.post("/api/v1/sessions", json={"title": "replicas"})
        assert created.status_code == 201, created.text
        sid, host = created.json()["id"], created.json()["host"]
        assert host.endswith(f":{slots.prefix('cu-ra')}")  # the machine's name and A's prefix
        seen_on_b = await on_b.get(f"/api/v1/sessions/{sid}")
        assert seen_on_b.status_code == 200 and seen_on_b.json()["host"] == host

        # B streams before the run starts: what follows reaches it live, from A's run.
        started = asyncio.Event()
        watching = asyncio.create_task(read_events(on_b, sid, until="tool_use", started=started))
        await asyncio.wait_for(started.wait(), 30)  # the session's first event: `active`
        posted = await on_a.post(
            f"/api/v1/sessions/{sid}/messages",
            json={"content": "wait for the go"},
            headers={"X-Anthropic-API-Key": KEY},
        )
        assert posted.status_code == 202, posted.text
        before = await watching  # ... and B's client goes away while the bash command waits
        assert before[-1][2]["input"]["command"] == GATE

        uploaded = await on_a.put(f"/api/v1/sessions/{sid}/files/go", content=b"go")
        assert uploaded.status_code == 201, uploaded.text
        after = await read_events(on_a, sid, until="message_complete", last_event_id=before[-1][0])
        everything = await read_events(on_b, sid, until="message_complete")
        assert (await on_a.delete(f"/api/v1/sessions/{sid}")).status_code == 204

    ids = [i for i, _, _ in before + after]
    assert ids == list(range(1, len(ids) + 1)), "every event exactly once, in order"
    assert before + after == everything
    # Deltas and the live spending totals (`usage`) come between these as they happen.
    kinds = [t for _, t, _ in everything if not t.endswith("_delta") and t != "usage"]
    assert kinds[kinds.index("tool_use") :] == [
        "tool_use",
        "tool_result",
        "text",
        "message_complete",
    ]
    result = next(d for _, t, d in everything if t == "tool_result")
    assert "released" in json.dumps(result)
    assert everything[-1][2]["stop_reason"] == "end_turn"


async def test_deleting_a_session_through_one_replica_ends_its_streams_on_the_other(
    replicas: tuple[ServerProcess, ServerProcess],
) -> None:
    a, b = replicas
    async with (
        httpx.AsyncClient(base_url=a.base_url, timeout=30) as on_a,
        httpx.AsyncClient(base_url=b.base_url, timeout=30) as on_b,
    ):
        created = await on_a.post("/api/v1/sessions", json={"title": "deleted elsewhere"})
        assert created.status_code == 201, created.text
        sid = created.json()["id"]
        started = asyncio.Event()
        watching = asyncio.create_task(
            read_events(on_b, sid, until="never", timeout=30, started=started)
        )
        await asyncio.wait_for(started.wait(), 30)
        assert (await on_a.delete(f"/api/v1/sessions/{sid}")).status_code == 204
        with pytest.raises(AssertionError, match="the stream ended before 'never'"):
            await watching


async def test_requests_for_a_desktop_held_by_the_other_replica_get_409_naming_it(
    replicas: tuple[ServerProcess, ServerProcess], database_url: str
) -> None:
    a, b = replicas
    async with (
        httpx.AsyncClient(base_url=a.base_url, timeout=30) as on_a,
        httpx.AsyncClient(base_url=b.base_url, timeout=30) as on_b,
    ):
        created = await on_a.post(
            "/api/v1/sessions", json={"title": "held by A", "budget": {"max_steps": 50}}
        )
        assert created.status_code == 201, created.text
        sid, host = created.json()["id"], created.json()["host"]
        try:
            for method, path, body in [
                ("GET", "screenshot", None),
                ("POST", "messages", {"content": "hi"}),
                ("PUT", "files/note.txt", b"x"),
                ("GET", "files/", None),
                ("POST", "cancel", None),
                # The person's controls act on the run, which lives next to the desktop.
                ("POST", "pause", {}),
                ("POST", "resume", None),
                ("POST", f"approvals/{uuid.uuid4()}", {"decision": "approve"}),
                ("PATCH", "", {"approval": "ask"}),
                # The budget too: the run that keeps to it is on A.
                ("PATCH", "", {"budget": {"max_steps": 3}}),
                ("PATCH", "", {"budget": {"max_steps": 3}, "approval": "ask"}),
                ("DELETE", "", None),
            ]:
                url = f"/api/v1/sessions/{sid}/{path}".rstrip("/")
                kwargs: dict[str, Any] = {"json": body} if isinstance(body, dict) else {}
                if isinstance(body, bytes):
                    kwargs = {"content": body}
                answer = await on_b.request(
                    method, url, headers={"X-Anthropic-API-Key": KEY}, **kwargs
                )
                assert answer.status_code == 409, (method, path, answer.text)
                error = answer.json()["error"]
                assert host in error["message"] and error["details"] == {"host": host}
            unchanged = (await on_b.get(f"/api/v1/sessions/{sid}")).json()
            assert unchanged["budget"] == {"max_steps": 50} and unchanged["approval"] == "auto"
            assert (await on_a.get(f"/api/v1/sessions/{sid}/screenshot")).status_code == 200

            # A third process on the database restores and expires only what it holds.
            settings = Settings(_env_file=None, database_url=database_url, instance_name="c")
            engine = create_engine(settings)
            try:
                service = SessionRecords(
                    sessionmaker=create_sessionmaker(engine), settings=settings
                )
                assert sid not in await service.get_live_ids()
                mine = await service.create(title="held by C", model=None)
                assert mine.host == "c" and mine.id in await service.get_live_ids()
                await service.delete(session_id=mine.id)
            finally:
                await engine.dispose()
        finally:
            assert (await on_a.delete(f"/api/v1/sessions/{sid}")).status_code == 204


async def test_replicas_share_one_rate_limit_count_in_redis(
    replicas: tuple[ServerProcess, ServerProcess],
) -> None:
    """Alternating between the replicas, the limit is reached once in all, not once per
    replica (sessions created by the tests above count too; a bad body is counted, then 422).
    Last in this module: it uses up the limit."""
    accepted: list[int] = []
    async with (
        httpx.AsyncClient(base_url=replicas[0].base_url, timeout=30) as on_a,
        httpx.AsyncClient(base_url=replicas[1].base_url, timeout=30) as on_b,
    ):
        for config in [await http.get("/api/v1/config") for http in (on_a, on_b)]:
            assert config.json()["rate_limit_storage"] == "redis"
            assert "redis://" not in config.text
        for attempt in range(2 * SESSIONS_PER_MINUTE + 2):
            http = (on_a, on_b)[attempt % 2]
            response = await http.post("/api/v1/sessions", json={"title": 5})
            if response.status_code == 429:
                break
            assert response.status_code == 422, response.text
            accepted.append(attempt)
        else:
            raise AssertionError("never limited: each replica counts on its own")
        assert len(accepted) <= SESSIONS_PER_MINUTE
        for http in (on_a, on_b):
            refused = await http.post("/api/v1/sessions", json={"title": 5})
            assert refused.status_code == 429
            assert "RATE_LIMIT_SESSIONS" in refused.json()["error"]["message"]
