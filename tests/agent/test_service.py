"""Agent runs through the real server: REST + SSE, history, images, keys, busy and cancel.

The model is the loopback Messages-API server (real SDK, real HTTP); the desktop is real.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from computer_use.loopback import LoopbackModelServer
from computer_use.loopback.script import bash, member, say
from tests.helpers import ServerProcess, running_server

KEY = "sk-ant-test-key-0123456789"


@pytest.fixture(scope="module")
async def model() -> AsyncIterator[LoopbackModelServer]:
    async with LoopbackModelServer([], chunk_size=64) as server:
        yield server


@pytest.fixture(scope="module")
def agent_server(
    model: LoopbackModelServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    with running_server(
        tmp_path_factory.mktemp("agent"),
        ANTHROPIC_BASE_URL=model.base_url,
        MAX_DISPLAYS="3",
        DESKTOP_DISPLAY_BASE="820",
        DESKTOP_USER_PREFIX="cu-ag",
    ) as proc:
        yield proc


async def read_events(
    http: httpx.AsyncClient,
    session_id: str,
    *,
    until: str = "message_complete",
    last_event_id: int | None = None,
    timeout: float = 60.0,
) -> list[tuple[int, str, dict[str, Any]]]:
    """SSE events of the session (after `last_event_id`) up to and including `until`."""
    headers = {} if last_event_id is None else {"Last-Event-ID": str(last_event_id)}
    events: list[tuple[int, str, dict[str, Any]]] = []
    async with asyncio.timeout(timeout):
        async with http.stream(
            "GET", f"/api/v1/sessions/{session_id}/stream", headers=headers
        ) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            frame: dict[str, str] = {}
            async for line in response.aiter_lines():
                if line:
                    field, _, value = line.partition(": ")
                    frame[field] = value
                    continue
                if "id" in frame:
                    events.append((int(frame["id"]), frame["event"], json.loads(frame["data"])))
                    if frame["event"] == until:
                        return events
                frame = {}
    raise AssertionError("stream ended early")


@pytest.fixture
async def sid(agent_server: ServerProcess) -> AsyncIterator[str]:
    """A fresh session, deleted after the test (the server has only 3 desktops)."""
    async with httpx.AsyncClient(base_url=agent_server.base_url, timeout=30) as http:
        response = await http.post("/api/v1/sessions", json={"title": "agent test"})
        assert response.status_code == 201, response.text
        session_id: str = response.json()["id"]
        yield session_id
        assert (await http.delete(f"/api/v1/sessions/{session_id}")).status_code == 204


def core(events: list[tuple[int, str, dict[str, Any]]]) -> list[str]:
    return [t for _, t, _ in events if not t.endswith("_delta")]


async def test_message_without_any_key_is_400_saying_how(
    agent_server: ServerProcess, sid: str
) -> None:
    async with httpx.AsyncClient(base_url=agent_server.base_url) as http:
        response = await http.post(f"/api/v1/sessions/{sid}/messages", json={"content": "hi"})
    assert response.status_code == 400
    assert "X-Anthropic-API-Key" in response.json()["error"]["message"]


async def test_run_streams_events_in_order_and_keeps_history(
    agent_server: ServerProcess, model: LoopbackModelServer, sid: str
) -> None:
    model.add(
        say("Let me look.", member("screenshot"), thinking="Check the screen first."),
        say("It is sunny in Santiago."),
    )
    async with httpx.AsyncClient(base_url=agent_server.base_url, timeout=30) as http:
        posted = await http.post(
            f"/api/v1/sessions/{sid}/messages",
            json={"content": "Search the weather in Santiago, Chile"},
            headers={"X-Anthropic-API-Key": KEY},
        )
        assert posted.status_code == 202, posted.text
        events = await read_events(http, sid)

        ids = [i for i, _, _ in events]
        assert ids == sorted(set(ids)), "event ids must increase with no duplicates"
        assert core(events) == [
            "status",  # active: the desktop is up
            "status",  # processing
            "thinking",
            "text",
            "tool_use",
            "usage",
            "tool_result",
            "text",
            "usage",
            "message_complete",
        ]
        assert [d["status"] for _, t, d in events if t == "status"] == ["active", "processing"]
        by_type = {t: d for _, t, d in events}
        assert by_type["tool_use"]["description"] == "take a screenshot"
        assert by_type["message_complete"]["stop_reason"] == "end_turn"
        assert by_type["text"]["text"] == "It is sunny in Santiago."
        image_url = by_type["tool_result"]["image_url"]
        image = await http.get(image_url)
        assert image.status_code == 200 and image.content.startswith(b"\x89PNG")

        # the model got the key and the prompt exactly as typed
        assert model.requests[-1].api_key == KEY
        first_user = model.requests[-2].messages[0]["content"]
        assert any(b.get("text") == "Search the weather in Santiago, Chile" for b in first_user)

        async def active() -> dict[str, Any]:
            while True:
                body: dict[str, Any] = (await http.get(f"/api/v1/sessions/{sid}")).json()
                if body["status"] == "active":
                    return body
                await asyncio.sleep(0.05)

        async with asyncio.timeout(10):
            detail = await active()
        final_text_id = max(i for i, t, _ in events if t == "text")
        complete_id = events[-1][0]
        assert final_text_id <= detail["last_event_id"] < complete_id
        roles = [m["role"] for m in detail["messages"]]
        assert roles == ["user", "assistant", "user", "assistant"]
        result_block = detail["messages"][2]["content"][0]
        assert result_block["type"] == "tool_result"
        image_block = next(b for b in result_block["content"] if b["type"] == "image")
        assert image_block["source"]["type"] == "url"
        assert detail["messages"][1]["usage"]["output_tokens"] > 0
        assert KEY not in json.dumps(detail) and KEY not in json.dumps(events)

    database = Path(agent_server.env["DATA_DIR"]) / "computer_use.db"
    for path in database.parent.glob("computer_use.db*"):
        assert KEY.encode() not in path.read_bytes(), f"the key was stored in {path.name}"
    assert KEY not in agent_server.log_path.read_text()


async def test_reconnecting_with_last_event_id_misses_nothing_and_repeats_nothing(
    agent_server: ServerProcess, model: LoopbackModelServer, sid: str
) -> None:
    model.add(say("One.", member("screenshot")), say("Two."))
    async with httpx.AsyncClient(base_url=agent_server.base_url, timeout=30) as http:
        await http.post(
            f"/api/v1/sessions/{sid}/messages",
            json={"content": "count"},
            headers={"X-Anthropic-API-Key": KEY},
        )
        full = await read_events(http, sid)
        cut = full[len(full) // 2][0]
        resumed = await read_events(http, sid, last_event_id=cut)
        assert [e[0] for e in resumed] == [e[0] for e in full if e[0] > cut]
        assert resumed == [e for e in full if e[0] > cut]
        for query in ("after", "last_event_id"):  # the query forms, for clients without headers
            async with http.stream(
                "GET", f"/api/v1/sessions/{sid}/stream", params={query: full[-2][0]}
            ) as response:
                lines = response.aiter_lines()
                ids = []
                async with asyncio.timeout(10):
                    async for line in lines:
                        if line.startswith("id: "):
                            ids.append(int(line[4:]))
                            break
                assert ids == [full[-1][0]]


async def test_busy_session_refuses_a_second_message_and_cancel_leaves_valid_history(
    agent_server: ServerProcess, model: LoopbackModelServer, sid: str
) -> None:
    model.add(say("Working.", bash("sleep 60")))
    async with httpx.AsyncClient(base_url=agent_server.base_url, timeout=30) as http:
        headers = {"X-Anthropic-API-Key": KEY}
        url = f"/api/v1/sessions/{sid}/messages"
        assert (await http.post(url, json={"content": "wait"}, headers=headers)).status_code == 202

        seen = await read_events(http, sid, until="tool_use")
        busy = await http.post(url, json={"content": "again"}, headers=headers)
        assert busy.status_code == 409 and "cancel" in busy.json()["error"]["message"]

        cancelled = await http.post(f"/api/v1/sessions/{sid}/cancel")
        assert cancelled.json()["cancelled"] is True
        rest = await read_events(http, sid, last_event_id=seen[-1][0], timeout=15)
        complete = rest[-1][2]
        assert complete["stop_reason"] == "cancelled"
        result = next(d for _, t, d in rest if t == "tool_result")
        assert result["is_error"] is True, rest

        # the next message's request carries a complete, valid history
        model.add(say("Back again."))
        rejected_before = len(model.rejections)
        # the session is active by the time message_complete is out: no waiting, no 409
        status = await http.post(url, json={"content": "continue"}, headers=headers)
        assert status.status_code == 202, status.text
        done = await read_events(http, sid, last_event_id=rest[-1][0])
        assert done[-1][2]["stop_reason"] == "end_turn"
        assert len(model.rejections) == rejected_before, model.rejections


def _firefox_pids_of_session(server: ServerProcess, session_id: str) -> set[int]:
    """firefox-esr processes of the session's user."""
    from tests import slots
    from tests.helpers import pids_named
    from tests.reliability.conftest import uid_of

    record = json.loads(
        (Path(server.env["DATA_DIR"]) / "sessions" / session_id / "desktop.json").read_text()
    )
    return pids_named(uid_of(f"{slots.prefix('cu-ag')}{record['slot']:02d}"), "firefox-esr")


