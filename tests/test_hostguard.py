"""DNS rebinding and cross-site requests, as a web page would try them: every route checks the
Host header (ALLOWED_HOSTS), state-changing requests check Origin, the VNC websocket takes its
token from any Origin but still checks Host."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Origin, Subprotocol

from computer_use.config import Settings
from computer_use.hostguard import HostRule, host_rules, split_host
from computer_use.main import create_app
from tests.conftest import server_env
from tests.helpers import ServerProcess

FOREIGN = "attacker.example"
BINARY = [Subprotocol("binary")]
SOME_ID = "3f2b1c7e-8a4d-4e8f-9b6a-2d5c0e1f7a93"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data_dir = tmp_path_factory.mktemp("data-hostguard")
    env = server_env(
        data_dir,
        ALLOWED_HOSTS="computer-use.example.com",
        DESKTOP_DISPLAY_BASE="1740",
        DESKTOP_USER_PREFIX="cu-hg",
        MAX_DISPLAYS="1",
    )
    proc = ServerProcess(env, data_dir / "server.log").start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def session(server: ServerProcess) -> Iterator[dict[str, str]]:
    with server.client() as http:
        created = http.post("/api/v1/sessions", json={"title": "guarded"})
        assert created.status_code == 201, created.text
        body: dict[str, str] = created.json()
        yield body
        http.delete(f"/api/v1/sessions/{body['id']}")


def test_every_route_refuses_a_foreign_host_with_421_naming_allowed_hosts(
    server: ServerProcess, session: dict[str, str]
) -> None:
    sid = session["id"]
    foreign = {"Host": f"{FOREIGN}:{server.port}"}
    with server.client() as http:
        for method, path in [
            ("GET", "/api/v1/sessions"),
            ("POST", "/api/v1/sessions"),
            ("GET", f"/api/v1/sessions/{sid}"),
            ("GET", f"/api/v1/sessions/{sid}/stream"),
            ("GET", f"/api/v1/sessions/{sid}/screenshot"),
            ("DELETE", f"/api/v1/sessions/{sid}"),
            ("GET", f"/vnc/{sid}"),
            ("GET", "/api/v1/config"),
            ("GET", "/openapi.json"),
            ("GET", "/"),
            ("POST", "/mcp"),
        ]:
            response = http.request(method, path, headers=foreign)
            assert response.status_code == 421, (method, path, response.text)
            error = response.json()["error"]
            assert error["code"] == "host_not_allowed"
            assert "ALLOWED_HOSTS" in error["message"]
        # the session survived all of that
        assert http.get(f"/api/v1/sessions/{sid}").status_code == 200


def test_loopback_names_on_any_port_and_allowed_hosts_are_served(server: ServerProcess) -> None:
    with server.client() as http:
        for host in (
            f"127.0.0.1:{server.port}",
            "localhost:5173",
            "localhost",
            "[::1]:8000",
            "computer-use.example.com",
            "Computer-Use.Example.Com:443",
        ):
            response = http.get("/api/v1/sessions", headers={"Host": host})
            assert response.status_code == 200, (host, response.text)
        for host in ("example.com", "computer-use.example.com.evil", "127.0.0.2:80", ""):
            response = http.get("/api/v1/sessions", headers={"Host": host})
            assert response.status_code == 421, host


def test_health_answers_any_host_but_shows_its_details_only_to_ours(
    server: ServerProcess,
) -> None:
    with server.client() as http:
        probe = http.get("/api/v1/health", headers={"Host": "10.1.2.3:8000"})
        assert probe.status_code == 200
        assert probe.json() == {"status": "ok", "auth_required": False}
        assert http.get("/api/v1/health/ready", headers={"Host": FOREIGN}).status_code == 200
        local = http.get("/api/v1/health").json()
        assert "desktops_failed" in local["desktops"] and "warnings" in local


def test_state_changing_requests_from_a_foreign_origin_get_403(server: ServerProcess) -> None:
    with server.client() as http:
        for origin in (f"http://{FOREIGN}", "null", f"http://{FOREIGN}:{server.port}"):
            refused = http.post("/api/v1/sessions", json={}, headers={"Origin": origin})
            assert refused.status_code == 403, (origin, refused.text)
            assert refused.json()["error"]["code"] == "origin_not_allowed"
            assert "CORS_ORIGINS" in refused.json()["error"]["message"]
            deleted = http.delete(f"/api/v1/sessions/{SOME_ID}", headers={"Origin": origin})
            assert deleted.status_code == 403
        # Reading is left to CORS (the browser withholds the answer); no Origin = not a browser.
        assert http.get("/api/v1/sessions", headers={"Origin": "null"}).status_code == 200
        allowed: tuple[str | None, ...] = (
            None,
            f"http://127.0.0.1:{server.port}",  # the console itself
            "http://localhost:5173",  # CORS_ORIGINS=localhost: any local port
            "https://computer-use.example.com",  # an allowed host's page
        )
        for allowed_origin in allowed:
            headers = {"Origin": allowed_origin} if allowed_origin else {}
            response = http.delete(f"/api/v1/sessions/{SOME_ID}", headers=headers)
            assert response.status_code == 404, (allowed_origin, response.text)


def _ws_target(server: ServerProcess, session: dict[str, str]) -> tuple[str, str]:
    token = parse_qs(urlsplit(session["vnc_url"]).query)["token"][0]
    return f"/api/v1/sessions/{session['id']}/vnc/websockify?token={token}", token


async def test_vnc_websocket_takes_its_token_from_any_origin(
    server: ServerProcess, session: dict[str, str]
) -> None:
    path, _ = _ws_target(server, session)
    for origin in ("null", f"https://{FOREIGN}"):
        async with connect(
            f"ws://127.0.0.1:{server.port}{path}", origin=Origin(origin), subprotocols=BINARY
        ) as ws:
            greeting = await ws.recv()
            assert isinstance(greeting, bytes) and greeting.startswith(b"RFB ")


async def test_vnc_websocket_with_a_foreign_host_is_refused(
    server: ServerProcess, session: dict[str, str]
) -> None:
    path, _ = _ws_target(server, session)
    with pytest.raises(InvalidStatus) as refused:
        async with connect(
            f"ws://{FOREIGN}:{server.port}{path}",
            host="127.0.0.1",
            port=server.port,
            proxy=None,
            subprotocols=BINARY,
        ):
            pass
    assert refused.value.response.status_code == 421


def test_host_rules_parse_names_ports_and_wildcards() -> None:
    assert split_host("[::1]:8000") == ("[::1]", "8000")
    assert split_host("Example.COM.") == ("example.com", None)
    assert split_host("example.com:443") == ("example.com", "443")
    assert HostRule.parse("a.example:*").matches("a.example", "1")
    assert HostRule.parse("a.example").matches("a.example", None)
    assert not HostRule.parse("a.example:8443").matches("a.example", "443")
    assert HostRule.parse("*.example.com").matches("x.example.com", "1")
    assert not HostRule.parse("*.example.com").matches("example.com.evil", None)
    assert HostRule.parse("*").matches("anything", None)


def test_allowed_hosts_keeps_mcp_allowed_hosts_as_its_old_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ALLOWED_HOSTS", raising=False)
    monkeypatch.setenv("MCP_ALLOWED_HOSTS", "old.example:*")
    settings = Settings(_env_file=None)
    assert settings.allowed_hosts == "old.example:*"
    monkeypatch.setenv("ALLOWED_HOSTS", "new.example")
    assert Settings(_env_file=None).allowed_hosts == "new.example"


def test_the_bound_host_is_allowed_but_not_the_any_address() -> None:
    named = host_rules(Settings(_env_file=None, host="box.lan"))
    assert any(rule.matches("box.lan", "8000") for rule in named)
    anywhere = host_rules(Settings(_env_file=None, host="0.0.0.0"))
    assert not any(rule.matches("0.0.0.0", "8000") for rule in anywhere)
    assert not any(rule.matches("box.lan", None) for rule in anywhere)


def test_refusals_are_json_errors(server: ServerProcess) -> None:
    response = httpx.get(f"{server.base_url}/api/v1/sessions", headers={"Host": FOREIGN})
    assert response.headers["content-type"].startswith("application/json")


@pytest.mark.parametrize(
    ("settings", "address", "status"),
    [
        ({}, "192.0.2.1", 403),
        ({}, "127.0.0.1", 200),
        ({"api_tokens": "a-token"}, "192.0.2.1", 200),
        ({"allow_unauthenticated": True}, "192.0.2.1", 200),
    ],
    ids=["no-tokens-remote", "no-tokens-loopback", "tokens-remote", "opted-out-remote"],
)
async def test_without_tokens_only_loopback_connections_are_served(
    settings: dict[str, object], address: str, status: int
) -> None:
    """What start-up cannot see (`uvicorn ... --host 0.0.0.0` with HOST left at 127.0.0.1):
    the address a connection came in on. In process, no traffic: the ASGI scope's `server`."""
    app = create_app(Settings(_env_file=None, **settings))  # type: ignore[arg-type]
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=f"http://{address}:8000") as http:
        response = await http.get("/openapi.json", headers={"Host": "localhost:8000"})
    assert response.status_code == status, response.text
    if status == 403:
        error = response.json()["error"]
        assert error["code"] == "loopback_only" and "API_TOKENS" in error["message"]
