"""create_session's model argument goes through the same rule as REST."""

from __future__ import annotations

from collections.abc import Callable

from tests.helpers import ServerProcess
from tests.mcp_server.conftest import mcp_client, text_of

KEY = "sk-ant-client-models"


async def test_create_session_refuses_a_retired_model_and_describes_models(
    app_server: ServerProcess, created: Callable[[str], None]
) -> None:
    async with mcp_client(app_server, key=KEY) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        described = tools["create_session"].input_schema["properties"]["model"]["description"]
        assert "claude-sonnet-5-5" in described and "retired" in described

        refused = await client.call_tool("create_session", {"model": "claude-sonnet-4-5-20250929"})
        assert refused.is_error
        assert "retired on 2026-11-30" in text_of(refused)
        assert "claude-sonnet-5-5" in text_of(refused)

        made = await client.call_tool("create_session", {"model": "claude-opus-4-6"})
        assert not made.is_error, text_of(made)
        assert made.structured_content is not None
        created(made.structured_content["session_id"])
        assert made.structured_content["model"] == "claude-opus-4-6"
