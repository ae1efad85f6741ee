"""HTTP hardening (security.py) against a real server: headers on every response, the body
cap, and per-client rate limits on session creation and message posting."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from computer_use.config import Settings
from computer_use.security import SecurityMiddleware
from tests.conftest import server_env
from tests.helpers import ServerProcess

MAX_BYTES = 2048
SESSIONS_PER_MINUTE = 3
MESSAGES_PER_MINUTE = 5


@pytest.fixture(scope="module")
def hardened(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data_dir = tmp_path_factory.mktemp("security")
    env = server_env(
        data_dir,
        MAX_DISPLAYS="1",
        DESKTOP_DISPLAY_BASE="1300",
        DESKTOP_USER_PREFIX="cu-ih",
        MAX_REQUEST_BYTES=str(MAX_BYTES),
        RATE_LIMIT_SESSIONS=f"{SESSIONS_PER_MINUTE}/minute",
        RATE_LIMIT_MESSAGES=f"{MESSAGES_PER_MINUTE}/minute",
    )
    server = ServerProcess(env, data_dir / "server.log").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def client(hardened: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=hardened.base_url, timeout=10) as http:
        yield http


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"]["code"] == code
    assert body["error"]["message"]


@pytest.mark.parametrize("path", ["/api/v1/health", "/", "/api/v1/no-such-route", "/llms.txt"])
def test_every_response_carries_the_security_headers(client: httpx.Client, path: str) -> None:
    response = client.get(path)
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "SAMEORIGIN"
    assert response.headers["referrer-policy"]


def test_a_response_keeps_the_headers_it_sets_itself() -> None:
    async def page(request: object) -> PlainTextResponse:
        return PlainTextResponse("viewer", headers={"Referrer-Policy": "no-referrer"})

    app = SecurityMiddleware(
        Starlette(routes=[Route("/", page)]), max_body_bytes=MAX_BYTES, rules=[]
    )
    response = TestClient(app).get("/")
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers.get_list("referrer-policy") == ["no-referrer"]
    assert response.headers["x-frame-options"] == "SAMEORIGIN"


def test_a_body_over_the_limit_is_refused_with_413(client: httpx.Client) -> None:
    url = f"/api/v1/sessions/{uuid.uuid4()}/messages"
    response = client.post(url, json={"content": "x" * (MAX_BYTES * 2)})
    assert_error(response, 413, "payload_too_large")
    assert "MAX_REQUEST_BYTES" in response.json()["error"]["message"]
    assert response.headers["x-content-type-options"] == "nosniff"


def test_a_chunked_body_over_the_limit_is_refused_with_413(client: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"content": "'
        for _ in range(8):
            yield b"x" * 512
        yield b'"}'

    response = client.post(
        f"/api/v1/sessions/{uuid.uuid4()}/messages",
        content=chunks(),
        headers={"Content-Type": "application/json"},
    )
    assert "content-length" not in response.request.headers
    assert_error(response, 413, "payload_too_large")


def test_a_body_under_the_limit_reaches_the_route(client: httpx.Client) -> None:
    response = client.post("/api/v1/sessions", json={"title": ""})
    assert_error(response, 422, "invalid_input")  # the route's own validation answered


def test_session_creation_is_rate_limited_per_client_with_retry_after(
    client: httpx.Client,
) -> None:
    # Invalid bodies count too: the limit guards the door, before any work is done.
    statuses = [
        client.post("/api/v1/sessions", json={"title": ""}).status_code
        for _ in range(SESSIONS_PER_MINUTE + 3)
    ]
    assert 429 in statuses and 500 not in statuses
    limited = client.post("/api/v1/sessions", json={"title": ""})
    assert_error(limited, 429, "rate_limited")
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    assert "RATE_LIMIT_SESSIONS" in limited.json()["error"]["message"]
    assert client.get("/api/v1/sessions").status_code == 200  # reading is not limited


def test_message_posting_is_rate_limited_separately(client: httpx.Client) -> None:
    url = f"/api/v1/sessions/{uuid.uuid4()}/messages"
    statuses = [
        client.post(url, json={"content": "hello"}).status_code
        for _ in range(MESSAGES_PER_MINUTE + 2)
    ]
    # Earlier tests' posts to this route count too: some 404s, then only 429s.
    answered = statuses.count(404)
    assert 1 <= answered <= MESSAGES_PER_MINUTE
    assert statuses == [404] * answered + [429] * (len(statuses) - answered)
    limited = client.post(url, json={"content": "hello"})
    assert_error(limited, 429, "rate_limited")
    assert int(limited.headers["retry-after"]) >= 1


def test_invalid_rate_limit_settings_are_refused() -> None:
    with pytest.raises(ValidationError, match="rate_limit_messages"):
        Settings(_env_file=None, rate_limit_messages="lots")


def test_a_request_from_an_origin_not_in_cors_origins_is_refused(client: httpx.Client) -> None:
    preflight = {"Access-Control-Request-Method": "POST"}
    evil = client.options(
        "/api/v1/sessions", headers={"Origin": "http://evil.example", **preflight}
    )
    assert evil.status_code == 400
    assert "access-control-allow-origin" not in evil.headers
    plain = client.get("/api/v1/sessions", headers={"Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in plain.headers  # the browser withholds it
    local = client.options(
        "/api/v1/sessions", headers={"Origin": "http://localhost:8080", **preflight}
    )
    assert local.status_code == 200
    assert local.headers["access-control-allow-origin"] == "http://localhost:8080"
