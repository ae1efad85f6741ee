"""Bring your own key, with the server's key as the fallback."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from computer_use.loopback import say
from tests.helpers import ServerProcess
from tests.mcp_server.conftest import SERVER_KEY, Model, mcp_client, running_server, text_of


@pytest.fixture(scope="module")
async def keyed_server(
    model: Model, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ServerProcess]:
    data_dir = tmp_path_factory.mktemp("mcp-keyed")
    env = {"DESKTOP_DISPLAY_BASE": "730", "DESKTOP_USER_PREFIX": "cu-mk", "MAX_DISPLAYS": "1"}
    async with running_server(
        data_dir, ANTHROPIC_API_KEY=SERVER_KEY, ANTHROPIC_BASE_URL=model.server.base_url, **env
    ) as proc:
        yield proc


async def test_the_header_key_wins_and_the_server_key_is_the_fallback(
    keyed_server: ServerProcess, model: Model
) -> None:
    own = model.scripted.script("Task with my own key", say("Used yours."))
    fallback = model.scripted.script("Task with the server's key", say("Used the server's."))
    async with mcp_client(keyed_server) as client:
        created = await client.call_tool("create_session", {})
        assert created.structured_content is not None
        session_id = created.structured_content["session_id"]
        try:
            result = await client.call_tool(
                "execute_task", {"session_id": session_id, "task": fallback}
            )
            assert text_of(result) == "Used the server's."
            async with mcp_client(keyed_server, key="sk-ant-mine") as mine:
                result = await mine.call_tool(
                    "execute_task", {"session_id": session_id, "task": own}
                )
            assert text_of(result) == "Used yours."
        finally:
            await client.call_tool("destroy_session", {"session_id": session_id})
    assert [r.api_key for r in model.requests_for(fallback)] == [SERVER_KEY]
    assert [r.api_key for r in model.requests_for(own)] == ["sk-ant-mine"]
    log = keyed_server.log_path.read_text()
    assert "sk-ant-mine" not in log and SERVER_KEY not in log
