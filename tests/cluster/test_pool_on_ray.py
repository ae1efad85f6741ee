"""The cluster's warm pool (WARM_POOL_SIZE with RAY_ADDRESS, cluster/pool.py): two replicas
with WARM_POOL_SIZE=2 fill it with session actors made ahead; a create takes one over (the
session has the id the actor was made with, and its desktop's processes are the ones started
before the request), works through the other replica, and the pool refills; two replicas
creating at once get two different pooled actors; a pooled actor whose desktop died is ended
and replaced; a restarted keeper adopts the pooled actors it finds; a replica started with
WARM_POOL_SIZE=0 drains the pool.

Before test_sessions_on_ray.py, which kills host B."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import slots
from tests.cluster.conftest import HOSTS, ClusterSetup, host_instance
from tests.cluster.replicas import create, replica, two_replicas
from tests.helpers import ServerProcess, wait_for, wait_for_async

ray = pytest.importorskip("ray", reason="the cluster extra: pip install -e '.[cluster]'")

from computer_use.cluster.naming import session_actor, session_ids  # noqa: E402
from computer_use.cluster.pool import drain_pool, find_pool_keeper  # noqa: E402

SIZE = 2
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@pytest.fixture(scope="module")
def replicas(
    ray_setup: ClusterSetup, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    try:
        with two_replicas(ray_setup, tmp_path_factory, WARM_POOL_SIZE=str(SIZE)) as both:
            yield both
    finally:  # the pool is the cluster's: the package's next tests need its slots
        drain_pool()
        ray_setup.cluster.wait_until_desktops_free()


async def _pool_ready(http: httpx.AsyncClient, ready: int = SIZE) -> dict[str, Any]:
    async def filled() -> dict[str, Any] | None:
        pool: dict[str, Any] = (await http.get("/api/v1/health")).json()["desktops"]["warm_pool"]
        return pool if pool["ready"] == ready and pool["preparing"] == 0 else None

    return await wait_for_async(filled, timeout=120, interval=0.5, what=f"{ready} pooled")


def _started(session_id: str) -> dict[str, Any]:
    """What the session actor's start returned (its host, slot, time it took)."""
    actor = session_actor(session_id)
    return dict(ray.get(actor.__ray_call__.remote(lambda self: self.started), timeout=30))


def _user(started: dict[str, Any]) -> str:
    """The desktop user of a session actor's slot."""
    host = next(n for n in HOSTS if host_instance(n) == started["host"])
    return f"{slots.prefix(HOSTS[host][0])}{started['slot']}-01"


def _pooled() -> dict[str, str]:
    """The pooled actors now (no session has claimed them): id -> its desktop's user."""
    pooled = {}
    for session_id in session_ids():
        if ray.get(session_actor(session_id).pool_state.remote(), timeout=30) == "pooled":
            pooled[session_id] = _user(_started(session_id))
    return pooled


def _processes(user: str) -> dict[int, float]:
    """The user's processes: pid -> start time (seconds since the epoch)."""
    found = subprocess.run(["pgrep", "-u", user], capture_output=True, text=True).stdout
    with open("/proc/stat") as stat:
        boot = next(float(line.split()[1]) for line in stat if line.startswith("btime "))
    processes = {}
    for pid in map(int, found.split()):
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rpartition(")")[2].split()
        except FileNotFoundError:
            continue  # ended meanwhile
        processes[pid] = boot + int(fields[19]) / CLOCK_TICKS  # field 22: starttime
    return processes


async def _screenshot(http: httpx.AsyncClient, session_id: str) -> None:
    png = await http.get(f"/api/v1/sessions/{session_id}/screenshot")
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG"), png.text


async def test_a_pooled_create_starts_nothing_and_the_pool_refills(
    replicas: tuple[ServerProcess, ServerProcess],
) -> None:
    a, b = replicas
    async with (
        httpx.AsyncClient(base_url=a.base_url, timeout=60) as on_a,
        httpx.AsyncClient(base_url=b.base_url, timeout=60) as on_b,
    ):
        await _pool_ready(on_b)
        pooled = await asyncio.to_thread(_pooled)
        assert len(pooled) == SIZE, pooled
        before = {user: _processes(user) for user in pooled.values()}
        assert all(before.values()), "each pooled desktop runs before any session exists"

        posted = time.time()
        began = time.monotonic()
        created = await create(on_a, "pooled")
        took = time.monotonic() - began
        sid = created["id"]
        try:
            # The session is the pooled actor, under the id it was made with, on the very
            # processes its desktop started before the request: the create started none.
            assert sid in pooled, (sid, pooled)
            after = _processes(pooled[sid])
            assert after == before[pooled[sid]]
            assert all(started < posted for started in after.values())
            started = await asyncio.to_thread(_started, sid)
            assert created["host"] == started["host"]
            # Far below what the actor's own start took (before the worker's start, even).
            print(
                f"pooled create {took * 1000:.0f} ms; its actor started in"
                f" {started['start_seconds']:.2f} s"
            )
            assert took < started["start_seconds"] / 2, (took, started)

            await _screenshot(on_b, sid)  # through the other replica, on its host
            refilled = await _pool_ready(on_b)
            assert refilled["claimed"] == 1 and refilled["size"] == SIZE
            assert sid not in await asyncio.to_thread(_pooled)
        finally:
            assert (await on_b.delete(f"/api/v1/sessions/{sid}")).status_code == 204


