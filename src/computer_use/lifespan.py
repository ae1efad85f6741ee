"""Owns every long-lived thing: DB engine, desktops, event bus, agent runs, cleanup task."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from computer_use import schema, startup
from computer_use.agent.service import AgentRunner
from computer_use.config import Settings
from computer_use.database import create_engine, create_sessionmaker
from computer_use.datadir import prepare_data_dir
from computer_use.desktops import DesktopManager
from computer_use.desktops.netrules import EgressPolicy, parse_networks
from computer_use.desktops.recorder import Recordings
from computer_use.mcp_server.mount import mcp_running
from computer_use.sessions.service import SessionService
from computer_use.streaming.bus import EventBus, InProcessEventBus
from computer_use.streaming.store import DatabaseEventStore
from computer_use.vnc import SessionVncTargets

logger = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    sessions: SessionService
    bus: EventBus
    runner: AgentRunner
    desktops: DesktopManager
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    recordings: Recordings | None = None


async def _cleanup_loop(runtime: Runtime) -> None:
    interval = runtime.settings.cleanup_interval_seconds
    while True:
        await asyncio.sleep(interval)
        try:
            expired = await runtime.sessions.expire_idle()
            if expired:
                logger.info("expired %d idle session(s)", len(expired))
        except Exception:
            logger.exception("session cleanup pass failed; retrying in %s s", interval)


@dataclass(frozen=True)
class RuntimeParts:
    """The classes build_runtime wires together (bench/ substitutes instrumented subclasses)."""

    event_store: type[DatabaseEventStore] = DatabaseEventStore
    event_bus: type[InProcessEventBus] = InProcessEventBus
    sessions: type[SessionService] = SessionService
    runner: type[AgentRunner] = AgentRunner


def build_runtime(
    settings: Settings, parts: RuntimeParts = RuntimeParts(), *, model_base_url: str | None = None
) -> Runtime:
    """Every long-lived object, wired. `model_base_url` overrides ANTHROPIC_BASE_URL."""
    engine = create_engine(settings)
    sessionmaker = create_sessionmaker(engine)
    bus = parts.event_bus(parts.event_store(sessionmaker))
    sessions = parts.sessions(sessionmaker=sessionmaker, settings=settings, bus=bus)
    desktops = DesktopManager(
        settings.data_dir,
        width=settings.screen_width,
        height=settings.screen_height,
        max_displays=settings.max_displays,
        isolation_enabled=settings.filesystem_isolation_enabled,
        disk_quota_mb=settings.session_disk_quota_mb,
        memory_limit_mb=settings.session_memory_limit_mb,
        max_processes=settings.session_max_processes,
        cpu_limit=settings.session_cpu_limit,
        egress=EgressPolicy(
            allow=parse_networks(settings.session_egress_allow),
            deny=parse_networks(settings.session_egress_deny),
        ),
        display_base=settings.desktop_display_base,
        user_prefix=settings.desktop_user_prefix,
        eager_browser=settings.browser_eager,
        ksm=settings.ksm_merge,
        ksm_start_host=settings.ksm_start_host,
        warm_pool_size=min(settings.warm_pool_size, settings.max_displays),
        on_event=sessions.on_desktop_event,
    )
    sessions.desktops = desktops
    recordings = Recordings(settings.data_dir, fps=settings.recording_fps)
    sessions.recordings = recordings
    runner = parts.runner(
        settings=settings,
        sessions=sessions,
        bus=bus,
        sessionmaker=sessionmaker,
        base_url=model_base_url,
    )
    sessions.before_close.append(runner.forget)
    return Runtime(
        settings=settings,
        engine=engine,
        sessionmaker=sessionmaker,
        sessions=sessions,
        bus=bus,
        runner=runner,
        desktops=desktops,
        recordings=recordings,
    )


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    prepare_data_dir(settings.data_dir)
    startup.check(settings)  # e.g. a public bind without API_TOKENS: one line, no traceback
    await schema.prepare(settings)  # AUTO_MIGRATE: migrate under a lock, else check
    runtime = build_runtime(settings)
    app.state.runtime = runtime
    app.state.vnc_targets = SessionVncTargets(runtime.sessions)
    try:
        await runtime.desktops.start(keep=await runtime.sessions.get_live_ids())
        startup.announce(runtime.desktops.health())
        if runtime.recordings is not None:
            await runtime.recordings.reconcile(await runtime.sessions.get_all_ids())
        await runtime.runner.people.interrupt_pending()  # approvals do not outlive a run
        await runtime.sessions.restore_all()
        runtime.tasks.append(asyncio.create_task(_cleanup_loop(runtime), name="session-cleanup"))
        # MCP sessions end first on shutdown: a cancelled execute_task stops its run cleanly.
        async with mcp_running(app):
            yield
    finally:
        for task in runtime.tasks:
            task.cancel()
        await asyncio.gather(*runtime.tasks, return_exceptions=True)
        runtime.bus.close_all()
        await runtime.runner.shutdown()
        if runtime.recordings is not None:
            await runtime.recordings.stop_all()  # before their displays go
        await runtime.desktops.shutdown()
        await runtime.engine.dispose()
