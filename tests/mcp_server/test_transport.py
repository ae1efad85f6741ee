"""/mcp on the app's port: the exact route, transport security, the tool list, MCP_ENABLED."""

from __future__ import annotations

import httpx
import pytest

from tests.helpers import ServerProcess
from tests.mcp_server.conftest import mcp_client, running_server

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "raw-http", "version": "0"},
    },
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream"}

EXPECTED_ANNOTATIONS = {
    # name: (read_only, destructive, idempotent, open_world)
    "create_session": (False, False, False, False),
    "execute_task": (False, True, False, True),
    "wait_for_task": (True, False, True, False),
    "cancel_task": (False, True, True, False),
    "answer_approval": (False, True, False, True),
    "get_session_status": (True, False, True, False),
    "destroy_session": (False, True, True, False),
    "take_screenshot": (True, False, True, False),
    "upload_file": (False, True, True, False),
    "list_files": (True, False, True, False),
}


async def test_lists_exactly_the_tools_with_truthful_annotations(
    app_server: ServerProcess,
) -> None:
    async with mcp_client(app_server) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert set(tools) == set(EXPECTED_ANNOTATIONS)
    for name, expected in EXPECTED_ANNOTATIONS.items():
        tool = tools[name]
        hints = tool.annotations
        assert hints is not None
        got = (
            hints.read_only_hint,
            hints.destructive_hint,
            hints.idempotent_hint,
            hints.open_world_hint,
        )
        assert got == expected, name
        assert tool.description and len(tool.description) > 80, name
        assert "\n" not in tool.description and "  " not in tool.description, name
        assert tool.output_schema is not None, f"{name} declares no output schema"
        for param, schema in tool.input_schema.get("properties", {}).items():
            assert schema.get("description"), f"{name}.{param} has no description"
    assert tools["execute_task"].input_schema["required"] == ["session_id", "task"]
    # The key travels in a header, never as an argument.
    for tool in tools.values():
        assert not any("key" in p for p in tool.input_schema.get("properties", {}))


def test_post_to_mcp_without_trailing_slash_is_served_without_redirect(
    app_server: ServerProcess,
) -> None:
    with httpx.Client(base_url=app_server.base_url, timeout=10) as http:
        response = http.post("/mcp", json=INITIALIZE, headers=MCP_HEADERS)
    assert response.status_code == 200, response.text
    assert response.headers.get("mcp-session-id")
    assert '"serverInfo"' in response.text and "computer-use" in response.text


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Origin": "http://evil.example"}, 403),
        ({"Origin": "http://localhost:5173"}, 200),
        ({"Host": "evil.example"}, 421),
    ],
    ids=["foreign-origin", "localhost-origin", "foreign-host"],
)
def test_transport_security_checks_origin_and_host(
    app_server: ServerProcess, headers: dict[str, str], status: int
) -> None:
    with httpx.Client(base_url=app_server.base_url, timeout=10) as http:
        response = http.post("/mcp", json=INITIALIZE, headers={**MCP_HEADERS, **headers})
    assert response.status_code == status, response.text


async def test_mcp_enabled_false_answers_404(tmp_path_factory: pytest.TempPathFactory) -> None:
    data_dir = tmp_path_factory.mktemp("mcp-off")
    env = {"DESKTOP_DISPLAY_BASE": "720", "DESKTOP_USER_PREFIX": "cu-mo", "MAX_DISPLAYS": "1"}
    async with (
        running_server(data_dir, MCP_ENABLED="false", **env) as server,
        httpx.AsyncClient(base_url=server.base_url, timeout=10) as http,
    ):
        post = await http.post("/mcp", json=INITIALIZE, headers=MCP_HEADERS)
        get = await http.get("/mcp")
        health = await http.get("/api/v1/health")
    assert post.status_code == 404
    assert get.status_code == 404
    assert health.status_code == 200