async def test_two_replicas_creating_at_once_get_different_pooled_actors(
    replicas: tuple[ServerProcess, ServerProcess],
) -> None:
    a, b = replicas
    async with (
        httpx.AsyncClient(base_url=a.base_url, timeout=60) as on_a,
        httpx.AsyncClient(base_url=b.base_url, timeout=60) as on_b,
    ):
        await _pool_ready(on_a)
        pooled = await asyncio.to_thread(_pooled)
        made = await asyncio.gather(
            create(on_a, "at once A"), create(on_b, "at once B"), return_exceptions=True
        )
        ids = [m["id"] for m in made if isinstance(m, dict)]
        try:
            assert len(ids) == 2, made
            assert set(ids) == set(pooled), "each pooled actor handed out once"
            for session_id, http in zip(ids, (on_b, on_a), strict=True):
                await _screenshot(http, session_id)
        finally:
            for session_id in ids:
                assert (await on_a.delete(f"/api/v1/sessions/{session_id}")).status_code == 204


def _kill(user: str, program: str) -> int:
    """SIGKILLs the user's `program`; its pid."""
    found = subprocess.run(["pgrep", "-u", user, "-x", program], capture_output=True, text=True)
    pid = int(found.stdout.split()[0])
    os.kill(pid, signal.SIGKILL)
    return pid


async def test_a_pooled_desktop_that_died_is_replaced_not_handed_out(
    replicas: tuple[ServerProcess, ServerProcess],
) -> None:
    """Its window manager killed past its restart budget, the pooled desktop fails: the keeper
    ends that actor and makes another; a create meanwhile never gets it."""
    a, _ = replicas
    async with httpx.AsyncClient(base_url=a.base_url, timeout=60) as on_a:
        await _pool_ready(on_a)
        pooled = await asyncio.to_thread(_pooled)
        doomed, user = next(iter(pooled.items()))
        actor = session_actor(doomed)

        def failed() -> bool:  # the supervisor restarts it 5 times within 60 s, then gives up
            try:
                state = ray.get(actor.pool_state.remote(), timeout=30)
            except ray.exceptions.RayActorError:
                return True  # failed, and ended by the keeper already
            if state == "pooled":
                _kill(user, "jwm")
            return bool(state != "pooled")

        await asyncio.to_thread(wait_for, failed, timeout=60, interval=0.5, what="a failed desktop")
        created = await create(on_a, "not the failed one")
        try:
            assert created["id"] != doomed

            def ended() -> bool:
                return doomed not in session_ids()

            await asyncio.to_thread(wait_for, ended, timeout=60, what="the failed actor's end")
        finally:
            assert (await on_a.delete(f"/api/v1/sessions/{created['id']}")).status_code == 204
        await _pool_ready(on_a)
        assert doomed not in await asyncio.to_thread(_pooled)


async def test_a_restarted_keeper_adopts_the_pooled_actors(
    replicas: tuple[ServerProcess, ServerProcess],
) -> None:
    """The keeper's process dies (as with its node): Ray starts it again, and it finds the
    pooled actors rather than making others."""
    a, _ = replicas
    async with httpx.AsyncClient(base_url=a.base_url, timeout=60) as on_a:
        await _pool_ready(on_a)
        pooled = await asyncio.to_thread(_pooled)
        ray.kill(find_pool_keeper(), no_restart=False)

        async def restarted() -> dict[str, Any] | None:
            pool: dict[str, Any] = (await on_a.get("/api/v1/health")).json()["desktops"][
                "warm_pool"
            ]
            return pool if "error" not in pool and pool["claimed"] == 0 else None

        await wait_for_async(restarted, timeout=60, interval=0.5, what="the keeper's restart")
        await _pool_ready(on_a)
        assert await asyncio.to_thread(_pooled) == pooled
        assert sorted(session_ids()) == sorted(pooled), "no pooled actor made anew"


async def test_a_replica_started_with_no_pool_drains_it(
    replicas: tuple[ServerProcess, ServerProcess],
    ray_setup: ClusterSetup,
    tmp_path: Path,
) -> None:
    """WARM_POOL_SIZE is the cluster's: a replica started with 0 ends the pooled actors and
    the keeper; sessions are then created as without a pool."""
    a, _ = replicas
    async with httpx.AsyncClient(base_url=a.base_url, timeout=60) as on_a:
        await _pool_ready(on_a)
        drainer = replica(tmp_path, ray_setup, WARM_POOL_SIZE="0")
        drainer.start()
        try:
            assert find_pool_keeper() is None and session_ids() == []
            pool = (await on_a.get("/api/v1/health")).json()["desktops"]["warm_pool"]
            assert pool == {"size": 0, "ready": 0, "claimed": 0, "browser": False}
            await asyncio.to_thread(ray_setup.cluster.wait_until_desktops_free)
            created = await create(on_a, "no pool")
            assert (await on_a.delete(f"/api/v1/sessions/{created['id']}")).status_code == 204
        finally:
            drainer.stop()
