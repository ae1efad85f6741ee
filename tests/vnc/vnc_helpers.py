"""Real processes for the VNC tests: Xvfb, x11vnc, uvicorn, an RFB client, an X event recorder.

Every start waits on a readiness signal with a deadline (Xvfb's -displayfd, x11vnc's PORT=
line, a pre-bound listening socket for uvicorn), never on a fixed sleep.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import select
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI
from websockets.asyncio.client import ClientConnection

from computer_use.errors import install_error_handlers
from computer_use.vnc import VncTokens, router
from computer_use.vnc.targets import UnixSocketTargets
from tests.helpers import wait_for

SCREEN_WIDTH, SCREEN_HEIGHT = 1024, 768
SECRET = b"test-secret-of-the-vnc-suite-32b"
SESSION = "sess-desktop"  # has a desktop
OTHER_SESSION = "sess-other"  # also has one (the same), for wrong-session tokens
NO_DESKTOP = "sess-no-desktop"
DEAD_SOCKET = "sess-dead-socket"  # a socket nobody listens on
LEFT_COLOUR, RIGHT_COLOUR = (0x33, 0x66, 0xCC), (0xFF, 0x99, 0x00)


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)


def _read_line(fd: int, timeout: float) -> bytes:
    """Reads up to a newline or EOF from a pipe, giving up at the deadline."""
    deadline = time.monotonic() + timeout
    data = b""
    while not data.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
            raise TimeoutError("no line in time")
        chunk = os.read(fd, 256)
        if not chunk:
            break
        data += chunk
    return data


@dataclass
class XDisplay:
    name: str  # ":300"
    xauthority: Path
    proc: subprocess.Popen[bytes]

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "DISPLAY": self.name, "XAUTHORITY": str(self.xauthority)}


def start_xvfb(workdir: Path, first: int = 300, last: int = 340) -> XDisplay:
    auth = workdir / "xauthority"
    for number in range(first, last):
        if Path(f"/tmp/.X{number}-lock").exists() or Path(f"/tmp/.X11-unix/X{number}").exists():
            continue
        auth.unlink(missing_ok=True)
        cookie = secrets.token_hex(16)
        subprocess.run(
            ["xauth", "-q", "-f", str(auth), "add", f":{number}", "MIT-MAGIC-COOKIE-1", cookie],
            check=True,
            capture_output=True,  # it announces creating the file on stderr
            timeout=10,
        )
        read_fd, write_fd = os.pipe()
        argv = ["Xvfb", f":{number}", "-displayfd", str(write_fd), "-auth", str(auth)]
        # -noreset: otherwise the server resets (and loses the painted root) whenever its
        # last client leaves, e.g. between paint_root and x11vnc connecting.
        argv += [
            "-noreset",
            "-nolisten",
            "tcp",
            "-screen",
            "0",
            f"{SCREEN_WIDTH}x{SCREEN_HEIGHT}x24",
        ]
        proc = subprocess.Popen(
            argv,
            pass_fds=(write_fd,),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(write_fd)
        try:
            line = _read_line(read_fd, timeout=10)
        finally:
            os.close(read_fd)
        if line.strip() == str(number).encode():
            return XDisplay(f":{number}", auth, proc)
        stop_process(proc)  # lost a race for this number: try the next one
    raise RuntimeError(f"no free X display in :{first}..:{last - 1}")


def free_port(first: int = 6300, last: int = 6400) -> int:
    for port in range(first, last):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free TCP port in {first}..{last - 1}")


def start_x11vnc(display: XDisplay, directory: Path) -> tuple[Path, subprocess.Popen[bytes]]:
    """x11vnc as the service runs it: on a unix socket in `directory`, no TCP port."""
    path = directory / "vnc.sock"
    proc = subprocess.Popen(
        [
            *("x11vnc", "-display", display.name, "-auth", str(display.xauthority)),
            *("-unixsock", str(path), "-rfbport", "0", "-rfbportv6", "-1", "-noipv6"),
            *("-nopw", "-shared", "-forever", "-quiet"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=display.env,
    )
    wait_for(
        lambda: proc.poll() is not None or unix_accepts(path), timeout=15, what="x11vnc to listen"
    )
    if proc.poll() is not None:
        raise RuntimeError(f"x11vnc exited with {proc.returncode}")
    return path, proc


def unix_accepts(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


@contextlib.contextmanager
def xlib_connection(display: XDisplay) -> Iterator[Any]:
    from Xlib import display as xdisplay

    # python-xlib reads the cookie file only from the environment; restore it afterwards.
    saved = os.environ.get("XAUTHORITY")
    os.environ["XAUTHORITY"] = str(display.xauthority)
    try:
        conn = xdisplay.Display(display.name)
    finally:
        if saved is None:
            del os.environ["XAUTHORITY"]
        else:
            os.environ["XAUTHORITY"] = saved
    try:
        yield conn
    finally:
        conn.close()


def paint_root(display: XDisplay) -> None:
    """Left half blue, right half orange: distinctive, and shows whether scaling is right."""
    with xlib_connection(display) as conn:
        screen = conn.screen()
        root = screen.root
        pixmap = root.create_pixmap(SCREEN_WIDTH, SCREEN_HEIGHT, screen.root_depth)
        for x, colour in ((0, LEFT_COLOUR), (SCREEN_WIDTH // 2, RIGHT_COLOUR)):
            pixel = (colour[0] << 16) | (colour[1] << 8) | colour[2]
            gc = pixmap.create_gc(foreground=pixel)
            pixmap.fill_rectangle(gc, x, 0, SCREEN_WIDTH // 2, SCREEN_HEIGHT)
        root.change_attributes(background_pixmap=pixmap)
        root.clear_area(0, 0, SCREEN_WIDTH, SCREEN_HEIGHT)
        conn.sync()


def pointer_position(display: XDisplay) -> tuple[int, int]:
    out = subprocess.run(
        ["xdotool", "getmouselocation", "--shell"],
        env=display.env,
        capture_output=True,
        check=True,
        timeout=10,
    ).stdout.decode()
    values = dict(line.split("=", 1) for line in out.split())
    return int(values["X"]), int(values["Y"])


def move_pointer(display: XDisplay, x: int, y: int) -> None:
    # Not `--sync`: it waits for a motion that never comes when the pointer is already there.
    subprocess.run(
        ["xdotool", "mousemove", str(x), str(y)], env=display.env, check=True, timeout=10
    )
    wait_for(lambda: pointer_position(display) == (x, y), timeout=10, what="pointer to move")


class PointerRecorder:
    """Records every pointer position the X server reports on the root window.

    A fake-input event injected by x11vnc becomes MotionNotify/ButtonPress here, so a position
    never seen proves the input never reached the server (no child windows cover the root).
    """

    def __init__(self, display: XDisplay) -> None:
        from Xlib import X

        self._connection = xlib_connection(display)
        self._conn = self._connection.__enter__()
        root = self._conn.screen().root
        root.change_attributes(
            event_mask=X.PointerMotionMask | X.ButtonPressMask | X.ButtonReleaseMask
        )
        self._conn.sync()
        self.positions: list[tuple[int, int]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pointer-recorder", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            if not select.select([self._conn.fileno()], [], [], 0.1)[0]:
                continue
            for _ in range(self._conn.pending_events()):
                event = self._conn.next_event()
                with self._lock:
                    self.positions.append((event.root_x, event.root_y))

    def seen(self) -> list[tuple[int, int]]:
        with self._lock:
            return list(self.positions)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._connection.__exit__(None, None, None)


@dataclass
class RecordingTargets(UnixSocketTargets):
    """The app's `VncTargets`: fixed sockets per test session id, recording touches."""

    sockets: dict[str, Path | None]
    touches: list[str] = field(default_factory=list)
    touched: threading.Event = field(default_factory=threading.Event)
    opened: list[str] = field(default_factory=list)

    def vnc_socket(self, session_id: str) -> Path | None:
        return self.sockets.get(session_id)

    async def touch(self, session_id: str) -> None:
        self.touches.append(session_id)
        self.touched.set()

    def viewer_opened(self, session_id: str) -> None:
        self.opened.append(session_id)


