"""The app's start-up and shutdown: builds the Runtime, restores sessions, runs the cleanup task."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI

from computer_use import appstate, schema, startup
from computer_use.config import Settings
from computer_use.datadir import prepare_data_dir
from computer_use.mcp_server.mount import mcp_running
from computer_use.runtime import Runtime, RuntimeParts, build_runtime, install_runtime
from computer_use.streaming.pgbus import PostgresEventBus
from computer_use.vnc import SessionVncTargets, VncTargets

logger = logging.getLogger(__name__)


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


def _parts(settings: Settings) -> RuntimeParts:
    """With RAY_ADDRESS the sessions and their runs live in session actors on the cluster's
    desktop hosts (cluster/replica.py, the `cluster` extra)."""
    if not settings.ray_address:
        return RuntimeParts()
    from computer_use.cluster.replica import replica_parts

    return replica_parts()


def _vnc_targets(settings: Settings, runtime: Runtime) -> VncTargets:
    if not settings.ray_address:
        return SessionVncTargets(runtime.sessions)
    from computer_use.cluster.remote_vnc import RayVncTargets

    return RayVncTargets(runtime.sessions)


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings = appstate.read(app, "settings", Settings)
    if settings is None:
        raise RuntimeError("create_app puts the Settings on app.state before the lifespan runs")
    prepare_data_dir(settings.data_dir)
    startup.check(settings)  # e.g. a public bind without API_TOKENS: one line, no traceback
    await schema.prepare(settings)  # AUTO_MIGRATE: migrate under a lock, else check
    runtime = build_runtime(settings, _parts(settings))
    install_runtime(app, runtime)
    app.state.vnc_targets = _vnc_targets(settings, runtime)
    try:
        if isinstance(runtime.bus, PostgresEventBus):
            await runtime.bus.start()
        startup.announce(await runtime.sessions.start_desktops())
        await runtime.recordings.reconcile(await runtime.sessions.get_all_ids())
        await runtime.runner.people.interrupt_pending()  # approvals do not outlive a run
        await runtime.sessions.restore_all()
        runtime.tasks.append(asyncio.create_task(_cleanup_loop(runtime), name="session-cleanup"))
        runtime.tasks.extend(asyncio.create_task(job) for job in runtime.sessions.background_jobs())
        # MCP sessions end first on shutdown: a cancelled execute_task stops its run cleanly.
        async with mcp_running(app):
            yield
    finally:
        for task in runtime.tasks:
            task.cancel()
        await asyncio.gather(*runtime.tasks, return_exceptions=True)
        runtime.bus.close_all()
        await runtime.runner.shutdown()
        if isinstance(runtime.bus, PostgresEventBus):
            await runtime.bus.stop()
        await runtime.recordings.stop_all()  # before their displays go
        await runtime.sessions.stop_desktops()
        await runtime.engine.dispose()
