"""The cost of the Ray actor hop: the same desktop work in this process and through session
actors, measured in one run.

- In this process: one DesktopManager, made by `runtime.desktop_manager` as a session actor makes
  its own. A step is one screenshot (PNG) and one click; p50/p95 over `--steps` steps; a bare
  call (the pointer's position) for the floor; desktops created per second, one after another
  and all at once (`--sessions` of them).
- On a Ray cluster on this machine (tests/cluster/ray_cluster.py: a head and desktop hosts, each
  with its own user prefix, display base and DATA_DIR), with one desktop host, then two: the
  same step through a session actor (`screenshot` + `click`), the bare call through it
  (`cursor_position`), session actors created and started per second, and each against the
  in-process figure.
- Agent steps per minute (bench/cluster_agent.py): `--sessions` scripted runs of `--steps`
  agent steps at once (the loopback model asks for a click or a screenshot, the agent does it on
  the real desktop, the next request follows), in this process and in session actors on the
  same clusters, the hosts running the agent with the bench's PostgreSQL database
  (EVENT_BUS=postgres) and the loopback model's address; each against the in-process figure.
- Creates through a replica with and without the cluster's warm pool (bench/cluster_pool.py):
  `--sessions` sessions opened one after another as POST /sessions does, then the same with
  the pool full (each create takes a pooled actor); per second, p50, and the pool's fill time.

All hosts share this machine's cores, so two hosts show the cost of spreading, not a gain.

Run as root, on a test slot of its own (its displays, users and Ray temp dir):
`CU_TEST_SLOT=9 .venv/bin/python bench/cluster.py [--steps 30] [--sessions 4]` (PostgreSQL at
TEST_POSTGRES_ADMIN_DSN, by default postgresql://postgres@127.0.0.1:5432/postgres: the bench
creates a database of its own and drops it at the end).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import os
import pwd
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# Before ray: it sets the cluster's token for this process's client (Ray reads it at import).
from tests.cluster.ray_cluster import RayCluster, ray_cluster

# isort: split
import ray
from bench.cluster_agent import (
    IN_PROCESS as AGENT_IN_PROCESS,
)
from bench.cluster_agent import (
    REPLICA,
    AgentFigures,
    AgentSetup,
    agent_database,
    agent_in_process,
    agent_through_actors,
    model_server,
)
from bench.cluster_pool import PoolFigures, creates_with_and_without_pool
from bench.common import Report, percentile
from tests import slots
from tests.desktop_fixtures import fs_force_cleanup

from computer_use.cluster.session_actor import NAMESPACE, create_session_actor
from computer_use.config import Settings
from computer_use.runtime import desktop_manager

# The bare desktop: a click there changes nothing. Two points, so the pointer always moves.
POINTS = ((500, 300), (600, 300))
WARMUP_STEPS = 3
# (user prefix, display base) of the in-process manager and of each desktop host, moved to
# the test slot (CU_TEST_SLOT) like every test range.
IN_PROCESS = ("cu-cbp", 870)
HOSTS = (("host-a", "cu-cba", 900), ("host-b", "cu-cbb", 950))
CALL_TIMEOUT = 60.0
START_TIMEOUT = 180.0


@dataclass
class Figures:
    steps: list[float]  # seconds per step (screenshot + click)
    calls: list[float]  # seconds per bare call (pointer position)
    sequential: float  # sessions created and started per second, one after another
    concurrent: float  # the same, all at once
    png_bytes: int
    agent: AgentFigures | None = None  # agent steps per minute
    pool: PoolFigures | None = None  # creates through a replica, pooled and not


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def p50_p95(values: list[float]) -> str:
    return f"{ms(percentile(values, 0.5))} / {ms(percentile(values, 0.95))}"


def load() -> str:
    return "/".join(f"{v:.2f}" for v in os.getloadavg())


# -- in this process ---------------------------------------------------------------------------


async def in_process(workdir: Path, steps: int, sessions: int) -> Figures:
    prefix, base = IN_PROCESS
    manager = desktop_manager(
        Settings(),
        data_dir=workdir / "in-process",
        max_displays=sessions + 1,
        display_base=slots.display(base),
        user_prefix=slots.prefix(prefix),
        warm_pool_size=0,
    )
    await manager.start()
    try:
        desktop = await manager.create("step")
        await desktop.wait_until_settled(timeout=2)
        png_bytes = len(await desktop.screenshot())

        async def step(point: tuple[int, int]) -> None:
            await desktop.screenshot()
            await desktop.click(*point)

        for i in range(WARMUP_STEPS):
            await step(POINTS[i % 2])
        step_times = [await timed_async(partial(step, POINTS[i % 2])) for i in range(steps)]
        calls = [await timed_async(desktop.cursor_position) for _ in range(steps)]
        await manager.destroy("step")

        ids = [f"seq-{i}" for i in range(sessions)]
        started = time.perf_counter()
        for session_id in ids:
            await manager.create(session_id)
        sequential = sessions / (time.perf_counter() - started)
        await asyncio.gather(*(manager.destroy(i) for i in ids))

        ids = [f"con-{i}" for i in range(sessions)]
        started = time.perf_counter()
        await asyncio.gather(*(manager.create(i) for i in ids))
        concurrent = sessions / (time.perf_counter() - started)
        await asyncio.gather(*(manager.destroy(i) for i in ids))
    finally:
        await manager.shutdown()
    return Figures(step_times, calls, sequential, concurrent, png_bytes)


async def timed_async(action: Callable[[], Awaitable[object]]) -> float:
    started = time.perf_counter()
    await action()
    return time.perf_counter() - started


# -- through session actors ------------------------------------------------------------------


class Actors:
    """The session actors this run created: each is stopped (its desktop, mounts and slot)
    and killed by `stop_all`, also after a failure."""

    def __init__(self) -> None:
        self.live: list[Any] = []

    def start(self, count: int) -> list[dict[str, Any]]:
        """`count` session actors, created together; returns what each `start` said."""
        actors = [create_session_actor(str(uuid.uuid4())) for _ in range(count)]
        self.live += actors
        started: list[dict[str, Any]] = ray.get(
            [actor.start.remote() for actor in actors], timeout=START_TIMEOUT
        )
        return started

    def stop_all(self, cluster: RayCluster) -> None:
        for actor in self.live:
            try:
                ray.get(actor.stop.remote(), timeout=CALL_TIMEOUT)
            except Exception as exc:  # still kill it; the final clean-up takes its leftovers
                print(f"    stopping an actor failed: {exc!r}", flush=True)
            ray.kill(actor)
        self.live.clear()
        cluster.wait_until_desktops_free()


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def start_cluster(cluster: RayCluster, workdir: Path, hosts: int, per_host: int,
                  agent: AgentSetup) -> None:  # fmt: skip
    """The head, then each host, one at a time: two raylets on one address registering
    together, one of them times out finding its own node in the head's table."""
    cluster.start_head()
    cluster.connect(NAMESPACE)
    for name, prefix, base in HOSTS[:hosts]:
        cluster.add_desktop_host(
            name,
            per_host,
            {
                "DATA_DIR": str(workdir / name),
                "DESKTOP_USER_PREFIX": prefix,
                "DESKTOP_DISPLAY_BASE": str(base),
                **agent.host_env(),
            },
        )
        cluster.wait_for_desktops()


