"""A flood of messages and HTML payloads: 429s, never a 500, nothing lost or rewritten."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from computer_use.loopback import LoopbackModelServer
from computer_use.loopback.script import RecordedRequest, Reply, say
from tests.helpers import ServerProcess, running_server, wait_for_async

MESSAGES_PER_MINUTE = 100
HTML_TITLE = '<img src=x onerror="alert(1)"> & <b>bold</b>'
HTML_MESSAGE = "<script>alert('x')</script> \"quoted\" & <i>tags</i> stay as typed"


def answer(request: RecordedRequest) -> Reply:
    return say("ok")


@pytest.fixture(scope="module")
async def model() -> AsyncIterator[LoopbackModelServer]:
    async with LoopbackModelServer(answer, chunk_size=64) as server:
        yield server


@pytest.fixture(scope="module")
def flood_server(
    model: LoopbackModelServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    with running_server(
        tmp_path_factory.mktemp("abuse"),
        ANTHROPIC_BASE_URL=model.base_url,
        ANTHROPIC_API_KEY="sk-test-flood",
        RATE_LIMIT_MESSAGES=f"{MESSAGES_PER_MINUTE}/minute",
        MAX_DISPLAYS="1",
        DESKTOP_DISPLAY_BASE="1700",
        DESKTOP_USER_PREFIX="cu-ab",
    ) as proc:
        yield proc


async def active_session(http: httpx.AsyncClient, sid: str) -> dict[str, Any] | None:
    """The session, once it is active again (its runs are over)."""
    body: dict[str, Any] = (await http.get(f"/api/v1/sessions/{sid}")).json()
    return body if body["status"] == "active" else None


async def test_html_in_a_title_or_message_comes_back_as_the_same_text(
    flood_server: ServerProcess,
) -> None:
    async with httpx.AsyncClient(base_url=flood_server.base_url, timeout=60) as http:
        created = (await http.post("/api/v1/sessions", json={"title": HTML_TITLE})).json()
        sid = created["id"]
        assert created["title"] == HTML_TITLE
        posted = await http.post(f"/api/v1/sessions/{sid}/messages", json={"content": HTML_MESSAGE})
        # runs before the flood below, so the rate limit has not been touched yet
        assert posted.status_code == 202, posted.text
        body = await wait_for_async(
            lambda: active_session(http, sid), timeout=30, interval=0.1, what="the run to end"
        )
        assert body["title"] == HTML_TITLE
        first = body["messages"][0]["content"][0]
        assert first == {"type": "text", "text": HTML_MESSAGE}
        listed = (await http.get("/api/v1/sessions")).json()["items"]
        assert [s["title"] for s in listed if s["id"] == sid] == [HTML_TITLE]
        assert (await http.delete(f"/api/v1/sessions/{sid}")).status_code == 204


async def test_a_thousand_rapid_messages_get_429s_and_lose_nothing(
    flood_server: ServerProcess,
) -> None:
    async with httpx.AsyncClient(base_url=flood_server.base_url, timeout=60) as http:
        sid = (await http.post("/api/v1/sessions", json={"title": "flood"})).json()["id"]
        url = f"/api/v1/sessions/{sid}/messages"

        async def post(i: int) -> tuple[int, str, dict[str, Any]]:
            text = f"message {i}"
            response = await http.post(url, json={"content": text})
            return response.status_code, text, response.json()

        results: list[tuple[int, str, dict[str, Any]]] = []
        for batch in range(0, 1000, 50):
            results += await asyncio.gather(*(post(i) for i in range(batch, batch + 50)))

        statuses = {status for status, _, _ in results}
        assert statuses <= {202, 409, 429}, statuses
        limited = [body for status, _, body in results if status == 429]
        assert len(limited) >= 1000 - MESSAGES_PER_MINUTE
        assert all(body["error"]["code"] == "rate_limited" for body in limited)
        accepted = [text for status, text, _ in results if status == 202]
        assert accepted, "the first messages are accepted"

        settled = await wait_for_async(
            lambda: active_session(http, sid), timeout=60, interval=0.1, what="the runs to end"
        )
        messages: list[dict[str, Any]] = settled["messages"]
        prompts = [
            block["text"]
            for m in messages
            if m["role"] == "user"
            for block in m["content"]
            if block["type"] == "text"
        ]
        assert sorted(prompts) == sorted(accepted), "every accepted message is in the history"
        assert (await http.delete(f"/api/v1/sessions/{sid}")).status_code == 204