class CountViewers:
    """ASGI middleware counting the websocket connections the app is still handling (a
    viewer's handler logs its leaving after the client has closed)."""

    def __init__(self, app: Any, counter: dict[str, int]) -> None:
        self.app = app
        self.counter = counter

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return
        self.counter["viewers"] += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.counter["viewers"] -= 1


def build_app(tokens: VncTokens, targets: RecordingTargets) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app, debug=True)
    app.include_router(router)
    app.state.vnc_tokens = tokens
    app.state.vnc_targets = targets
    counter = {"viewers": 0}
    app.add_middleware(CountViewers, counter=counter)

    @app.get("/_test/viewers")
    async def viewers() -> int:
        """Websocket connections whose handlers have not returned yet."""
        return counter["viewers"]

    @app.get("/_test/tasks")
    async def tasks() -> list[str]:
        """Names of the server loop's tasks, to prove no proxy task outlives its connection."""
        return sorted(task.get_name() for task in asyncio.all_tasks())

    return app


def proxy_tasks(base_url: str) -> list[str]:
    names: list[str] = httpx.get(f"{base_url}/_test/tasks", timeout=10).json()
    return [name for name in names if name.startswith("vnc-")]


def viewers_being_handled(base_url: str) -> int:
    count: int = httpx.get(f"{base_url}/_test/viewers", timeout=10).json()
    return count


