"""The rules of a new message live in AgentRunner.start, for REST and MCP alike, and a refused
start makes no model client (nothing to leak on a 409, 400 or 503).

Real services on a real SQLite database; no desktop is started, so a live session's desktop
is "not running", which is one of the rules under test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from computer_use import errors
from computer_use.agent.providers import ModelClient
from computer_use.agent.service import AgentRunner
from computer_use.cli import migrate
from computer_use.config import Settings
from computer_use.runtime import RuntimeParts, build_runtime
from computer_use.sessions.models import SessionStatus
from computer_use.sessions.service import SessionService


class CountingRunner(AgentRunner):
    """The real runner, counting the model clients it makes."""

    clients_made = 0

    def _client_for(self, key: str | None) -> ModelClient:
        CountingRunner.clients_made += 1
        return super()._client_for(key)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    settings = Settings(_env_file=None, data_dir=tmp_path, max_message_chars=50)
    migrate(settings)  # synchronous (Alembic runs its own loop): before the test's loop
    return settings


@pytest.fixture
async def services(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[SessionService, CountingRunner]]:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    runtime = build_runtime(settings, RuntimeParts(runner=CountingRunner))
    sessions, runner = runtime.sessions, runtime.runner
    assert isinstance(runner, CountingRunner)
    CountingRunner.clients_made = 0
    try:
        yield sessions, runner
    finally:
        await runner.shutdown()
        await runtime.engine.dispose()


async def test_each_refusal_of_a_new_message_is_its_own_error_and_makes_no_client(
    services: tuple[SessionService, CountingRunner],
) -> None:
    sessions, runner = services
    session = await sessions.create(title="rules", model=None, owner="alice")
    await sessions.transition(session.id, SessionStatus.ACTIVE)

    async def start(content: str = "hello", **kw: str | None) -> None:
        await runner.start(
            session_id=session.id, content=content, api_key=kw.get("key"), owner=kw.get("owner")
        )

    with pytest.raises(errors.MessageTooLong) as too_long:
        await start("x" * 51, owner="alice", key="sk-ant-k")
    assert (too_long.value.length, too_long.value.limit, too_long.value.status_code) == (
        51,
        50,
        413,
    )

    with pytest.raises(errors.NotFound):
        await start(owner="bob", key="sk-ant-k")

    with pytest.raises(errors.MissingApiKey, match="X-Anthropic-API-Key"):
        await start(owner="alice")

    with pytest.raises(errors.DesktopNotRunning) as not_running:
        await start(owner="alice", key="sk-ant-k")
    assert not_running.value.status_code == 503 and not_running.value.status == "active"

    await sessions.transition(session.id, SessionStatus.PROCESSING)
    with pytest.raises(errors.SessionBusy, match="cancel"):
        await start(owner="alice", key="sk-ant-k")

    await sessions.transition(session.id, SessionStatus.EXPIRED)
    with pytest.raises(errors.SessionExpired, match="create a new session"):
        await start(owner="alice", key="sk-ant-k")

    assert CountingRunner.clients_made == 0
    stored = await sessions.get(session_id=session.id)
    assert stored.status == SessionStatus.EXPIRED  # no refusal changed the session


async def test_a_live_sessions_desktop_is_required_once_for_screenshots_and_files(
    services: tuple[SessionService, CountingRunner],
) -> None:
    sessions, _ = services
    session = await sessions.create(title="desktop rule", model=None, owner=None)
    with pytest.raises(errors.DesktopNotRunning):
        await sessions.running_desktop(session_id=session.id, owner=None)
    await sessions.transition(session.id, SessionStatus.EXPIRED)
    with pytest.raises(errors.SessionExpired, match="files"):
        await sessions.running_desktop(session_id=session.id, owner=None)
