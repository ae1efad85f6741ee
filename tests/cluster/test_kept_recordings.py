"""RECORDINGS_ON_EXPIRY on the package's Ray cluster: a recorded session expires through the
replica that runs the expiry pass (its last activity moved back past SESSION_TTL_SECONDS in
the shared database, so no test waits out a TTL); its actor ends and its slot is taken again,
yet with `keep` its recording (timeline and MP4) is served through the other replica by its
host's keeper from the host's kept recordings, until the session is deleted, which removes
the files from the host's disk. With `delete` it is one process's 404 after the expiry.

Sorted before test_sessions_on_ray.py, which kills host B at its end."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests.cluster.conftest import HOSTS, ClusterSetup
from tests.cluster.replicas import replica as api_replica
from tests.helpers import ServerProcess, wait_for_async
from tests.sessions.test_exports import ffprobe_video

ray = pytest.importorskip("ray", reason="the cluster extra: pip install -e '.[cluster]'")

from computer_use.cluster.naming import find_keeper, find_session_actor  # noqa: E402

CAPACITY = sum(slots for _, _, slots in HOSTS.values())


@pytest.fixture(scope="module")
def serving(
    ray_setup: ClusterSetup, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """The replica the tests read through: its expiry pass never runs while they do."""
    replica = api_replica(
        tmp_path_factory.mktemp("kept-serving"), ray_setup, CLEANUP_INTERVAL_SECONDS="86400"
    )
    replica.start()
    try:
        yield replica
    finally:
        replica.stop()


@contextlib.asynccontextmanager
async def expiring_replica(
    setup: ClusterSetup, data_dir: Path, policy: str
) -> AsyncIterator[httpx.AsyncClient]:
    """A replica whose expiry pass runs every second with RECORDINGS_ON_EXPIRY=`policy`."""
    await asyncio.to_thread(data_dir.mkdir)
    replica = api_replica(
        data_dir, setup, CLEANUP_INTERVAL_SECONDS="1", RECORDINGS_ON_EXPIRY=policy
    )
    await asyncio.to_thread(replica.start)
    try:
        async with httpx.AsyncClient(base_url=replica.base_url, timeout=60) as client:
            yield client
    finally:
        await asyncio.to_thread(replica.stop)


async def _recorded_session(http: httpx.AsyncClient, seconds: float) -> dict[str, Any]:
    """A recorded session, once `seconds` of it are recorded (its timeline says when it began)."""
    created = await http.post("/api/v1/sessions", json={"title": "kept", "record": True})
    assert created.status_code == 201, created.text
    session: dict[str, Any] = created.json()

    async def recorded_long_enough() -> bool:
        got = await http.get(f"/api/v1/sessions/{session['id']}/recording/timeline")
        assert got.status_code == 200, got.text
        parts = got.json()["parts"]
        return bool(parts) and time.time() - parts[0]["started_at"] > seconds

    await wait_for_async(recorded_long_enough, timeout=60, interval=0.5, what="the recording")
    return session


async def _expire(setup: ClusterSetup, http: httpx.AsyncClient, session_id: str) -> None:
    """Moves the session's last activity two hours back (its TTL is one hour); the replica's
    expiry pass ends it, its actor with it."""
    conn = await asyncpg.connect(setup.database_url, timeout=10)
    try:
        await conn.execute(
            "UPDATE sessions SET last_activity_at = last_activity_at - interval '2 hours'"
            " WHERE id = $1",
            session_id,
        )
    finally:
        await conn.close()

    async def expired() -> bool:
        got = (await http.get(f"/api/v1/sessions/{session_id}")).json()
        return bool(got["status"] == "expired")

    await wait_for_async(expired, timeout=60, interval=0.5, what="the session's expiry")
    await wait_for_async(
        lambda: asyncio.to_thread(lambda: find_session_actor(session_id) is None),
        timeout=30,
        interval=0.2,
        what="the expired session's actor to end",
    )


def _recording_dirs(setup: ClusterSetup, session_id: str) -> list[Path]:
    """The session's recording directories on the hosts' disks (they share this machine's)."""
    return sorted(setup.cluster.workdir.glob(f"host-*/**/recordings/{session_id}"))


async def _free(http: httpx.AsyncClient, n: int) -> bool:
    return bool((await http.get("/api/v1/health")).json()["desktops"]["free"] == n)


async def _delete(http: httpx.AsyncClient, session_ids: list[str]) -> None:
    for session_id in session_ids:
        deleted = await http.delete(f"/api/v1/sessions/{session_id}")
        assert deleted.status_code in (204, 404), deleted.text


async def test_a_kept_recording_outlives_its_actor_and_its_slot_until_deleted(
    serving: ServerProcess, ray_setup: ClusterSetup, tmp_path: Path
) -> None:
    made: list[str] = []
    async with (
        expiring_replica(ray_setup, tmp_path / "expiring", "keep") as on_a,
        httpx.AsyncClient(base_url=serving.base_url, timeout=60) as on_b,
    ):
        try:
            session = await _recorded_session(on_a, seconds=3)
            sid = session["id"]
            made.append(sid)
            (in_slot,) = _recording_dirs(ray_setup, sid)
            slot_dir = in_slot.parent.parent  # DATA_DIR/slots/<k> of its host
            await _expire(ray_setup, on_b, sid)

            # On its host, out of every slot: DATA_DIR/kept/recordings/<id>.
            (kept,) = _recording_dirs(ray_setup, sid)
            assert kept.parent.parent.name == "kept" and not in_slot.exists(), kept
            assert kept.parent.parent.parent == slot_dir.parent.parent  # the same host

            # Its host's keeper gone (as with its host): a 503 saying so. The host's next
            # session actor starts a keeper again, which removes the kept recordings of
            # sessions deleted meanwhile (here one the database never had).
            ray.kill(find_keeper(session["host"]))
            await wait_for_async(
                lambda: asyncio.to_thread(lambda: find_keeper(session["host"]) is None),
                timeout=30,
                what="the keeper's end",
            )
            unknown = (await on_b.get(f"/api/v1/sessions/{sid}")).json()
            assert unknown["recording"] is False, "its host cannot say now"
            unreachable = await on_b.get(f"/api/v1/sessions/{sid}/recording")
            assert unreachable.status_code == 503, unreachable.text
            assert "cannot be reached" in unreachable.json()["error"]["message"]
            orphan = kept.parent / str(uuid.uuid4())
            await asyncio.to_thread(orphan.mkdir)
            await asyncio.to_thread((orphan / "recording.json").write_text, '{"parts": []}')

            # Every slot of the cluster taken again, the expired session's among them: the
            # new actor on its slot clears the slot's recordings, not the kept ones.
            await wait_for_async(
                lambda: _free(on_b, CAPACITY), timeout=30, what="every slot free (Ray's view)"
            )
            for n in range(CAPACITY):
                created = await on_b.post("/api/v1/sessions", json={"title": f"filler {n}"})
                assert created.status_code == 201, created.text
                made.append(created.json()["id"])
            assert any((slot_dir / "sessions" / filler).exists() for filler in made[1:])
            await wait_for_async(
                lambda: asyncio.to_thread(lambda: not orphan.exists()),
                timeout=30,
                what="the new keeper's reconcile",
            )
            assert kept.is_dir()

            # Read through the replica that did not expire it, as in one process.
            timeline = await on_b.get(f"/api/v1/sessions/{sid}/recording/timeline")
            assert timeline.status_code == 200, timeline.text
            body = timeline.json()
            assert body["recording"] is False and len(body["parts"]) == 1, body
            assert body["parts"][0]["ended_at"] is not None
            assert (await on_b.get(f"/api/v1/sessions/{sid}")).json()["recording"] is True
            video = await on_b.get(f"/api/v1/sessions/{sid}/recording")
            assert video.status_code == 200, video.text
            assert video.headers["content-type"] == "video/mp4"
            path = tmp_path / "kept.mp4"
            await asyncio.to_thread(path.write_bytes, video.content)
            duration, width, height = await asyncio.to_thread(ffprobe_video, path)
            assert (width, height) == (1024, 768) and duration > 2, duration
            assert not list(kept.glob("export-*")), "the host's export file is removed"

            # Deleting the session removes its kept recording from its host's disk.
            assert (await on_a.delete(f"/api/v1/sessions/{sid}")).status_code == 204
            assert not kept.exists()
            assert (await on_b.get(f"/api/v1/sessions/{sid}/recording")).status_code == 404
        finally:  # the next tests need the slots, whatever happened here
            await _delete(on_b, made)


async def test_with_delete_an_expired_sessions_recording_is_gone(
    serving: ServerProcess, ray_setup: ClusterSetup, tmp_path: Path
) -> None:
    made: list[str] = []
    async with (
        expiring_replica(ray_setup, tmp_path / "expiring", "delete") as on_a,
        httpx.AsyncClient(base_url=serving.base_url, timeout=60) as on_b,
    ):
        try:
            session = await _recorded_session(on_a, seconds=1)
            sid = session["id"]
            made.append(sid)
            await _expire(ray_setup, on_b, sid)
            assert _recording_dirs(ray_setup, sid) == []
            assert (await on_b.get(f"/api/v1/sessions/{sid}")).json()["recording"] is False
            for route in ("recording", "recording/timeline"):
                gone = await on_b.get(f"/api/v1/sessions/{sid}/{route}")
                assert gone.status_code == 404, gone.text
                assert '"record": true' in gone.json()["error"]["message"]
        finally:
            await _delete(on_b, made)
