"""Session creates through a replica with and without the cluster's warm pool, for
bench/cluster.py.

A replica's runtime (`replica_parts`, on the bench's database) opens `sessions` sessions one
after another as POST /sessions does, timing each `open` (the row, the actor and its desktop,
the row's host, `active`), and closes them; then the pool is set to `sessions`
(`cluster/pool.py`: the keeper fills it on the cluster's free slots), its fill timed until
the keeper reports them ready, and the same creates are timed again, each taking a pooled
actor; then the pool is drained. Both on the same cluster, in the same run.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

from bench.cluster_agent import REPLICA, AgentSetup, close_sessions
from bench.common import percentile
from tests import slots
from tests.cluster.ray_cluster import RayCluster
from tests.helpers import wait_for_async

from computer_use.cluster.pool import drain_pool, pool_health, set_pool
from computer_use.cluster.replica import replica_parts
from computer_use.runtime import Runtime, build_runtime

FILL_TIMEOUT = 600.0


@dataclass
class PoolFigures:
    unpooled: list[float]  # seconds per create, one after another
    pooled: list[float]
    fill: float  # seconds for the keeper to fill the pool from empty
    claimed: int  # creates the keeper reports served from the pool

    @staticmethod
    def rate(times: list[float]) -> float:
        return len(times) / sum(times)

    @staticmethod
    def p50(times: list[float]) -> float:
        return percentile(times, 0.5)


async def timed_creates(runtime: Runtime, count: int, label: str) -> list[float]:
    times, ids = [], []
    try:
        for n in range(count):
            started = time.perf_counter()
            ids.append((await runtime.sessions.open(title=f"{label} {n}", model=None)).id)
            times.append(time.perf_counter() - started)
    finally:
        await close_sessions(runtime, ids)
    return times


async def creates_with_and_without_pool(
    setup: AgentSetup, workdir: Path, cluster: RayCluster
) -> PoolFigures:
    """On the cluster this process is connected to; `setup.sessions` creates each way."""
    prefix, base = REPLICA
    runtime = build_runtime(
        setup.local_settings(
            data_dir=workdir / "replica-pool",
            ray_address="unused: this process is connected",
            desktop_display_base=slots.display(base),
            desktop_user_prefix=slots.prefix(prefix),
        ),
        replica_parts(),
    )
    count = setup.sessions
    try:
        unpooled = await timed_creates(runtime, count, "unpooled")
        await asyncio.to_thread(cluster.wait_until_desktops_free)  # the closed ones' slots
        started = time.perf_counter()
        await asyncio.to_thread(set_pool, count, False)

        async def filled() -> bool:
            health = await asyncio.to_thread(pool_health)
            return bool(health["ready"] == count and health["preparing"] == 0)

        await wait_for_async(filled, timeout=FILL_TIMEOUT, interval=0.1, what="the pool full")
        fill = time.perf_counter() - started
        pooled = await timed_creates(runtime, count, "pooled")
        claimed = int((await asyncio.to_thread(pool_health))["claimed"])
        return PoolFigures(unpooled, pooled, fill, claimed)
    finally:
        await asyncio.to_thread(drain_pool)
        await runtime.engine.dispose()
