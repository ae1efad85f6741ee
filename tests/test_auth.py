"""API_TOKENS set: every REST, SSE, MCP and VNC request needs a token, and a session belongs
to the token that created it (another token gets 404, lists show only the caller's)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from computer_use.auth import ApiTokens, StreamTokens, owner_id
from tests.conftest import server_env
from tests.helpers import ServerProcess

TOKEN_A, TOKEN_B = "tok-a", "tok-b"
A = {"Authorization": f"Bearer {TOKEN_A}"}
B = {"Authorization": f"Bearer {TOKEN_B}"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data_dir = tmp_path_factory.mktemp("data-auth")
    env = server_env(
        data_dir,
        API_TOKENS=f"{TOKEN_A},{TOKEN_B}",
        DESKTOP_DISPLAY_BASE="1600",
        DESKTOP_USER_PREFIX="cu-au",
        MAX_DISPLAYS="3",
    )
    proc = ServerProcess(env, data_dir / "server.log").start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def session_of_a(server: ServerProcess) -> Iterator[dict[str, object]]:
    with server.client() as http:
        created = http.post("/api/v1/sessions", json={"title": "mine"}, headers=A)
        assert created.status_code == 201, created.text
        session: dict[str, object] = created.json()
        yield session
        http.delete(f"/api/v1/sessions/{session['id']}", headers=A)


def assert_unauthorized(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    error = response.json()["error"]
    assert error["code"] == "unauthorized"
    assert "Authorization: Bearer" in error["message"]


def test_no_token_is_refused_on_rest_and_sse(server: ServerProcess) -> None:
    some_id = "3f2b1c7e-8a4d-4e8f-9b6a-2d5c0e1f7a93"
    with server.client() as http:
        for method, path in [
            ("GET", "/api/v1/sessions"),
            ("POST", "/api/v1/sessions"),
            ("GET", "/api/v1/config"),
            ("GET", f"/api/v1/sessions/{some_id}"),
            ("GET", f"/api/v1/sessions/{some_id}/stream"),
            ("GET", f"/vnc/{some_id}"),
        ]:
            assert_unauthorized(http.request(method, path))
        assert_unauthorized(http.get("/api/v1/sessions", headers={"Authorization": "Bearer nope"}))
        assert_unauthorized(http.get("/api/v1/sessions", headers={"Authorization": TOKEN_A}))


def test_health_stays_open_and_config_says_auth_is_required(server: ServerProcess) -> None:
    with server.client() as http:
        health = http.get("/api/v1/health")
        assert health.status_code == 200 and health.json()["auth_required"] is True
        assert http.get("/api/v1/health/ready").status_code == 200
        config = http.get("/api/v1/config", headers={"X-API-Token": TOKEN_B})
    assert config.status_code == 200
    assert config.json()["auth_required"] is True
    assert TOKEN_A not in config.text and TOKEN_B not in config.text


async def test_no_token_is_refused_on_mcp(server: ServerProcess) -> None:
    async with httpx2.AsyncClient() as http:
        response = await http.post(
            f"{server.base_url}/mcp",
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
            headers={"Accept": "application/json, text/event-stream"},
        )
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


async def test_no_token_is_refused_on_the_vnc_websocket(
    server: ServerProcess, session_of_a: dict[str, object]
) -> None:
    ws_url = server.base_url.replace("http", "ws", 1)
    path = f"/api/v1/sessions/{session_of_a['id']}/vnc/websockify"
    for query in ("", "?token=forged.token"):
        with pytest.raises(InvalidStatus) as refused:
            async with connect(ws_url + path + query):
                pass
        assert refused.value.response.status_code == 401


def test_another_token_gets_404_for_the_session(
    server: ServerProcess, session_of_a: dict[str, object]
) -> None:
    sid = session_of_a["id"]
    with server.client() as http:
        for method, path in [
            ("GET", f"/api/v1/sessions/{sid}"),
            ("GET", f"/api/v1/sessions/{sid}/stream"),
            ("GET", f"/api/v1/sessions/{sid}/screenshot"),
            ("POST", f"/api/v1/sessions/{sid}/cancel"),
            ("GET", f"/api/v1/sessions/{sid}/images/3f2b1c7e-8a4d-4e8f-9b6a-2d5c0e1f7a93"),
            ("DELETE", f"/api/v1/sessions/{sid}"),
        ]:
            response = http.request(method, path, headers=B)
            assert response.status_code == 404, (method, path, response.text)
        posted = http.post(f"/api/v1/sessions/{sid}/messages", json={"content": "hi"}, headers=B)
        assert posted.status_code == 404
        listed = http.get("/api/v1/sessions", headers=B).json()
        assert listed["items"] == [] and listed["total"] == 0

        mine = http.get("/api/v1/sessions", headers=A).json()
        assert [s["id"] for s in mine["items"]] == [sid] and mine["total"] == 1
        assert http.get(f"/api/v1/sessions/{sid}", headers=A).status_code == 200
        shot = http.get(f"/api/v1/sessions/{sid}/screenshot", headers={"X-API-Token": TOKEN_A})
        assert shot.status_code == 200 and shot.content.startswith(b"\x89PNG")


def test_signed_stream_url_works_without_a_header(
    server: ServerProcess, session_of_a: dict[str, object]
) -> None:
    stream_url = str(session_of_a["stream_url"])
    assert "?token=" in stream_url
    with server.client() as http:
        with http.stream("GET", f"{stream_url}&after=0") as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
        path, token = stream_url.split("?token=")
        tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
        assert_unauthorized(http.get(f"{path}?token={tampered}"))
        other = "3f2b1c7e-8a4d-4e8f-9b6a-2d5c0e1f7a93"  # signed for another session
        assert_unauthorized(http.get(f"/api/v1/sessions/{other}/stream?token={token}"))


def test_stream_tokens_expire_and_bind_session_and_owner() -> None:
    now = [1000.0]
    tokens = StreamTokens(secret=b"s" * 32, ttl_seconds=60, clock=lambda: now[0])
    token = tokens.mint("sid-1", owner_id(TOKEN_A))
    assert tokens.verify(token, "sid-1") == owner_id(TOKEN_A)
    assert tokens.verify(token, "sid-2") is None
    assert tokens.verify(token + "x", "sid-1") is None
    assert StreamTokens(secret=b"t" * 32).verify(token, "sid-1") is None
    now[0] += 60
    assert tokens.verify(token, "sid-1") is None


def test_api_tokens_accept_either_header_and_derive_distinct_owners() -> None:
    tokens = ApiTokens([TOKEN_A, TOKEN_B])
    assert tokens.from_headers({"authorization": f"bearer {TOKEN_A}"}) == owner_id(TOKEN_A)
    assert tokens.from_headers({"x-api-token": TOKEN_B}) == owner_id(TOKEN_B)
    assert tokens.from_headers({"authorization": "Bearer tok-"}) is None
    assert tokens.from_headers({}) is None
    assert owner_id(TOKEN_A) != owner_id(TOKEN_B) and len(owner_id(TOKEN_A)) == 16
    assert not ApiTokens([]).enabled


@asynccontextmanager
async def mcp_client(server: ServerProcess, token: str) -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=30) as http,
        Client(streamable_http_client(f"{server.base_url}/mcp", http_client=http)) as client,
    ):
        yield client


async def test_mcp_with_another_token_cannot_see_the_session(
    server: ServerProcess, session_of_a: dict[str, object]
) -> None:
    sid = str(session_of_a["id"])
    async with mcp_client(server, TOKEN_B) as client:
        for tool in ("get_session_status", "take_screenshot", "destroy_session"):
            result = await client.call_tool(tool, {"session_id": sid})
            assert result.is_error, tool
    async with mcp_client(server, TOKEN_A) as client:
        status = await client.call_tool("get_session_status", {"session_id": sid})
        assert not status.is_error


async def test_session_created_over_mcp_belongs_to_its_token(server: ServerProcess) -> None:
    async with mcp_client(server, TOKEN_B) as client:
        result = await client.call_tool("create_session", {"title": "b over mcp"})
        assert not result.is_error
        assert result.structured_content is not None
        sid = result.structured_content["session_id"]
        try:
            async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
                theirs = (await http.get("/api/v1/sessions", headers=B)).json()
                assert [s["id"] for s in theirs["items"]] == [sid]
                assert (await http.get(f"/api/v1/sessions/{sid}", headers=A)).status_code == 404
        finally:
            destroyed = await client.call_tool("destroy_session", {"session_id": sid})
            assert not destroyed.is_error


MCP_HEADERS = {"Accept": "application/json, text/event-stream"}
MCP_VERSION = {"mcp-protocol-version": "2025-06-18"}


def _rpc(method: str, id: int | None = 1, **params: object) -> dict[str, object]:
    message: dict[str, object] = {"jsonrpc": "2.0", "method": method, "params": params}
    if id is not None:
        message["id"] = id
    return message


def test_another_token_can_neither_use_nor_end_an_mcp_session(server: ServerProcess) -> None:
    with server.client() as http:
        opened = http.post(
            "/mcp",
            json=_rpc(
                "initialize",
                protocolVersion="2025-06-18",
                capabilities={},
                clientInfo={"name": "a", "version": "0"},
            ),
            headers={**MCP_HEADERS, **A},
        )
        assert opened.status_code == 200, opened.text
        sid = {"mcp-session-id": opened.headers["mcp-session-id"], **MCP_VERSION}
        ready = _rpc("notifications/initialized", id=None)
        assert http.post("/mcp", json=ready, headers={**MCP_HEADERS, **A, **sid}).is_success

        used = http.post("/mcp", json=_rpc("ping", 2), headers={**MCP_HEADERS, **B, **sid})
        assert used.status_code == 404, used.text
        ended = http.delete("/mcp", headers={**MCP_HEADERS, **B, **sid})
        assert ended.status_code == 404, ended.text

        still = http.post("/mcp", json=_rpc("ping", 3), headers={**MCP_HEADERS, **A, **sid})
        assert still.status_code == 200 and '"result"' in still.text, still.text
        assert http.delete("/mcp", headers={**MCP_HEADERS, **A, **sid}).status_code == 200
        gone = http.post("/mcp", json=_rpc("ping", 4), headers={**MCP_HEADERS, **A, **sid})
        assert gone.status_code == 404


def test_unauthenticated_health_says_only_what_a_load_balancer_needs(
    server: ServerProcess, session_of_a: dict[str, object]
) -> None:
    with server.client() as http:
        anonymous = http.get("/api/v1/health")
        forged = http.get("/api/v1/health", headers={"Authorization": "Bearer nope"})
        detailed = http.get("/api/v1/health", headers=B)
    for response in (anonymous, forged):
        assert response.status_code == 200
        assert response.json() == {"status": "ok", "auth_required": True}
    assert detailed.status_code == 200
    body = detailed.json()
    assert body["status"] == "ok" and body["auth_required"] is True
    assert {"version", "database", "desktops", "warnings"} <= set(body)
    assert body["desktops"]["desktops_running"] >= 1
    assert "desktops_failed" in body["desktops"]
