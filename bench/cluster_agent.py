"""Agent steps per minute for bench/cluster.py: the same scripted runs in this process and in
session actors on the desktop hosts, timed the same way.

A run is `steps` agent steps then a final text: at each step the loopback model (a child
process, bench/agent_loop.py's scripted model: a click somewhere new, every fourth step a
screenshot; one `computer` call of the beta tool, whose result carries the screenshot) asks for
one action, the agent does it on the session's real desktop and sends the next request. Every
session does one run to warm up (the browser starts on a session's first run), then the timed
one, all `sessions` at once. A run's time is from just before the runs were started to its
`message_complete` event as written in the shared PostgreSQL database (the event's time is
taken by the process that writes it: the same clock in both cases, since every process is on
this machine), so waiting for the runs costs nothing to the figure.

- In this process: a Runtime of its own (`build_runtime`, EVENT_BUS=postgres on the bench's
  database, its own desktop range, prefix and DATA_DIR), sessions from `sessions.open`, runs
  from `runner.start`, waited for with `runner.wait`. Its sessions share this process's one
  event loop; the CPU time of this process over the runs says how busy it was.
- Through actors: a replica's runtime (`replica_parts`) opens the sessions as POST /sessions
  does (the row, then the session actor and its desktop on a host, the row's host), and the
  runs are handed to the actors (`run`); the agent runs there with the host's DATABASE_URL,
  EVENT_BUS=postgres and ANTHROPIC_BASE_URL (`host_env`). The database is polled for the
  runs' `message_complete`, within RUN_TIMEOUT.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.agent_loop import API_KEY, BETA_MODEL
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from tests import slots
from tests.conftest import PG_ADMIN_DSN, _pg_admin
from tests.helpers import StopWaiting, wait_for_async

from computer_use import schema
from computer_use.cluster.calls import call
from computer_use.cluster.replica import replica_parts
from computer_use.cluster.session_actor import session_actor
from computer_use.config import Settings
from computer_use.runtime import Runtime, build_runtime
from computer_use.streaming.models import Event

PROMPT = "Click around the desktop."
RUN_TIMEOUT = 300.0
POLL_SECONDS = 0.05
# The in-process runtime's desktops (user prefix, display base), moved to the test slot; the
# replica's own range is never used (with RAY_ADDRESS it starts no desktop).
IN_PROCESS = ("cu-cbg", 1000)
REPLICA = ("cu-cbr", 1050)


@dataclass(frozen=True)
class AgentSetup:
    database_url: str
    model_url: str  # the loopback model, in a child process
    steps: int  # agent steps per run
    sessions: int  # sessions running at once

    def settings(self) -> dict[str, str]:
        """What a run needs besides the desktop range: the database, the model, and stuck
        detection off (clicks on a bare desktop change nothing, which would end a run)."""
        return {
            "DATABASE_URL": self.database_url,
            "EVENT_BUS": "postgres",
            "ANTHROPIC_BASE_URL": self.model_url,
            "ANTHROPIC_API_KEY": "",
            "STUCK_STEPS": "0",
            "AGENT_MAX_STEPS": str(max(50, self.steps + 2)),
            "SESSION_TTL_SECONDS": "3600",
        }

    def host_env(self) -> dict[str, str]:
        """A desktop host's environment for its session actors' runs."""
        return self.settings()

    def local_settings(self, **values: Any) -> Settings:
        """The same, for a runtime in this process."""
        settings: dict[str, Any] = {name.lower(): v for name, v in self.settings().items()}
        return Settings(_env_file=None, **settings, **values)


@dataclass
class AgentFigures:
    steps: int  # agent steps of the timed runs, all sessions together
    wall: float  # seconds from the start of the runs to the last one's message_complete
    per_step: list[float]  # per session: its run's seconds over its steps
    cpu: float  # this process's CPU time over the runs' wall time (1.0: one core busy)
    hosts: str = ""  # sessions per host, e.g. "1+1"

    @property
    def per_minute(self) -> float:
        return self.steps / self.wall * 60

    @property
    def step(self) -> float:
        return statistics.mean(self.per_step)


# -- what both share: the database, the model, timing a batch of runs -------------------------


@contextlib.contextmanager
def agent_database(workdir: Path) -> Iterator[str]:
    """A PostgreSQL database of the bench's own, migrated; dropped at the end."""
    name = f"cu_bench_{uuid.uuid4().hex[:10]}"
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    url = f"{PG_ADMIN_DSN.rsplit('/', 1)[0]}/{name}"
    try:
        schema.upgrade(Settings(_env_file=None, database_url=url, data_dir=workdir), quiet=True)
        yield url
    finally:
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextlib.contextmanager
def model_server(steps: int) -> Iterator[str]:
    """bench/agent_loop.py's scripted model in a child process (its parsing is not charged to
    the agent's process); yields its URL, known before any desktop host starts."""
    script = Path(__file__).with_name("agent_loop.py")
    child = subprocess.Popen(
        [sys.executable, str(script), "--serve-loopback", "--steps", str(steps)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdin is not None and child.stdout is not None
    try:
        url = child.stdout.readline().strip()  # its first line, once it listens
        if not url.startswith("http"):
            raise RuntimeError("the loopback model did not start")
        yield url
    finally:
        child.stdin.close()  # it serves until its stdin closes
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


async def last_event_ids(
    sessionmaker: async_sessionmaker[AsyncSession], ids: list[str]
) -> dict[str, int]:
    async with sessionmaker() as db:
        rows = await db.execute(
            select(Event.session_id, func.max(Event.id))
            .where(Event.session_id.in_(ids))
            .group_by(Event.session_id)
        )
        found = {sid: int(last) for sid, last in rows.all()}
    return {sid: found.get(sid, 0) for sid in ids}


async def ended_runs(
    sessionmaker: async_sessionmaker[AsyncSession], after: dict[str, int], steps: int
) -> dict[str, float] | None:
    """Each session's message_complete after `after` (its time); None while one has none.
    A run that did not end as scripted (end_turn after `steps` tool results) is an error."""
    async with sessionmaker() as db:
        rows = await db.execute(
            select(Event).where(
                Event.session_id.in_(after), Event.type.in_(("message_complete", "tool_result"))
            )
        )
        events = [e for e in rows.scalars() if e.id > after[e.session_id]]
    ends = {e.session_id: e for e in events if e.type == "message_complete"}
    if len(ends) < len(after):
        return None
    results = Counter(e.session_id for e in events if e.type == "tool_result")
    for sid, end in ends.items():
        if end.data.get("stop_reason") != "end_turn" or results[sid] != steps:
            raise StopWaiting(
                f"session {sid}: the run ended with {end.data} after {results[sid]} tool"
                f" results, not end_turn after {steps}"
            )
    return {sid: end.created_at.timestamp() for sid, end in ends.items()}


async def timed_runs(
    sessionmaker: async_sessionmaker[AsyncSession],
    ids: list[str],
    steps: int,
    start: Callable[[str], Awaitable[object]],
    wait: Callable[[str], Awaitable[object]] | None = None,
) -> AgentFigures:
    """Starts a run on every session at once; `wait` for one to end, else the database is
    polled for it."""
    after = await last_event_ids(sessionmaker, ids)
    started, cpu = time.time(), time.process_time()
    await asyncio.gather(*(start(sid) for sid in ids))
    if wait is not None:
        await asyncio.gather(*(wait(sid) for sid in ids))
    ends = await wait_for_async(
        lambda: ended_runs(sessionmaker, after, steps),
        timeout=RUN_TIMEOUT,
        interval=POLL_SECONDS,
        what="the runs' message_complete",
    )
    cpu = (time.process_time() - cpu) / (time.time() - started)
    runs = [ends[sid] - started for sid in ids]
    return AgentFigures(steps * len(ids), max(runs), [run / steps for run in runs], cpu)


# -- in this process -------------------------------------------------------------------------


async def agent_in_process(setup: AgentSetup, workdir: Path) -> AgentFigures:
    prefix, base = IN_PROCESS
    runtime = build_runtime(
        setup.local_settings(
            data_dir=workdir / "agent-in-process",
            desktop_display_base=slots.display(base),
            desktop_user_prefix=slots.prefix(prefix),
            max_displays=setup.sessions,
            warm_pool_size=0,
        ),
        model_base_url=setup.model_url,
    )
    ids: list[str] = []
    try:
        await runtime.sessions.start_desktops()
        ids += [(await open_session(runtime, i)) for i in range(setup.sessions)]

        async def start(sid: str) -> None:
            await runtime.runner.start(session_id=sid, content=PROMPT, api_key=API_KEY)

        async def wait(sid: str) -> None:
            await runtime.runner.wait(session_id=sid)

        await timed_runs(runtime.sessionmaker, ids, setup.steps, start, wait)  # warm-up
        return await timed_runs(runtime.sessionmaker, ids, setup.steps, start, wait)
    finally:
        await close_sessions(runtime, ids)
        await runtime.runner.shutdown()
        await runtime.sessions.stop_desktops()
        await runtime.engine.dispose()


async def open_session(runtime: Runtime, n: int) -> str:
    return (await runtime.sessions.open(title=f"agent steps {n}", model=BETA_MODEL)).id


async def close_sessions(runtime: Runtime, ids: list[str]) -> None:
    for sid in ids:
        try:
            await runtime.sessions.close(session_id=sid)
        except Exception as exc:  # the bench's final clean-up takes what is left
            print(f"    closing session {sid} failed: {exc!r}", flush=True)


# -- through session actors -------------------------------------------------------------------


async def agent_through_actors(setup: AgentSetup, workdir: Path, ray_address: str) -> AgentFigures:
    """On the cluster this process is connected to (its hosts started with `host_env`)."""
    prefix, base = REPLICA
    runtime = build_runtime(
        setup.local_settings(
            data_dir=workdir / "replica",
            ray_address=ray_address,
            desktop_display_base=slots.display(base),
            desktop_user_prefix=slots.prefix(prefix),
        ),
        replica_parts(),
    )
    ids: list[str] = []
    try:
        for n in range(setup.sessions):
            ids.append(await open_session(runtime, n))
        hosts = Counter([(await runtime.sessions.get(session_id=sid)).host for sid in ids])

        async def start(sid: str) -> None:
            await call(session_actor(sid).run.remote(PROMPT, API_KEY, None, None))

        await timed_runs(runtime.sessionmaker, ids, setup.steps, start)  # warm-up
        figures = await timed_runs(runtime.sessionmaker, ids, setup.steps, start)
        figures.hosts = "+".join(map(str, sorted(hosts.values(), reverse=True)))
        return figures
    finally:
        await close_sessions(runtime, ids)
        await runtime.engine.dispose()
