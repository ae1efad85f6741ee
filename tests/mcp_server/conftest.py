"""The real server in a subprocess, driven by the official MCP Python client over HTTP, its
agent talking to the loopback Messages API (scripted per task, in this event loop)."""

from __future__ import annotations

import asyncio
import base64
import io
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.extension import ClientExtension
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult, ImageContent, TextContent
from PIL import Image

from computer_use.loopback import LoopbackModelServer, RecordedRequest, Turn, say
from tests.conftest import server_env
from tests.helpers import ServerProcess

SERVER_KEY = "sk-ant-mcp-server-key"
# Displays, users and capacity of their own: never collides with other modules' desktops.
DESKTOP_ENV = {"DESKTOP_DISPLAY_BASE": "700", "DESKTOP_USER_PREFIX": "cu-mc", "MAX_DISPLAYS": "4"}


@dataclass
class Gate:
    """A scripted turn that holds the model request until `release` is set."""

    then: Turn
    entered: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)


def current_prompt(request: RecordedRequest) -> str:
    """The task a request works on: the last text the user wrote (a cancelled turn's
    tool_results may share that user message)."""
    for message in reversed(request.messages):
        content = message.get("content")
        if message.get("role") != "user":
            continue
        if isinstance(content, str):
            return content
        texts = [b.get("text", "") for b in content if b.get("type") == "text"]
        if texts:
            return str(texts[-1])
    return ""


@dataclass
class Slow:
    """A scripted turn the model takes `seconds` to answer (a long model call)."""

    seconds: float
    then: Turn


class ScriptedModel:
    """The loopback model's responder: each task (prompt text) has its own list of turns, so
    runs of several sessions at once each get their own script."""

    def __init__(self) -> None:
        self.scripts: dict[str, deque[Turn | Gate | Slow]] = {}
        self.gates: list[Gate] = []

    def script(self, prompt: str, *turns: Turn | Gate | Slow) -> str:
        self.scripts[prompt] = deque(turns)
        self.gates += [t for t in turns if isinstance(t, Gate)]
        return prompt

    async def __call__(self, request: RecordedRequest) -> Turn:
        turns = self.scripts.get(current_prompt(request))
        if not turns:
            return say(f"(no script left for {current_prompt(request)!r})")
        turn = turns.popleft()
        if isinstance(turn, Gate):
            turn.entered.set()
            await turn.release.wait()
            return turn.then
        if isinstance(turn, Slow):
            await asyncio.sleep(turn.seconds)  # the model's own slowness, not a synchronisation
            return turn.then
        return turn

    def release_all(self) -> None:
        for gate in self.gates:
            gate.release.set()


@dataclass
class Model:
    server: LoopbackModelServer
    scripted: ScriptedModel

    def requests_for(self, prompt: str) -> list[RecordedRequest]:
        return [r for r in self.server.requests if current_prompt(r) == prompt]


@pytest.fixture(scope="module")
async def model() -> AsyncIterator[Model]:
    scripted = ScriptedModel()
    async with LoopbackModelServer(scripted) as server:
        yield Model(server, scripted)
        scripted.release_all()


async def start_server(data_dir: Path, **env: str) -> ServerProcess:
    # In a thread: the loopback model shares this event loop and must keep answering.
    proc = ServerProcess(server_env(data_dir, **env), data_dir / "server.log")
    try:
        return await asyncio.to_thread(proc.start)
    except BaseException:
        await asyncio.to_thread(proc.stop)  # one that never got healthy is not left running
        raise


@asynccontextmanager
async def running_server(data_dir: Path, **env: str) -> AsyncIterator[ServerProcess]:
    proc = await start_server(data_dir, **env)
    try:
        yield proc
    finally:
        await asyncio.to_thread(proc.stop)


@pytest.fixture(scope="module")
async def app_server(
    model: Model, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ServerProcess]:
    """No server key: callers bring theirs in the X-Anthropic-API-Key header."""
    data_dir = tmp_path_factory.mktemp("mcp")
    async with running_server(
        data_dir, ANTHROPIC_BASE_URL=model.server.base_url, **DESKTOP_ENV
    ) as proc:
        yield proc


@asynccontextmanager
async def mcp_client(
    server: ServerProcess,
    *,
    key: str | None = None,
    mode: str = "auto",
    extensions: Sequence[ClientExtension] | None = None,
    token: str | None = None,
    transport: httpx2.AsyncBaseTransport | None = None,
) -> AsyncIterator[Client]:
    """The official client; `mode="legacy"` speaks the 2025 handshake revisions (as Cursor
    and mcp-remote do), "auto" negotiates the newest. `transport` stands between the client
    and the server (e.g. a load balancer over replicas)."""
    headers = {"X-Anthropic-API-Key": key} if key else {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    timeout = httpx2.Timeout(30.0, read=120.0)
    async with (
        httpx2.AsyncClient(headers=headers, timeout=timeout, transport=transport) as http,
        Client(
            streamable_http_client(f"{server.base_url}/mcp", http_client=http),
            mode=mode,
            extensions=extensions,
        ) as client,
    ):
        yield client


@dataclass
class ProgressLog:
    values: list[float] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    times: list[float] = field(default_factory=list)  # time.monotonic() of each
    seen: asyncio.Event = field(default_factory=asyncio.Event)

    async def __call__(self, progress: float, total: float | None, message: str | None) -> None:
        self.values.append(progress)
        self.messages.append(message or "")
        self.times.append(time.monotonic())
        self.seen.set()


async def eventually(
    condition: Callable[[], Awaitable[bool]], *, timeout: float = 15.0, what: str = ""
) -> None:
    """Polls an async condition until it holds, failing after `timeout` seconds."""
    with anyio.move_on_after(timeout):
        while True:
            if await condition():
                return
            await anyio.sleep(0.05)
    raise TimeoutError(f"timed out after {timeout} s waiting for {what or condition}")


def text_of(result: CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, TextContent))


def png_size(content: Any) -> tuple[int, int]:
    assert isinstance(content, ImageContent), content
    assert content.mime_type == "image/png"
    data = base64.b64decode(content.data)
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    with Image.open(io.BytesIO(data)) as image:
        image.verify()
        return image.size


@pytest.fixture
def created(
    app_server: ServerProcess,
) -> Iterator[Callable[[str], None]]:
    """Remembers session ids to destroy after the test (desktops are few: MAX_DISPLAYS=4)."""
    ids: list[str] = []
    yield ids.append
    with app_server.client() as http:
        for session_id in ids:
            http.delete(f"/api/v1/sessions/{session_id}")