async def test_the_first_message_starts_the_browser_and_the_first_screenshot_shows_it(
    agent_server: ServerProcess, model: LoopbackModelServer, sid: str
) -> None:
    import base64
    import io

    from PIL import Image

    async with httpx.AsyncClient(base_url=agent_server.base_url, timeout=30) as http:
        assert (await http.get(f"/api/v1/sessions/{sid}")).json()["browser"] == "down"
        assert not _firefox_pids_of_session(agent_server, sid)  # a new session: no browser

        model.add(say("Let me look.", member("screenshot")), say("Firefox is open."))
        posted = await http.post(
            f"/api/v1/sessions/{sid}/messages",
            json={"content": "What is on the screen?"},
            headers={"X-Anthropic-API-Key": KEY},
        )
        assert posted.status_code == 202, posted.text
        await read_events(http, sid)
        after = (await http.get(f"/api/v1/sessions/{sid}")).json()

    [result] = model.requests[-1].last_tool_results()
    [image] = [b for b in result["content"] if b.get("type") == "image"]
    shot = Image.open(io.BytesIO(base64.b64decode(image["source"]["data"]))).convert("RGB")
    # Firefox's page area (light) covers the middle; the bare desktop there is dark blue-grey.
    pixel = shot.getpixel((shot.width // 2, shot.height // 2 + 30))
    assert isinstance(pixel, tuple) and min(pixel) >= 240, pixel
    assert after["browser"] == "up"
    assert _firefox_pids_of_session(agent_server, sid)


async def test_opening_the_viewer_starts_the_browser_before_any_message(
    agent_server: ServerProcess, sid: str
) -> None:
    from urllib.parse import parse_qs, urlsplit

    from websockets.asyncio.client import connect

    from tests.helpers import wait_for_async

    async with httpx.AsyncClient(base_url=agent_server.base_url, timeout=30) as http:
        session = (await http.get(f"/api/v1/sessions/{sid}")).json()
        assert session["browser"] == "down"
        assert not _firefox_pids_of_session(agent_server, sid)
        [token] = parse_qs(urlsplit(session["vnc_url"]).query)["token"]
        ws_base = agent_server.base_url.replace("http://", "ws://")
        async with connect(f"{ws_base}/api/v1/sessions/{sid}/vnc/websockify?token={token}"):

            async def browser_up() -> bool:
                state: str = (await http.get(f"/api/v1/sessions/{sid}")).json()["browser"]
                return state == "up"

            await wait_for_async(browser_up, timeout=90, interval=0.5, what="the browser up")
    assert _firefox_pids_of_session(agent_server, sid)
