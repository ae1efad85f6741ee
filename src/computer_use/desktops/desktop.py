"""One session's running desktop: what the agent drives (it satisfies desktop_port.DesktopPort)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from pathlib import Path
from subprocess import PIPE
from typing import TYPE_CHECKING

from computer_use.desktop_port import CommandResult, DesktopPort, MouseButton, ScrollDirection
from computer_use.desktops.browser import BrowserState, SessionBrowser
from computer_use.desktops.capture import ScreenCapture
from computer_use.desktops.display import TRAY_HEIGHT, DisplaySpec
from computer_use.desktops.input import InputInjector
from computer_use.desktops.launcher import SessionSandbox
from computer_use.desktops.slots import Slot
from computer_use.desktops.supervisor import Supervisor
from computer_use.desktops.users import SessionUser
from computer_use.desktops.viewing import SessionVnc


class Desktop:
    def __init__(
        self,
        *,
        session_id: str,
        slot: Slot,
        spec: DisplaySpec,
        user: SessionUser,
        sandbox: SessionSandbox,
        capture: ScreenCapture,
        injector: InputInjector,
        supervisor: Supervisor,
        browser: SessionBrowser,
        vnc: SessionVnc,
    ) -> None:
        self.session_id = session_id
        self.slot_info = slot
        self.spec = spec
        self.user = user
        self.sandbox = sandbox
        self._capture = capture
        self._input = injector
        self.supervisor = supervisor
        self.browser = browser
        self.vnc = vnc

    # -- identity ----------------------------------------------------------------------------

    @property
    def slot(self) -> int:
        return self.slot_info.index

    @property
    def display(self) -> str:
        return self.slot_info.display

    @property
    def vnc_socket(self) -> Path:
        """x11vnc's unix socket (in the session's 0700 runtime dir): the proxy's way in, there
        while a viewer holds `open_vnc()` (viewing.py)."""
        return self.spec.vnc_socket

    async def open_vnc(self) -> Path:
        """A viewer comes: x11vnc's socket once it listens (started if need be). Each call is
        ended by one `close_vnc()`."""
        return await self.vnc.open()

    def close_vnc(self) -> None:
        self.vnc.close()

    @property
    def width(self) -> int:
        return self.spec.width

    @property
    def height(self) -> int:
        return self.spec.height

    @property
    def failed(self) -> bool:
        return self.supervisor.failed

    def component_status(self) -> dict[str, str]:
        return self.supervisor.status()

    def rename(self, session_id: str) -> None:
        """The desktop now belongs to `session_id` (a warm-pool desktop being claimed)."""
        self.session_id = session_id
        self.supervisor.session_id = session_id
        self.sandbox.session_id = session_id
        self.browser.session_id = session_id
        self.vnc.session_id = session_id

    @property
    def browser_state(self) -> BrowserState:
        return self.browser.state

    def request_browser(self) -> bool:
        """Start Firefox in the background if it is not up (see browser.py)."""
        return self.browser.request()

    # -- DesktopPort -------------------------------------------------------------------------

    async def screenshot(self) -> bytes:
        await self.browser.shown()  # a browser on its way is on the picture
        return await self._capture.screenshot()

    async def fingerprint(self) -> int:
        # Without the tray: its clock changes the screen every minute, which is not progress.
        return await self._capture.fingerprint(skip_bottom=TRAY_HEIGHT)

    async def zoom(self, x1: int, y1: int, x2: int, y2: int) -> bytes:
        return await self._capture.zoom(x1, y1, x2, y2)

    async def cursor_position(self) -> tuple[int, int]:
        return await self._input.pointer()

    async def move_mouse(self, x: int, y: int) -> None:
        await self._input.move(x, y)

    async def click(
        self,
        x: int | None,
        y: int | None,
        *,
        button: MouseButton = "left",
        count: int = 1,
        modifiers: Sequence[str] = (),
    ) -> None:
        await self._input.click(x, y, button=button, count=count, modifiers=modifiers)

    async def mouse_down(self, button: MouseButton = "left") -> None:
        await self._input.button(button, press=True)

    async def mouse_up(self, button: MouseButton = "left") -> None:
        await self._input.button(button, press=False)

    async def drag(self, x1: int, y1: int, x2: int, y2: int) -> None:
        await self._input.drag(x1, y1, x2, y2)

    async def scroll(
        self,
        x: int | None,
        y: int | None,
        direction: ScrollDirection,
        amount: int,
        *,
        modifiers: Sequence[str] = (),
    ) -> None:
        await self._input.scroll(x, y, direction, amount, modifiers=modifiers)

    async def key(self, combo: str) -> None:
        await self._input.key(combo)

    async def hold_key(self, combo: str, seconds: float) -> None:
        await self._input.hold_key(combo, seconds)

    async def type_text(self, text: str) -> None:
        await self._input.type_text(text)

    async def wait_until_settled(self, *, timeout: float = 2.0) -> None:
        await self._capture.wait_until_settled(timeout)

    async def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float,
        env: Mapping[str, str] | None = None,
        input: bytes | None = None,
    ) -> CommandResult:
        return await self.sandbox.run(
            argv, timeout=timeout, env={**self.spec.env(), **(env or {})}, input=input
        )

    async def spawn(
        self, argv: Sequence[str], *, env: Mapping[str, str] | None = None
    ) -> asyncio.subprocess.Process:
        """A long-lived process of the session (the agent's bash), with pipes, leading its
        own process group; the caller owns and reaps it (sandbox.close() kills it too)."""
        return await self.sandbox.spawn(
            argv,
            env={**self.spec.env(), **(env or {})},
            stdin=PIPE,
            stdout=PIPE,
            stderr=PIPE,
        )

    # -- teardown (the manager's job) ----------------------------------------------------------

    async def stop_processes(self) -> None:
        """Stop the desktop's programs and close our X connections; the sandbox stays."""
        await self.browser.close()
        await self.vnc.aclose()
        await self.supervisor.stop()
        self._input.close()
        self._capture.close()


if TYPE_CHECKING:
    _port_check: DesktopPort = Desktop.__new__(Desktop)
