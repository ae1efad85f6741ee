"""Fault-injection helpers: a scripted model, servers on disjoint desktop ranges, SSE readers
that survive a dropped connection, and views of what a session left in /proc and mountinfo.

Every server here uses displays 1000-1100 and users `cu-r<letter>NN`; other test modules use
other ranges, because a server's start-up reclaims every display and user of its range.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import pwd
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from computer_use.desktops.process import live_pids_of_uid
from computer_use.desktops.slots import abstract_name
from computer_use.desktops.sockets import holders
from computer_use.loopback import LoopbackModelServer
from tests import slots
from tests.conftest import server_env
from tests.helpers import ServerProcess, wait_for_async

T = TypeVar("T")
KEY = "sk-ant-reliability-0123456789"
AUTH = {"X-Anthropic-API-Key": KEY}

Event = tuple[int, str, dict[str, Any]]


@pytest.fixture(scope="module")
async def model() -> AsyncIterator[LoopbackModelServer]:
    async with LoopbackModelServer([], chunk_size=256) as server:
        yield server


def make_server(
    data_dir: Path, *, display_base: int, letter: str, max_displays: int = 2, **extra: str
) -> ServerProcess:
    assert display_base >= 1000 and display_base + max_displays <= 1100
    env = server_env(
        data_dir,
        MAX_DISPLAYS=str(max_displays),
        DESKTOP_DISPLAY_BASE=str(display_base),
        DESKTOP_USER_PREFIX=f"cu-r{letter}",
        **extra,
    )
    return ServerProcess(env, data_dir / "server.log")


async def start(server: ServerProcess) -> ServerProcess:
    """Starts the server; one that never got healthy is stopped, not left running."""
    try:
        # ServerProcess waits by polling with time.sleep: off the loop the model server runs in.
        return await asyncio.to_thread(server.start)
    except BaseException:
        await asyncio.to_thread(server.stop)
        raise


@dataclass
class SseReader:
    """Reads one session's SSE stream in the background, recording every event frame."""

    http: httpx.AsyncClient
    session_id: str
    last_event_id: int | None = None
    events: list[Event] = field(default_factory=list)
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    status: int | None = None
    task: asyncio.Task[None] | None = None

    def start(self) -> SseReader:
        self.task = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        headers = {} if self.last_event_id is None else {"Last-Event-ID": str(self.last_event_id)}
        url = f"/api/v1/sessions/{self.session_id}/stream"
        try:
            async with self.http.stream("GET", url, headers=headers) as response:
                self.status = response.status_code
                frame: dict[str, str] = {}
                async for line in response.aiter_lines():
                    if line:
                        name, _, value = line.partition(": ")
                        frame[name] = value
                        continue
                    if "id" in frame:
                        item = (int(frame["id"]), frame["event"], json.loads(frame["data"]))
                        self.events.append(item)
                    frame = {}
        except (httpx.HTTPError, OSError):
            pass  # the server went away: that is what some tests do to it
        finally:
            self.ended.set()

    def types(self) -> list[str]:
        return [t for _, t, _ in self.events if not t.endswith("_delta")]

    async def until(
        self, predicate: Callable[[Event], bool], timeout: float = 30.0, *, start: int = 0
    ) -> Event:
        """The first event (from the `start`-th received on) matching `predicate`."""

        async def seen() -> Event | None:
            return next((e for e in self.events[start:] if predicate(e)), None)

        return await wait_for_async(seen, timeout=timeout, what=f"an event on {self.session_id}")

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)


def is_type(name: str) -> Callable[[Event], bool]:
    return lambda event: event[1] == name


def uid_of(name: str) -> int:
    return pwd.getpwnam(name).pw_uid


def mounts_under(path: Path) -> list[str]:
    """Mount points under `path`, one per mount (a mount stacked twice shows twice)."""
    root = str(path.resolve())
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].encode().decode("unicode_escape")
        if point == root or point.startswith(root + "/"):
            points.append(point)
    return sorted(points)


def x_server_pids(display: int) -> set[int]:
    """Processes listening on the display's abstract X socket (its lock file and socket file
    live in the session's private /tmp)."""
    return set(holders(abstract_name(display)))


async def session_detail(http: httpx.AsyncClient, session_id: str) -> dict[str, Any]:
    response = await http.get(f"/api/v1/sessions/{session_id}")
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


async def wait_status(
    http: httpx.AsyncClient, session_id: str, status: str, timeout: float = 20.0
) -> dict[str, Any]:
    async def reached() -> dict[str, Any] | None:
        body = await session_detail(http, session_id)
        return body if body["status"] == status else None

    return await wait_for_async(reached, timeout=timeout, what=f"status {status} of {session_id}")


async def post_message(
    http: httpx.AsyncClient, session_id: str, content: str, timeout: float = 15.0
) -> None:
    """Posts a message, retrying the 409 of the moment between message_complete and active."""

    async def accepted() -> bool:
        response = await http.post(
            f"/api/v1/sessions/{session_id}/messages", json={"content": content}, headers=AUTH
        )
        if response.status_code == 409:
            return False
        assert response.status_code == 202, response.text
        return True

    await wait_for_async(accepted, timeout=timeout, interval=0.1, what="the message accepted")


def assert_every_tool_use_answered(messages: list[dict[str, Any]]) -> None:
    for index, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        ids = {b["id"] for b in message["content"] if b.get("type") == "tool_use"}
        if not ids:
            continue
        assert index + 1 < len(messages), f"tool_use {ids} of the last message is unanswered"
        following = messages[index + 1]
        answered = {
            b.get("tool_use_id") for b in following["content"] if b.get("type") == "tool_result"
        }
        assert following["role"] == "user" and ids <= answered, (ids, following)


@contextlib.asynccontextmanager
async def vnc_viewer(http: httpx.AsyncClient, session_id: str) -> AsyncIterator[ClientConnection]:
    """A person watching the session through the server's VNC websocket, as the console's
    viewer does: x11vnc runs while one is connected (desktops/viewing.py). Yields once x11vnc
    has greeted the viewer."""
    detail = (await http.get(f"/api/v1/sessions/{session_id}")).json()
    token = parse_qs(urlparse(detail["vnc_url"]).query)["token"][0]
    base = str(http.base_url).rstrip("/").replace("http", "ws", 1)
    url = f"{base}/api/v1/sessions/{session_id}/vnc/websockify?token={token}"
    async with connect(url, subprotocols=[Subprotocol("binary")]) as viewer:
        greeting = await asyncio.wait_for(viewer.recv(), 30)
        assert isinstance(greeting, bytes) and greeting.startswith(b"RFB 003.008"), greeting
        yield viewer


@dataclass(frozen=True)
class Footprint:
    """What one session's desktop holds on the host, from outside the server."""

    user: str
    display: int
    vnc_socket: Path  # x11vnc's, in the session's runtime dir (root server: under /run)
    pids: frozenset[int]
    mounts: tuple[str, ...]


def footprint(server: ServerProcess, session_id: str, letter: str) -> Footprint:
    data_dir = Path(server.env["DATA_DIR"])
    record = json.loads((data_dir / "sessions" / session_id / "desktop.json").read_text())
    user = f"{slots.prefix('cu-r' + letter)}{record['slot']:02d}"
    display = int(str(record["display"]).lstrip(":"))
    runtime = Path("/run/computer-use") / f"displays-{display - int(record['slot'])}"
    return Footprint(
        user=user,
        display=display,
        vnc_socket=runtime / str(display) / "vnc.sock",
        pids=frozenset(live_pids_of_uid(uid_of(user))),
        mounts=tuple(mounts_under(data_dir)),
    )
