"""LoopbackModelServer: the scripted Messages API under uvicorn on 127.0.0.1, ephemeral port.

async with LoopbackModelServer([say("Hi")]) as server:
    client = AsyncAnthropic(base_url=server.base_url, api_key="test-key")
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Generator, Iterable

import uvicorn
from starlette.types import ASGIApp

from computer_use.loopback.app import LoopbackState, create_app
from computer_use.loopback.script import RecordedRequest, Responder, ScriptItem


class _Uvicorn(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # Embedded in a test or another app: the host process owns its signal handlers.
        yield


class EmbeddedServer:
    """Any ASGI app under uvicorn in the current event loop; port 0 picks a free port.

    async with EmbeddedServer(app) as server:
        httpx.get(server.base_url + "/...")
    """

    def __init__(
        self, app: ASGIApp, *, host: str = "127.0.0.1", port: int = 0, start_timeout: float = 10.0
    ) -> None:
        self._app = app
        self.host = host
        self.port = port
        self._start_timeout = start_timeout
        self._server: _Uvicorn | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        config = uvicorn.Config(
            self._app, host=self.host, port=self.port, log_level="warning", lifespan="off"
        )
        self._server = _Uvicorn(config)
        self._task = asyncio.create_task(self._server.serve())
        async with asyncio.timeout(self._start_timeout):
            # uvicorn offers a flag, not an event, for "listening"
            while not self._server.started:
                if self._task.done():
                    await self._task  # surfaces the bind error
                    raise RuntimeError("the embedded server exited during start-up")
                await asyncio.sleep(0.01)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        # Open keep-alive or streaming connections would otherwise hold shutdown for a while.
        self._server.force_exit = True
        await self._task
        self._server = self._task = None

    async def __aenter__(self) -> EmbeddedServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()


class LoopbackModelServer:
    def __init__(
        self,
        script: Iterable[ScriptItem] | Responder = (),
        *,
        api_key: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        delay: float = 0.0,
        chunk_size: int = 16,
        start_timeout: float = 10.0,
    ) -> None:
        """`api_key`, when given, is the only key accepted (others get 401)."""
        self.state = LoopbackState(script, api_key=api_key, delay=delay, chunk_size=chunk_size)
        self.app = create_app(self.state)
        self._server = EmbeddedServer(self.app, host=host, port=port, start_timeout=start_timeout)

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received, in order (rejected ones included, with `rejection` set)."""
        return self.state.requests

    @property
    def rejections(self) -> list[str]:
        return [r.rejection for r in self.state.requests if r.rejection]

    @property
    def remaining(self) -> int:
        return len(self.state.turns)

    def add(self, *items: ScriptItem) -> None:
        """Append turns to a list script (e.g. before the user's next message)."""
        self.state.turns.extend(items)

    @property
    def base_url(self) -> str:
        return self._server.base_url

    async def __aenter__(self) -> LoopbackModelServer:
        await self._server.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._server.stop()
