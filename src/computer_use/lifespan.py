"""Owns every long-lived thing: DB engine, desktops, agent runs, background cleanup."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from computer_use.config import Settings
from computer_use.database import create_engine, create_sessionmaker
from computer_use.sessions.service import SessionService

logger = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    sessions: SessionService
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


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


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_engine(settings)
    sessionmaker = create_sessionmaker(engine)
    sessions = SessionService(sessionmaker=sessionmaker, settings=settings)
    runtime = Runtime(
        settings=settings, engine=engine, sessionmaker=sessionmaker, sessions=sessions
    )
    app.state.runtime = runtime
    runtime.tasks.append(asyncio.create_task(_cleanup_loop(runtime), name="session-cleanup"))
    try:
        yield
    finally:
        for task in runtime.tasks:
            task.cancel()
        await asyncio.gather(*runtime.tasks, return_exceptions=True)
        await engine.dispose()
