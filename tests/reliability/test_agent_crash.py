"""The agent's own task crashes (a bug, injected): the run ends with an `error` event and
`message_complete`, the session is usable again within 5 s, and nothing else notices."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from computer_use.cli import migrate
from computer_use.config import Settings
from computer_use.runtime import Runtime, build_runtime
from computer_use.sessions.models import SessionStatus


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    settings = Settings(
        _env_file=None,
        data_dir=tmp_path,
        anthropic_api_key=SecretStr("sk-test-crash"),
        max_displays=2,
        desktop_display_base=1950,
        desktop_user_prefix="cu-rx",
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
        await runtime.runner.shutdown()
        await runtime.desktops.shutdown()
        await runtime.engine.dispose()


async def _until_complete(runtime: Runtime, session_id: str, after: int) -> list[Any]:
    seen = []
    async for event in runtime.bus.subscribe(session_id, after):
        seen.append(event)
        if event.type == "message_complete":
            return seen
    raise AssertionError("the stream ended before message_complete")


async def test_a_crashing_agent_task_ends_its_run_cleanly_and_the_session_recovers(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def crash(**_: Any) -> None:
        raise RuntimeError("injected crash in the agent task")

    crashing = await runtime.sessions.open(title="crashing", model=None)
    bystander = await runtime.sessions.open(title="bystander", model=None)
    monkeypatch.setattr("computer_use.agent.service.run_agent", crash)

    async with asyncio.timeout(5):  # detected and reported within 5 s
        before = (await runtime.sessions.get(session_id=crashing.id)).last_event_id
        await runtime.runner.start(session_id=crashing.id, content="hi", api_key=None)
        events = await _until_complete(runtime, crashing.id, before)
    # active again by the time the run's end is announced
    assert (await runtime.sessions.get(session_id=crashing.id)).status == SessionStatus.ACTIVE

    errors = [e.data for e in events if e.type == "error"]
    assert [e["code"] for e in errors] == ["internal_error"]
    assert "sk-test-crash" not in str(errors)
    assert events[-1].data["stop_reason"] == "error"

    # usable again: the next message is accepted (and handled the same way)
    after = (await runtime.sessions.get(session_id=crashing.id)).last_event_id
    await runtime.runner.start(session_id=crashing.id, content="again", api_key=None)
    async with asyncio.timeout(5):
        await _until_complete(runtime, crashing.id, after)

    # the other session never noticed: its desktop still answers
    other = runtime.sessions.desktop(bystander.id)
    assert other is not None
    assert (await other.screenshot()).startswith(b"\x89PNG")
    assert (await runtime.sessions.get(session_id=bystander.id)).status == SessionStatus.ACTIVE