def through_ray(
    workdir: Path, hosts: int, steps: int, agent: AgentSetup, report: Report
) -> Figures:
    sessions = agent.sessions
    per_host = math.ceil(sessions / hosts)
    workdir.mkdir()
    with ray_cluster(workdir) as cluster:
        up = timed(lambda: start_cluster(cluster, workdir, hosts, per_host, agent))
        report.add(f"cluster up ({hosts} x {per_host} slots), driver connected", f"{up:.1f} s")
        actors = Actors()
        try:
            actors.start(1)
            actor = actors.live[0]
            png_bytes = len(ray.get(actor.screenshot.remote(), timeout=CALL_TIMEOUT))

            def step(point: tuple[int, int]) -> None:
                ray.get(actor.screenshot.remote(), timeout=CALL_TIMEOUT)
                ray.get(actor.click.remote(*point), timeout=CALL_TIMEOUT)

            def call() -> None:
                ray.get(actor.cursor_position.remote(), timeout=CALL_TIMEOUT)

            for i in range(WARMUP_STEPS):
                step(POINTS[i % 2])
            step_times = [timed(partial(step, POINTS[i % 2])) for i in range(steps)]
            calls = [timed(call) for _ in range(steps)]
            actors.stop_all(cluster)

            started = time.perf_counter()
            for _ in range(sessions):
                actors.start(1)
            sequential = sessions / (time.perf_counter() - started)
            actors.stop_all(cluster)

            started = time.perf_counter()
            placed = actors.start(sessions)
            concurrent = sessions / (time.perf_counter() - started)
            spread = sorted(Counter(s["host"] for s in placed).values(), reverse=True)
            report.add(
                f"  {sessions} started at once: sessions per host", "+".join(map(str, spread))
            )
            actors.stop_all(cluster)

            runs = asyncio.run(agent_through_actors(agent, workdir, cluster.address))
            report.add(f"  {sessions} agent runs: sessions per host", runs.hosts)
            cluster.wait_until_desktops_free()
            pool = asyncio.run(creates_with_and_without_pool(agent, workdir, cluster))
            cluster.wait_until_desktops_free()
        except BaseException:
            print(cluster.logs())
            raise
        finally:
            actors.stop_all(cluster)
    return Figures(step_times, calls, sequential, concurrent, png_bytes, runs, pool)


