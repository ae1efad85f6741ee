"""The small interface through which the agent drives a session's desktop, and its types.

A neutral module: `desktops.Desktop` satisfies it structurally and uses its types, the agent
depends on it, and neither package imports the other.
Coordinates here are always in *screen* pixels: scaling from the model's image space is the
agent's job (see `agent.tools.computer`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

MouseButton = Literal["left", "right", "middle"]
ScrollDirection = Literal["up", "down", "left", "right"]


@dataclass(frozen=True)
class CommandResult:
    returncode: int | None  # None when the command was killed by its timeout
    stdout: bytes
    stderr: bytes
    timed_out: bool = False


class DesktopPort(Protocol):
    @property
    def width(self) -> int: ...

    @property
    def height(self) -> int: ...

    async def screenshot(self) -> bytes:
        """PNG of the whole screen at native size."""

    async def fingerprint(self) -> int:
        """A cheap digest of the whole screen now: equal screens, equal values (stuck.py)."""

    async def zoom(self, x1: int, y1: int, x2: int, y2: int) -> bytes:
        """PNG of the region [x1, x2) x [y1, y2) at full resolution."""

    async def cursor_position(self) -> tuple[int, int]: ...

    async def move_mouse(self, x: int, y: int) -> None: ...

    async def click(
        self,
        x: int | None,
        y: int | None,
        *,
        button: MouseButton = "left",
        count: int = 1,
        modifiers: Sequence[str] = (),
    ) -> None:
        """Click `count` times at (x, y), or where the pointer is when x/y are None,
        holding the given xdotool-named modifier keys (e.g. "shift", "ctrl")."""

    async def mouse_down(self, button: MouseButton = "left") -> None: ...

    async def mouse_up(self, button: MouseButton = "left") -> None: ...

    async def drag(self, x1: int, y1: int, x2: int, y2: int) -> None: ...

    async def scroll(
        self,
        x: int | None,
        y: int | None,
        direction: ScrollDirection,
        amount: int,
        *,
        modifiers: Sequence[str] = (),
    ) -> None: ...

    async def key(self, combo: str) -> None:
        """Press and release an xdotool-style key combination ("ctrl+l", "Return", "a b c")."""

    async def hold_key(self, combo: str, seconds: float) -> None: ...

    async def type_text(self, text: str) -> None:
        """Type arbitrary Unicode text exactly (non-ASCII included)."""

    async def wait_until_settled(self, *, timeout: float = 2.0) -> None:
        """Return once the screen has stopped changing, or after `timeout` seconds."""

    async def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float,
        env: Mapping[str, str] | None = None,
        input: bytes | None = None,
    ) -> CommandResult:
        """Run a command as the session's user, with its DISPLAY and HOME."""

    async def spawn(
        self, argv: Sequence[str], *, env: Mapping[str, str] | None = None
    ) -> asyncio.subprocess.Process:
        """Start a long-lived process as the session's user (its DISPLAY and HOME, working
        directory HOME), with pipes for stdin, stdout and stderr, as the leader of a new process
        group, so the caller can stop it and everything it started with
        `os.killpg(proc.pid, SIGKILL)`. The caller owns the process and reaps it."""
