"""Test doubles for the agent: hooks that record everything, a desktop that records calls."""

from __future__ import annotations

import asyncio
import copy
import functools
import io
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import anthropic
from PIL import Image

from computer_use.agent import history
from computer_use.agent.loop import RunResult, run_agent
from computer_use.agent.run_config import RunConfig
from computer_use.agent.tools import SessionTools
from computer_use.desktop_port import CommandResult, MouseButton, ScrollDirection
from computer_use.loopback import LoopbackModelServer

KEY = "sk-ant-test-0123456789abcdef"
DEADLINE = 20.0


async def run(
    server: LoopbackModelServer | None,
    tools: SessionTools,
    hooks: RecordingHooks,
    prompt: str = "Search the weather in Santiago, Chile",
    **config: Any,
) -> RunResult:
    """One run_agent call on the stored history so far, as the service would make it."""
    client = config.pop("client", None)
    if client is None:
        assert server is not None
        client = anthropic.AsyncAnthropic(base_url=server.base_url, api_key=KEY, max_retries=0)
    cancel = config.pop("cancel", None)
    meter = config.pop("meter", None)
    async with asyncio.timeout(DEADLINE):
        return await run_agent(
            client=client,
            tools=tools,
            hooks=hooks,
            config=RunConfig(**{"model": "claude-opus-4-6", **config}),
            history=await history.to_api(hooks.messages, hooks.load_image),
            prompt=prompt,
            cancel=cancel,
            meter=meter,
        )


EventCallback = Callable[[str, dict[str, Any]], Awaitable[None] | None]


class RecordingHooks:
    """RunHooks that keep events (JSON round-tripped, as a store would), images and turns."""

    def __init__(self, on_event: EventCallback | None = None) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.images: dict[str, bytes] = {}
        self.messages: list[dict[str, Any]] = []
        self.on_event = on_event

    async def emit(self, type: str, data: Mapping[str, object]) -> None:
        payload = json.loads(json.dumps(data))  # events must be JSON as they are
        self.events.append((type, payload))
        if self.on_event is not None:
            result = self.on_event(type, payload)
            if result is not None:
                await result

    async def save_image(self, png: bytes) -> str:
        image_id = f"img{len(self.images) + 1}"
        self.images[image_id] = png
        return image_id

    def image_url(self, image_id: str) -> str:
        return f"/api/v1/images/{image_id}"

    async def append_message(self, message: dict[str, Any]) -> None:
        self.messages.append(copy.deepcopy(message))

    async def load_image(self, image_id: str) -> bytes:
        return self.images[image_id]

    def types(self, *, deltas: bool = False) -> list[str]:
        return [t for t, _ in self.events if deltas or not t.endswith("_delta")]

    def of(self, type: str) -> list[dict[str, Any]]:
        return [d for t, d in self.events if t == type]


@functools.cache
def png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (30, 60, 90)).save(out, format="PNG")
    return out.getvalue()


class FakeDesktop:
    """Records every call; for checking how tool input maps onto the desktop."""

    def __init__(self, width: int = 1280, height: int = 800) -> None:
        self.width, self.height = width, height
        self.calls: list[tuple[Any, ...]] = []
        self.pointer = (0, 0)

    async def screenshot(self) -> bytes:
        self.calls.append(("screenshot",))
        return png(self.width, self.height)

    async def fingerprint(self) -> int:
        return 0  # its screen never changes

    async def zoom(self, x1: int, y1: int, x2: int, y2: int) -> bytes:
        self.calls.append(("zoom", x1, y1, x2, y2))
        return png(x2 - x1, y2 - y1)

    async def cursor_position(self) -> tuple[int, int]:
        return self.pointer

    async def move_mouse(self, x: int, y: int) -> None:
        self.calls.append(("move_mouse", x, y))

    async def click(
        self,
        x: int | None,
        y: int | None,
        *,
        button: MouseButton = "left",
        count: int = 1,
        modifiers: Sequence[str] = (),
    ) -> None:
        self.calls.append(("click", x, y, button, count, tuple(modifiers)))

    async def mouse_down(self, button: MouseButton = "left") -> None:
        self.calls.append(("mouse_down", button))

    async def mouse_up(self, button: MouseButton = "left") -> None:
        self.calls.append(("mouse_up", button))

    async def drag(self, x1: int, y1: int, x2: int, y2: int) -> None:
        self.calls.append(("drag", x1, y1, x2, y2))

    async def scroll(
        self,
        x: int | None,
        y: int | None,
        direction: ScrollDirection,
        amount: int,
        *,
        modifiers: Sequence[str] = (),
    ) -> None:
        self.calls.append(("scroll", x, y, direction, amount, tuple(modifiers)))

    async def key(self, combo: str) -> None:
        self.calls.append(("key", combo))

    async def hold_key(self, combo: str, seconds: float) -> None:
        self.calls.append(("hold_key", combo, seconds))

    async def type_text(self, text: str) -> None:
        self.calls.append(("type_text", text))

    async def wait_until_settled(self, *, timeout: float = 2.0) -> None:
        self.calls.append(("settle",))

    async def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float,
        env: Mapping[str, str] | None = None,
        input: bytes | None = None,
    ) -> CommandResult:
        raise NotImplementedError

    async def spawn(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None) -> Any:
        raise NotImplementedError
