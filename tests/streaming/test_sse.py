"""SSE framing, keep-alives, and a real client reconnecting with Last-Event-ID."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from computer_use.loopback.server import EmbeddedServer
from computer_use.streaming.bus import InMemoryEventStore, InProcessEventBus, StoredEvent
from computer_use.streaming.sse import SSE_HEADERS, format_event, parse_last_event_id, sse_stream


def test_format_event_is_one_sse_message() -> None:
    event = StoredEvent(
        7, "text", {"text": "line one\nline two", "city": "Santiago"}, datetime.now(UTC)
    )
    assert format_event(event) == (
        b'id: 7\nevent: text\ndata: {"text":"line one\\nline two","city":"Santiago"}\n\n'
    )


def test_last_event_id_comes_from_the_first_usable_source() -> None:
    assert parse_last_event_id(None, "12") == 12
    assert parse_last_event_id("5", "12") == 5
    assert parse_last_event_id("junk", None) is None


async def test_keepalive_comments_flow_while_idle_and_close_ends_the_subscription() -> None:
    bus = InProcessEventBus(InMemoryEventStore())
    frames = sse_stream(bus.subscribe("s", None), keepalive=0.02)
    async with asyncio.timeout(5):
        assert (await anext(frames)).startswith(b"retry: ")
        assert await anext(frames) == b": keep-alive\n\n"
        await bus.publish("s", "status", {"status": "active"})
        frame = await anext(frames)
        while frame == b": keep-alive\n\n":
            frame = await anext(frames)
    assert frame.startswith(b"id: 1\nevent: status\n")
    await frames.aclose()
    assert bus._channels == {}


def parse(body: str) -> list[tuple[int, str, dict[str, object]]]:
    events = []
    for block in body.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "id" in fields:
            events.append((int(fields["id"]), fields["event"], json.loads(fields["data"])))
    return events


async def test_a_client_reconnecting_with_last_event_id_misses_nothing() -> None:
    bus = InProcessEventBus(InMemoryEventStore())

    async def stream(request: Request) -> StreamingResponse:
        last = parse_last_event_id(request.headers.get("last-event-id"))
        return StreamingResponse(
            sse_stream(bus.subscribe("s", last)),
            media_type="text/event-stream",
            headers=SSE_HEADERS,
        )

    app = Starlette(routes=[Route("/stream", stream)])
    for n in range(1, 4):
        await bus.publish("s", "text", {"n": n})
    async with EmbeddedServer(app) as server, httpx.AsyncClient(base_url=server.base_url) as http:

        async def read(last: str | None, until: int) -> list[tuple[int, str, dict[str, object]]]:
            headers = {"Last-Event-ID": last} if last else {}
            body = ""
            async with http.stream("GET", "/stream", headers=headers) as response:
                assert response.headers["content-type"].startswith("text/event-stream")
                async for chunk in response.aiter_text():
                    body += chunk
                    got = parse(body)
                    if got and got[-1][0] >= until:
                        return got
            return parse(body)

        async with asyncio.timeout(10):
            first = await read(None, 3)
            reader = asyncio.create_task(read("3", 5))
            await bus.publish("s", "text", {"n": 4})
            await bus.publish("s", "message_complete", {"stop_reason": "end_turn"})
            second = await reader
    assert [e[0] for e in first] == [1, 2, 3]
    assert second == [(4, "text", {"n": 4}), (5, "message_complete", {"stop_reason": "end_turn"})]
