"""RECORDINGS_ON_EXPIRY: an expired session's recording is kept (and still exports) or
deleted with its desktop; deleting the session deletes a kept one too."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from computer_use.cli import migrate
from computer_use.config import Settings
from computer_use.runtime import Runtime, build_runtime
from computer_use.sessions.models import SessionStatus
from tests import slots
from tests.helpers import wait_for_async
from tests.sessions.test_exports import ffmpeg_pids_writing


@pytest.fixture(params=["keep", "delete"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    settings = Settings(
        _env_file=None,
        data_dir=tmp_path,
        max_displays=1,
        desktop_display_base=slots.display(1480),
        desktop_user_prefix=slots.prefix("cu-tx"),
        session_ttl_seconds=1,
        recordings_on_expiry=request.param,
    )
    migrate(settings)  # synchronous (Alembic runs its own loop): before the test's loop
    return settings


@pytest.fixture
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    runtime = build_runtime(settings)
    await runtime.desktops.start(keep=set())
    try:
        yield runtime
    finally:
        await runtime.recordings.stop_all()
        await runtime.desktops.shutdown()
        await runtime.engine.dispose()


async def test_expiry_keeps_or_deletes_the_recording(runtime: Runtime, settings: Settings) -> None:
    recordings = runtime.recordings
    session = await runtime.sessions.open(title="expiring", model=None, record=True)
    directory = recordings.dir(session.id)
    assert recordings.is_recording(session.id) and ffmpeg_pids_writing(directory)

    async def expired() -> bool:
        return await runtime.sessions.expire(session_id=session.id)

    await wait_for_async(expired, timeout=15, interval=0.2, what="the session to expire")
    assert (await runtime.sessions.get(session_id=session.id)).status == SessionStatus.EXPIRED
    assert not ffmpeg_pids_writing(directory)  # stopped either way
    if settings.recordings_on_expiry == "keep":
        assert recordings.exists(session.id)
        assert all(part["ended_at"] for part in recordings.parts(session.id))
        video = await recordings.export(session.id)
        assert (await asyncio.to_thread(video.stat)).st_size > 0
        await asyncio.to_thread(video.unlink)
    else:
        assert not await asyncio.to_thread(directory.exists)

    await runtime.sessions.close(session_id=session.id)
    assert not await asyncio.to_thread(directory.exists)
