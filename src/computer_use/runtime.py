"""Every long-lived object (DB engine, event bus, sessions, desktops, agent runs), wired."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from computer_use import appstate
from computer_use.agent.service import AgentRunner
from computer_use.config import Settings
from computer_use.database import create_engine, create_sessionmaker
from computer_use.desktops import DesktopManager
from computer_use.desktops.netrules import EgressPolicy, parse_networks
from computer_use.desktops.recorder import Recordings
from computer_use.sessions.service import SessionClosing, SessionService
from computer_use.streaming.bus import EventBus, InProcessEventBus
from computer_use.streaming.pgbus import CHANNEL, PostgresEventBus
from computer_use.streaming.store import DatabaseEventStore


@dataclass
class Runtime:
    """The long-lived objects. The session service holds the database, the bus, the desktops
    and the recordings; the runtime names them once more for its readers."""

    settings: Settings
    engine: AsyncEngine
    sessions: SessionService
    runner: AgentRunner
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def sessionmaker(self) -> async_sessionmaker[AsyncSession]:
        return self.sessions.sessionmaker

    @property
    def bus(self) -> EventBus:
        return self.sessions.bus

    @property
    def desktops(self) -> DesktopManager:
        return self.sessions.desktops

    @property
    def recordings(self) -> Recordings:
        return self.sessions.recordings


def install_runtime(app: Any, runtime: Runtime) -> None:
    """Puts the Runtime on the app (the lifespan does, once it is built)."""
    app.state.runtime = runtime


def installed_runtime(app: Any) -> Runtime | None:
    """The app's Runtime, typed; None before the lifespan has built it (or after a failed
    start). The one place that reads app.state.runtime."""
    return appstate.read(app, "runtime", Runtime)


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
    bus: EventBus
    if settings.event_bus == "postgres":  # several API processes on one database
        bus = PostgresEventBus(DatabaseEventStore(sessionmaker, notify_channel=CHANNEL), engine)
    else:
        bus = parts.event_bus(parts.event_store(sessionmaker))
    recordings = Recordings(settings.data_dir, fps=settings.recording_fps)
    closing = SessionClosing()  # the runner listens: it stops a run before its desktop goes
    sessions = parts.sessions(
        sessionmaker=sessionmaker,
        settings=settings,
        desktops=lambda on_event: desktop_manager(settings, on_event=on_event),
        closing=closing,
        bus=bus,
        recordings=recordings,
    )
    runner = parts.runner(settings=settings, sessions=sessions, base_url=model_base_url)
    return Runtime(settings=settings, engine=engine, sessions=sessions, runner=runner)


def desktop_manager(settings: Settings, **overrides: Any) -> DesktopManager:
    """A DesktopManager made from the desktop settings (the one place they are read);
    `overrides` replace any of its arguments (a Ray session actor's own slot, say)."""
    options: dict[str, Any] = {
        "data_dir": settings.data_dir,
        "width": settings.screen_width,
        "height": settings.screen_height,
        "max_displays": settings.max_displays,
        "isolation_enabled": settings.filesystem_isolation_enabled,
        "disk_quota_mb": settings.session_disk_quota_mb,
        "memory_limit_mb": settings.session_memory_limit_mb,
        "max_processes": settings.session_max_processes,
        "cpu_limit": settings.session_cpu_limit,
        "egress": EgressPolicy(
            allow=parse_networks(settings.session_egress_allow),
            deny=parse_networks(settings.session_egress_deny),
        ),
        "display_base": settings.desktop_display_base,
        "user_prefix": settings.desktop_user_prefix,
        "eager_browser": settings.browser_eager,
        "ksm": settings.ksm_merge,
        "ksm_start_host": settings.ksm_start_host,
        "ksm_disable_aslr": settings.ksm_disable_aslr,
        "warm_pool_size": min(settings.warm_pool_size, settings.max_displays),
        "warm_pool_browser": settings.warm_pool_browser,
        "memory_reclaim_interval": settings.memory_reclaim_interval,
        "vnc_linger": settings.vnc_linger_seconds,
    }
    options.update(overrides)
    return DesktopManager(options.pop("data_dir"), **options)
