"""Server answers the console can be fed before the agent is wired: SSE bodies, screenshots.

`FakeStream` answers the page's EventSource requests from a list of planned answers, one per
connection, and records how each connection asked to resume (Last-Event-ID header or
`?after=` query), so tests can check reconnection without an agent behind it.
"""

from __future__ import annotations

import http.server
import io
import json
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlparse

from PIL import Image, ImageDraw
from playwright.async_api import Page, Request, Route

Event = tuple[int, str, dict[str, Any]]


def sse_body(events: list[Event], *, retry_ms: int) -> str:
    frames = [f"retry: {retry_ms}\n: connected\n\n"]
    for event_id, event_type, data in events:
        frames.append(f"id: {event_id}\nevent: {event_type}\ndata: {json.dumps(data)}\n\n")
    return "".join(frames)


def screenshot_png(label: str = "desktop") -> bytes:
    """A small fake desktop: a panel, a browser window, a search box."""
    image = Image.new("RGB", (1024, 768), (48, 84, 128))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 740, 1024, 768), fill=(30, 30, 36))
    draw.rectangle((80, 60, 944, 700), fill=(250, 250, 250), outline=(200, 200, 200))
    draw.rectangle((80, 60, 944, 96), fill=(225, 228, 235))
    draw.rounded_rectangle((300, 300, 724, 340), radius=18, outline=(120, 120, 120), width=2)
    draw.text((320, 312), label, fill=(60, 60, 60))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


@dataclass
class Answer:
    """One planned answer to one stream connection.

    `events` are sent at once; with `hold` the stream then stays open until it is set (and
    `after` follows), otherwise it ends, and the browser reconnects after `retry_ms`."""

    events: list[Event] = field(default_factory=list)
    status: int = 200
    retry_ms: int = 200
    hold: threading.Event | None = None
    after: list[Event] = field(default_factory=list)


@dataclass
class Connection:
    header_last_event_id: str | None
    query_after: str | None


class FakeStream:
    """A real HTTP server for the page's EventSource (Playwright's `route.fulfill` cannot
    show the Last-Event-ID header a reconnecting browser sends): the page's stream requests
    are re-routed to it, everything else goes to the real server."""

    def __init__(self, *answers: Answer) -> None:
        self.answers = list(answers)
        self.connections: list[Connection] = []
        self._lock = threading.Lock()
        self._closing = threading.Event()
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                fake._serve(self)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._closing.set()  # releases held streams
        self._server.shutdown()
        self._server.server_close()

    async def install(self, page: Page) -> None:
        async def reroute(route: Route, request: Request) -> None:
            url = urlparse(request.url)
            target = f"{self.base_url}{url.path}" + (f"?{url.query}" if url.query else "")
            await route.continue_(url=target)

        await page.route("**/api/v1/sessions/*/stream*", reroute)

    def _serve(self, handler: http.server.BaseHTTPRequestHandler) -> None:
        query = parse_qs(urlparse(handler.path).query)
        with self._lock:
            self.connections.append(
                Connection(
                    handler.headers.get("Last-Event-ID"),
                    query.get("after", [None])[0],
                )
            )
            # Past the plan: an open, quiet stream.
            answer = self.answers.pop(0) if self.answers else Answer(hold=self._closing)
        if answer.status != 200:
            body = json.dumps({"error": {"code": "unavailable", "message": "try later"}})
            handler.send_response(answer.status)
            handler.send_header("Content-Type", "application/json")
            handler.end_headers()
            handler.wfile.write(body.encode())
            return
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream")
        handler.send_header("Cache-Control", "no-cache")
        handler.send_header("Access-Control-Allow-Origin", "*")  # for pages served elsewhere
        handler.end_headers()
        try:
            handler.wfile.write(sse_body(answer.events, retry_ms=answer.retry_ms).encode())
            handler.wfile.flush()
            if answer.hold is not None:
                while not answer.hold.wait(0.05) and not self._closing.is_set():
                    pass
                if answer.after and not self._closing.is_set():
                    handler.wfile.write(sse_body(answer.after, retry_ms=answer.retry_ms).encode())
                    handler.wfile.flush()
                    # Stay open like a real stream; the test ends it.
                    self._closing.wait()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the page went away


async def serve_screenshots(page: Page) -> list[str]:
    """Answers image URLs with a fake screenshot; returns the list of URLs requested."""
    requested: list[str] = []
    png = screenshot_png("weather Santiago Chile")

    async def handle(route: Route, request: Request) -> None:
        requested.append(request.url)
        await route.fulfill(status=200, content_type="image/png", body=png)

    await page.route("**/api/v1/sessions/*/images/*", handle)
    return requested


def weather_run(session_id: str) -> list[Event]:
    """The events of the mission's demo run, as the agent emits them."""
    image = f"/api/v1/sessions/{session_id}/images/"
    usage = {
        "input_tokens": 5210,
        "output_tokens": 312,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 4100,
    }
    answer = (
        "The weather in **Santiago, Chile** right now: 18 °C and sunny.\n\n"
        "| Day | High | Low |\n|---|---:|---:|\n"
        "| Today | 24 °C | 9 °C |\n| Tomorrow | 26 °C | 10 °C |"
        "\n\nSource: [weather.com](https://weather.com/weather/today/l/Santiago)"
    )
    return [
        (1, "status", {"status": "processing"}),
        (2, "thinking_delta", {"index": 0, "thinking": "The user wants the weather "}),
        (3, "thinking_delta", {"index": 0, "thinking": "in Santiago. Screenshot first."}),
        (4, "thinking", {"thinking": "The user wants the weather in Santiago. Screenshot first."}),
        (5, "text_delta", {"index": 1, "text": "I'll look up the weather in "}),
        (6, "text_delta", {"index": 1, "text": "Santiago, Chile."}),
        (7, "text", {"text": "I'll look up the weather in Santiago, Chile."}),
        (
            8,
            "tool_use",
            {
                "id": "toolu_1",
                "name": "computer",
                "input": {"action": "screenshot"},
                "description": "take a screenshot",
            },
        ),
        (
            9,
            "tool_result",
            {
                "tool_use_id": "toolu_1",
                "is_error": False,
                "output": "",
                "image_id": "img1",
                "image_url": image + "img1",
            },
        ),
        (
            10,
            "tool_use",
            {
                "id": "toolu_2",
                "name": "computer",
                "input": {"action": "left_click", "coordinate": [512, 320]},
                "description": "click at (512, 320)",
            },
        ),
        (
            11,
            "tool_result",
            {
                "tool_use_id": "toolu_2",
                "is_error": False,
                "output": "",
                "image_id": "img2",
                "image_url": image + "img2",
            },
        ),
        (
            12,
            "tool_use",
            {
                "id": "toolu_3",
                "name": "computer",
                "input": {"action": "type", "text": "weather Santiago Chile\n"},
                "description": "type 'weather Santiago Chile\\n'",
            },
        ),
        (
            13,
            "tool_result",
            {
                "tool_use_id": "toolu_3",
                "is_error": False,
                "output": "",
                "image_id": "img3",
                "image_url": image + "img3",
            },
        ),
        (14, "text", {"text": answer}),
        (
            15,
            "message_complete",
            {"stop_reason": "end_turn", "steps": 4, "usage": usage, "detail": None},
        ),
        (16, "status", {"status": "active"}),
    ]
