"""Server-Sent Events framing for stored events, as an async generator of bytes.

    last_id = parse_last_event_id(request.headers.get("last-event-id"))
    events = bus.subscribe(session_id, last_id)
    return StreamingResponse(
        sse_stream(events), media_type="text/event-stream", headers=SSE_HEADERS
    )

Pure ASGI friendly: no middleware, nothing buffered; closing the response closes the iterator.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncGenerator, AsyncIterator

from computer_use.streaming.bus import StoredEvent

KEEPALIVE_SECONDS = 15.0
RETRY_MS = 3000
SSE_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # nginx and friends would otherwise hold events back
}


def format_event(event: StoredEvent) -> bytes:
    # json.dumps escapes newlines, so the payload is always a single `data:` line.
    data = json.dumps(event.data, ensure_ascii=False, separators=(",", ":"), default=str)
    return f"id: {event.id}\nevent: {event.type}\ndata: {data}\n\n".encode()


# Event ids are 32-bit integers in the database (INTEGER on PostgreSQL); a larger resume id
# would overflow the query's parameter.
MAX_EVENT_ID = 2**31 - 1


def parse_last_event_id(*candidates: str | None) -> int | None:
    """The first usable id among e.g. the Last-Event-ID header and a `last_event_id` query."""
    for raw in candidates:
        text = "" if raw is None else raw.strip()
        # isdigit() alone accepts "²" (int() refuses it) and non-ASCII digits
        if text.isascii() and text.isdigit():
            return min(int(text), MAX_EVENT_ID)
    return None


async def sse_stream(
    events: AsyncIterator[StoredEvent], *, keepalive: float = KEEPALIVE_SECONDS
) -> AsyncGenerator[bytes, None]:
    """Frames `events`; a comment line every `keepalive` seconds of silence keeps proxies and
    browsers from dropping an idle connection."""
    # The first bytes flush the response headers at once and set the client's reconnect delay.
    yield f"retry: {RETRY_MS}\n: connected\n\n".encode()
    pending: asyncio.Task[StoredEvent] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(anext(events))
            # Wait on the task rather than wait_for(anext(...)): a timeout must not cancel the
            # read, which would tear down the subscription mid-replay.
            done, _ = await asyncio.wait({pending}, timeout=keepalive)
            if not done:
                yield b": keep-alive\n\n"
                continue
            try:
                event = pending.result()
            except StopAsyncIteration:
                return
            finally:
                pending = None
            yield format_event(event)
    finally:
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                await pending
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()