def proxy_sockets_to(path: Path) -> int:
    """How many connections x11vnc has open on its socket at `path` (the proxy's: nothing
    else connects to it). /proc/net/unix lists accepted connections under the listener's path."""
    rows = [line.split() for line in Path("/proc/net/unix").read_text().splitlines()[1:]]
    return sum(1 for r in rows if len(r) >= 8 and r[7] == str(path) and r[5] == "03")


class OneShotRfbServer:
    """A real unix-socket server that greets like x11vnc, then hangs up: the desktop side
    ending."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / "one-shot.sock"
        self._sock = socket.socket(socket.AF_UNIX)
        self._sock.bind(str(self.path))
        self._sock.listen(1)
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        conn, _ = self._sock.accept()
        with conn:
            conn.sendall(b"RFB 003.008\n")
            conn.recv(12)

    def close(self) -> None:
        self._thread.join(10)
        self._sock.close()


class ServerThread:
    """uvicorn on an ephemeral loopback port, in its own thread and event loop."""

    def __init__(self, app: FastAPI) -> None:
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        # Listening before the thread starts: early clients queue instead of being refused.
        self._sock.listen(64)
        self.port: int = self._sock.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", lifespan="off", ws_ping_interval=None)
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )
        self._thread.start()
        wait_for(lambda: self.server.started, timeout=10, what="uvicorn to start")

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(10)
        self._sock.close()


READ_TIMEOUT = 30.0  # generous: a full raw screen is 3 MiB


@dataclass(frozen=True)
class ServerInit:
    width: int
    height: int
    bytes_per_pixel: int
    name: bytes


class RfbClient:
    """Just enough of an RFB 3.8 client over a websocket to handshake, point and sync."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self._buffer = bytearray()
        self.init: ServerInit | None = None

    async def read_exact(self, size: int) -> bytes:
        async with asyncio.timeout(READ_TIMEOUT):
            while len(self._buffer) < size:
                frame = await self.ws.recv()
                assert isinstance(frame, bytes), "the proxy must send binary frames"
                self._buffer += frame
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    async def handshake(self) -> ServerInit:
        version = await self.read_exact(12)
        assert version.startswith(b"RFB 003.00"), version
        await self.ws.send(b"RFB 003.008\n")
        (count,) = await self.read_exact(1)
        assert count > 0, "server refused the connection"
        assert 1 in await self.read_exact(count), "server does not offer security None"
        await self.ws.send(b"\x01")
        assert await self.read_exact(4) == b"\x00\x00\x00\x00"  # SecurityResult OK
        await self.ws.send(b"\x01")  # ClientInit: shared
        width, height = struct.unpack(">HH", await self.read_exact(4))
        pixel_format = await self.read_exact(16)
        (name_len,) = struct.unpack(">I", await self.read_exact(4))
        name = await self.read_exact(name_len)
        self.init = ServerInit(width, height, pixel_format[0] // 8, name)
        await self.ws.send(struct.pack(">BxHi", 2, 1, 0))  # SetEncodings: raw only
        return self.init

    def pointer_event(self, x: int, y: int, buttons: int = 0) -> bytes:
        return struct.pack(">BBHH", 5, buttons, x, y)

    async def click(self, x: int, y: int) -> None:
        await self.ws.send(self.pointer_event(x, y, 1) + self.pointer_event(x, y, 0))

    async def sync(self) -> None:
        """Round trip through the server: x11vnc handles one client's messages in order, so
        once the reply arrives every message sent before was processed (or never arrived)."""
        await self.ws.send(struct.pack(">BBHHHH", 3, 0, 0, 0, 1, 1))
        await self.read_framebuffer_update()

    async def read_framebuffer_update(self) -> int:
        """Skips other server messages; returns the pixel bytes of the next update."""
        assert self.init is not None
        while True:
            (kind,) = await self.read_exact(1)
            if kind == 0:
                break
            if kind == 2:  # Bell
                continue
            if kind == 3:  # ServerCutText
                (length,) = struct.unpack(">3xI", await self.read_exact(7))
                await self.read_exact(length)
                continue
            raise AssertionError(f"unexpected server message {kind}")
        (rects,) = struct.unpack(">xH", await self.read_exact(3))
        total = 0
        for _ in range(rects):
            _x, _y, w, h, encoding = struct.unpack(">HHHHi", await self.read_exact(12))
            assert encoding == 0, f"asked for raw only, got encoding {encoding}"
            size = w * h * self.init.bytes_per_pixel
            await self.read_exact(size)
            total += size
        return total


@dataclass
class VncStack:
    display: XDisplay
    vnc_socket: Path
    tokens: VncTokens
    targets: RecordingTargets
    server: ServerThread

    def ws_url(self, session_id: str, token: str) -> str:
        return f"{self.server.ws_url}/api/v1/sessions/{session_id}/vnc/websockify?token={token}"
