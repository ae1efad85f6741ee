"""A small DesktopPort over a real Xvfb, for the agent's tests until desktops/ lands.

Xvfb is started with -displayfd (it picks a free display and tells us which) and -noreset (an
X server with no clients left resets, sending the pointer back to the centre). Input goes
through xdotool, screenshots through mss; commands run as the current user with HOME set to a
temporary directory.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import select
import subprocess
import time
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path

import mss
from PIL import Image

from computer_use.desktop_port import CommandResult, MouseButton, ScrollDirection

BUTTONS = {"left": "1", "middle": "2", "right": "3"}
SCROLL_BUTTONS = {"up": "4", "down": "5", "left": "6", "right": "7"}


class Xvfb:
    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        # Another X server starting at the same moment can take the display this one picked;
        # it then exits without reporting one, and another attempt picks another display.
        for _ in range(3):
            self.proc, display = self._start()
            if display:
                self.display = f":{display}"
                return
            self.stop()
        raise RuntimeError("Xvfb did not start (no display reported in 3 attempts)")

    def _start(self) -> tuple[subprocess.Popen[bytes], str]:
        read_fd, write_fd = os.pipe()
        proc = subprocess.Popen(
            [
                *("Xvfb", "-displayfd", str(write_fd), "-nolisten", "tcp", "-noreset"),
                *("-screen", "0", f"{self.width}x{self.height}x24"),
            ],
            pass_fds=(write_fd,),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(write_fd)
        # Xvfb writes the number and the newline separately, and dies if the pipe is closed in
        # between: read up to the newline (or EOF when it failed) before closing.
        data = b""
        deadline = time.monotonic() + 10.0
        try:
            while not data.endswith(b"\n") and time.monotonic() < deadline:
                ready, _, _ = select.select([read_fd], [], [], deadline - time.monotonic())
                chunk = os.read(read_fd, 64) if ready else b""
                if not chunk:
                    break
                data += chunk
        finally:
            os.close(read_fd)
        return proc, data.decode().strip() if data.endswith(b"\n") else ""

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class XvfbDesktop:
    def __init__(self, xvfb: Xvfb, home: Path) -> None:
        self.xvfb = xvfb
        self.home = home
        self.env = {**os.environ, "DISPLAY": xvfb.display, "HOME": str(home)}

    @property
    def width(self) -> int:
        return self.xvfb.width

    @property
    def height(self) -> int:
        return self.xvfb.height

    async def _xdotool(self, *args: str) -> str:
        proc = await asyncio.create_subprocess_exec(
            "xdotool", *args, env=self.env, stdout=asyncio.subprocess.PIPE
        )
        out, _ = await proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"xdotool {args} failed ({proc.returncode})")
        return out.decode()

    def _grab(self) -> Image.Image:
        with mss.MSS(display=self.xvfb.display) as sct:
            shot = sct.grab(sct.monitors[0])
        return Image.frombytes("RGB", shot.size, shot.bgra, "raw", "BGRX")

    async def screenshot(self) -> bytes:
        def grab_png() -> bytes:
            out = io.BytesIO()
            self._grab().save(out, format="PNG", compress_level=1)
            return out.getvalue()

        return await asyncio.to_thread(grab_png)

    async def fingerprint(self) -> int:
        return await asyncio.to_thread(lambda: zlib.crc32(self._grab().tobytes()))

    async def zoom(self, x1: int, y1: int, x2: int, y2: int) -> bytes:
        def crop() -> bytes:
            out = io.BytesIO()
            self._grab().crop((x1, y1, x2, y2)).save(out, format="PNG", compress_level=1)
            return out.getvalue()

        return await asyncio.to_thread(crop)

    async def cursor_position(self) -> tuple[int, int]:
        values = dict(
            line.split("=", 1)
            for line in (await self._xdotool("getmouselocation", "--shell")).split()
        )
        return int(values["X"]), int(values["Y"])

    async def move_mouse(self, x: int, y: int) -> None:
        await self._xdotool("mousemove", str(x), str(y))

    async def click(
        self,
        x: int | None,
        y: int | None,
        *,
        button: MouseButton = "left",
        count: int = 1,
        modifiers: Sequence[str] = (),
    ) -> None:
        args: list[str] = []
        for key in modifiers:
            args += ["keydown", key]
        if x is not None and y is not None:
            args += ["mousemove", str(x), str(y)]
        args += ["click", "--repeat", str(count), BUTTONS[button]]
        for key in reversed(modifiers):
            args += ["keyup", key]
        await self._xdotool(*args)

    async def mouse_down(self, button: MouseButton = "left") -> None:
        await self._xdotool("mousedown", BUTTONS[button])

    async def mouse_up(self, button: MouseButton = "left") -> None:
        await self._xdotool("mouseup", BUTTONS[button])

    async def drag(self, x1: int, y1: int, x2: int, y2: int) -> None:
        await self._xdotool(
            "mousemove", str(x1), str(y1), "mousedown", "1", "mousemove", str(x2), str(y2)
        )
        await self._xdotool("mouseup", "1")

    async def scroll(
        self,
        x: int | None,
        y: int | None,
        direction: ScrollDirection,
        amount: int,
        *,
        modifiers: Sequence[str] = (),
    ) -> None:
        args: list[str] = []
        if x is not None and y is not None:
            args += ["mousemove", str(x), str(y)]
        if amount:
            args += ["click", "--repeat", str(amount), SCROLL_BUTTONS[direction]]
        if args:
            await self._xdotool(*args)

    async def key(self, combo: str) -> None:
        await self._xdotool("key", "--", *combo.split())

    async def hold_key(self, combo: str, seconds: float) -> None:
        await self._xdotool("keydown", combo)
        await asyncio.sleep(seconds)
        await self._xdotool("keyup", combo)

    async def type_text(self, text: str) -> None:
        await self._xdotool("type", "--delay", "0", "--", text)

    async def wait_until_settled(self, *, timeout: float = 2.0) -> None:
        deadline = time.monotonic() + timeout
        previous = None
        while time.monotonic() < deadline:
            digest = hashlib.sha1(await asyncio.to_thread(lambda: self._grab().tobytes())).digest()
            if digest == previous:
                return
            previous = digest
            await asyncio.sleep(0.02)

    async def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float,
        env: Mapping[str, str] | None = None,
        input: bytes | None = None,
    ) -> CommandResult:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            cwd=self.home,
            env={**self.env, **(env or {})},
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            async with asyncio.timeout(timeout):
                out, err = await proc.communicate(input)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            return CommandResult(None, b"", b"", timed_out=True)
        return CommandResult(proc.returncode, out, err)

    async def spawn(
        self, argv: Sequence[str], *, env: Mapping[str, str] | None = None
    ) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            *argv,
            cwd=self.home,
            env={**self.env, **(env or {})},
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
