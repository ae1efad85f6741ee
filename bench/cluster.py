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
- Agent steps per minute: not measured, the agent loop does not run in the actor yet.

All hosts share this machine's cores, so two hosts show the cost of spreading, not a gain.

Run as root, on a test slot of its own (its displays, users and Ray temp dir):
`CU_TEST_SLOT=9 .venv/bin/python bench/cluster.py [--steps 30] [--sessions 4]`.
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

import ray
from bench.common import Report, percentile
from tests import slots
from tests.cluster.ray_cluster import RayCluster, ray_cluster
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


def through_ray(workdir: Path, hosts: int, steps: int, sessions: int, report: Report) -> Figures:
    per_host = math.ceil(sessions / hosts)
    workdir.mkdir()
    with ray_cluster(workdir) as cluster:
        cluster.start_head()
        for name, prefix, base in HOSTS[:hosts]:
            cluster.add_desktop_host(
                name,
                per_host,
                {
                    "DATA_DIR": str(workdir / name),
                    "DESKTOP_USER_PREFIX": prefix,
                    "DESKTOP_DISPLAY_BASE": str(base),
                },
            )
        up = timed(lambda: cluster.connect(NAMESPACE))
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
        except BaseException:
            print(cluster.logs())
            raise
        finally:
            actors.stop_all(cluster)
    return Figures(step_times, calls, sequential, concurrent, png_bytes)


# -- main ----------------------------------------------------------------------------------------


def compare(report: Report, label: str, figures: Figures, base: Figures | None) -> None:
    report.add(f"{label}: step p50 / p95 (screenshot + click)", p50_p95(figures.steps))
    report.add(f"{label}: bare call p50 / p95 (pointer position)", p50_p95(figures.calls))
    report.add(f"{label}: sessions per second, one by one", f"{figures.sequential:.2f} /s")
    report.add(f"{label}: sessions per second, all at once", f"{figures.concurrent:.2f} /s")
    if base is None:
        report.add(
            f"{label}: screenshot size (bare desktop)", f"{figures.png_bytes / 1024:.0f} KiB"
        )
        return
    step, step_base = percentile(figures.steps, 0.5), percentile(base.steps, 0.5)
    report.add(f"{label}: step p50 vs in-process", f"{step / step_base:.2f}x")
    report.add(f"{label}: the hop's cost per step (p50 difference)", ms(step - step_base))


def bench_users() -> tuple[str, ...]:
    """Every user of this bench's prefixes (the in-process pool and each host's slots)."""
    prefixes = tuple(slots.prefix(p) for p in (IN_PROCESS[0], *(p for _, p, _ in HOSTS)))
    return tuple(u.pw_name for u in pwd.getpwall() if u.pw_name.startswith(prefixes))


def main(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix=f"cu{slots.SLOT}-cluster-bench-"))
    report = Report(name_width=60, target_width=0)
    print(f"{os.cpu_count()} cores, load average {load()} at the start; test slot {slots.SLOT};"
          f" {args.steps} steps, {args.sessions} sessions; ray {ray.__version__}")  # fmt: skip
    try:
        base = asyncio.run(in_process(workdir, args.steps, args.sessions))
        compare(report, "in-process", base, None)
        for hosts in (1, 2):
            figures = through_ray(
                workdir / f"ray-{hosts}", hosts, args.steps, args.sessions, report
            )
            compare(report, f"Ray, {hosts} desktop host{'s' if hosts > 1 else ''}", figures, base)
        report.add("agent steps per minute through an actor", "not measured")
        print("    the agent loop does not run in the session actor yet (docs/SCALING.md, What is"
              " missing):\n    an agent step there cannot be timed until it does")  # fmt: skip
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
