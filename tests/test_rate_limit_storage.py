"""Rate limits counted in Redis (RATE_LIMIT_STORAGE_URL): two middlewares, each with its own
Redis connections as two API processes would have, share one count on the real Redis at
127.0.0.1:6379; in memory each counts alone; an unreachable Redis lets requests through."""

from __future__ import annotations

import uuid

import httpx
import pytest
from limits import parse
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from computer_use.config import Settings, format_settings_error
from computer_use.security import MESSAGE_POST, RateRule, SecurityMiddleware

REDIS_URL = "redis://127.0.0.1:6379/0"


async def _ok(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


def replica(rule: RateRule, storage_url: str) -> httpx.AsyncClient:
    app = Starlette(routes=[Route("/api/v1/sessions/{sid}/messages", _ok, methods=["POST"])])
    guarded = SecurityMiddleware(app, max_body_bytes=1024, rules=[rule], storage_url=storage_url)
    transport = httpx.ASGITransport(app=guarded, client=("203.0.113.7", 4000))
    return httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1")


def a_rule(per_minute: int) -> RateRule:
    """A rule of its own: its Redis keys are new, whatever earlier runs counted."""
    name = f"TEST_LIMIT_{uuid.uuid4().hex[:8]}"
    return RateRule(name, MESSAGE_POST, "POST", parse(f"{per_minute}/minute"))


async def post(client: httpx.AsyncClient) -> int:
    return (await client.post(f"/api/v1/sessions/{uuid.uuid4()}/messages")).status_code


async def test_replicas_on_one_redis_share_the_count() -> None:
    rule = a_rule(3)
    async with replica(rule, REDIS_URL) as a, replica(rule, REDIS_URL) as b:
        assert [await post(a), await post(b), await post(a)] == [200, 200, 200]
        refused = await b.post(f"/api/v1/sessions/{uuid.uuid4()}/messages")
        assert refused.status_code == 429
        assert f"({rule.name})" in refused.json()["error"]["message"]
        assert 0 < int(refused.headers["retry-after"]) <= 60
        assert await post(a) == 429


async def test_in_memory_each_process_counts_alone() -> None:
    rule = a_rule(2)
    async with replica(rule, "") as a, replica(rule, "") as b:
        assert [await post(a), await post(a), await post(a)] == [200, 200, 429]
        assert await post(b) == 200


async def test_an_unreachable_redis_lets_requests_through(caplog: pytest.LogCaptureFixture) -> None:
    async with replica(a_rule(1), "redis://127.0.0.1:1/0") as a:
        assert [await post(a), await post(a)] == [200, 200]
    assert "rate limits unavailable, request let through" in caplog.text


def test_the_storage_url_must_be_redis_and_is_never_echoed() -> None:
    with pytest.raises(ValidationError) as info:
        Settings(_env_file=None, rate_limit_storage_url="memcached://u:secret@h:11211")
    message = format_settings_error(info.value)
    assert "RATE_LIMIT_STORAGE_URL" in message and "redis://" in message
    assert "secret" not in message