# -- main ----------------------------------------------------------------------------------------


def compare(report: Report, label: str, figures: Figures, base: Figures | None) -> None:
    report.add(f"{label}: step p50 / p95 (screenshot + click)", p50_p95(figures.steps))
    report.add(f"{label}: bare call p50 / p95 (pointer position)", p50_p95(figures.calls))
    report.add(f"{label}: sessions per second, one by one", f"{figures.sequential:.2f} /s")
    report.add(f"{label}: sessions per second, all at once", f"{figures.concurrent:.2f} /s")
    agent = figures.agent
    assert agent is not None
    report.add(f"{label}: agent steps per minute, all sessions", f"{agent.per_minute:.0f} /min")
    report.add(f"{label}: agent step, mean per session", ms(agent.step))
    if figures.pool is not None:
        pool = figures.pool
        for way, times in (("no pool", pool.unpooled), ("pooled", pool.pooled)):
            report.add(f"{label}: creates via a replica, {way}: /s, p50",
                       f"{pool.rate(times):.2f} /s, {ms(pool.p50(times))}")  # fmt: skip
        report.add(f"{label}: pooled create p50 vs without",
                   f"{pool.p50(pool.pooled) / pool.p50(pool.unpooled):.3f}x")  # fmt: skip
        report.add(f"{label}: the pool filled ({len(pool.pooled)}) in",
                   f"{pool.fill:.1f} s; {pool.claimed} creates served by it")  # fmt: skip
    if base is None:
        report.add(f"{label}: its CPU during the runs (one core = 100%)",
                   f"{agent.cpu * 100:.0f}%")  # fmt: skip
        report.add(
            f"{label}: screenshot size (bare desktop)", f"{figures.png_bytes / 1024:.0f} KiB"
        )
        return
    step, step_base = percentile(figures.steps, 0.5), percentile(base.steps, 0.5)
    report.add(f"{label}: step p50 vs in-process", f"{step / step_base:.2f}x")
    report.add(f"{label}: the hop's cost per step (p50 difference)", ms(step - step_base))
    assert base.agent is not None
    report.add(f"{label}: agent steps per minute vs in-process",
               f"{agent.per_minute / base.agent.per_minute:.2f}x")  # fmt: skip
    report.add(f"{label}: agent step vs in-process (mean difference)",
               ms(agent.step - base.agent.step))  # fmt: skip


def bench_users() -> tuple[str, ...]:
    """Every user of this bench's prefixes (the in-process pool and each host's slots)."""
    ours = (IN_PROCESS[0], AGENT_IN_PROCESS[0], REPLICA[0], *(p for _, p, _ in HOSTS))
    prefixes = tuple(slots.prefix(p) for p in ours)
    return tuple(u.pw_name for u in pwd.getpwall() if u.pw_name.startswith(prefixes))


def main(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix=f"cu{slots.SLOT}-cluster-bench-"))
    report = Report(name_width=60, target_width=0)
    print(f"{os.cpu_count()} cores, load average {load()} at the start; test slot {slots.SLOT};"
          f" {args.steps} steps, {args.sessions} sessions; ray {ray.__version__}")  # fmt: skip
    try:
        with agent_database(workdir) as database_url, model_server(args.steps) as model_url:
            agent = AgentSetup(database_url, model_url, args.steps, args.sessions)
            base = asyncio.run(in_process(workdir, args.steps, args.sessions))
            base.agent = asyncio.run(agent_in_process(agent, workdir))
            compare(report, "in-process", base, None)
            for hosts in (1, 2):
                figures = through_ray(workdir / f"ray-{hosts}", hosts, args.steps, agent, report)
                label = f"Ray, {hosts} desktop host{'s' if hosts > 1 else ''}"
                compare(report, label, figures, base)
    finally:
        fs_force_cleanup(workdir, users=bench_users())
        print(f"load average {load()} at the end", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--sessions", type=int, default=4)
    logging.basicConfig(level=os.environ.get("BENCH_LOG", "WARNING"))
    if os.geteuid() != 0:
        raise SystemExit("run as root: the desktops need their own users and mounts")
    main(parser.parse_args())
