"""What the VNC websocket proxy costs against connecting to the VNC server directly.

Everything is measured in one run: a real Xvfb + x11vnc, a minimal in-memory RFB server (so
the proxy's own cost shows without x11vnc's ~20 ms update pacing), the app's VNC router
under uvicorn in a child process (its memory and CPU are its own), and websockify as a
reference proxy when installed. For each target and path (direct unix socket, which is how
x11vnc listens; our proxy with and
without permessage-deflate, which browsers offer and uvicorn accepts; websockify):

- round trip of a 1x1 non-incremental FramebufferUpdateRequest (median);
- throughput of full-screen raw updates (1024x768x32 bpp = 3 MiB each), MiB/s;
- the app process's CPU per MiB, and its RSS idle and with N idle viewers connected.

Trials are interleaved, so load from other processes hits every path alike.

Usage: .venv/bin/python bench/vnc_proxy.py [--trials 5] [--rounds 200] [--frames 20]
                                           [--viewers 50]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Protocol

from websockets.asyncio.client import ClientConnection, connect

ROOT = Path(__file__).resolve().parents[1]
# The tests' process helpers (Xvfb with -displayfd, x11vnc's PORT= line) are reused as is.
sys.path.insert(0, str(ROOT))

from tests.helpers import wait_for  # noqa: E402
from tests.vnc.vnc_helpers import (  # noqa: E402
    SCREEN_HEIGHT,
    SCREEN_WIDTH,
    paint_root,
    start_x11vnc,
    start_xvfb,
    stop_process,
)

SECRET = b"benchmark-secret-32-bytes-long!!"
SESSION = "bench"


class Channel(Protocol):
    async def send(self, data: bytes) -> None: ...

    async def recv(self) -> bytes: ...

    async def close(self) -> None: ...


class TcpChannel:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader, self._writer = reader, writer

    async def send(self, data: bytes) -> None:
        self._writer.write(data)
        await self._writer.drain()

    async def recv(self) -> bytes:
        data = await self._reader.read(256 * 1024)
        if not data:
            raise ConnectionError("closed")
        return data

    async def close(self) -> None:
        self._writer.close()
        await self._writer.wait_closed()


class WsChannel:
    def __init__(self, ws: ClientConnection) -> None:
        self._ws = ws

    async def send(self, data: bytes) -> None:
        await self._ws.send(data)

    async def recv(self) -> bytes:
        data = await self._ws.recv()
        assert isinstance(data, bytes)
        return data

    async def close(self) -> None:
        await self._ws.close()


class Rfb:
    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self._buffer = bytearray()

    async def read(self, size: int) -> bytes:
        while len(self._buffer) < size:
            self._buffer += await self.channel.recv()
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    async def handshake(self) -> None:
        await self.read(12)
        await self.channel.send(b"RFB 003.008\n")
        (count,) = await self.read(1)
        await self.read(count)
        await self.channel.send(b"\x01")
        await self.read(4)
        await self.channel.send(b"\x01")
        await self.read(20)
        (name_len,) = struct.unpack(">I", await self.read(4))
        await self.read(name_len)
        await self.channel.send(struct.pack(">BxHi", 2, 1, 0))  # raw encoding only

    async def update(self, width: int, height: int) -> int:
        await self.channel.send(struct.pack(">BBHHHH", 3, 0, 0, 0, width, height))
        while (kind := (await self.read(1))[0]) != 0:
            if kind == 3:  # ServerCutText: x11vnc shares the X clipboard at connect
                (length,) = struct.unpack(">3xI", await self.read(7))
                await self.read(length)
            elif kind != 2:  # Bell has no body
                raise RuntimeError(f"unexpected server message {kind}")
        (rects,) = struct.unpack(">xH", await self.read(3))
        total = 0
        for _ in range(rects):
            _x, _y, w, h, _enc = struct.unpack(">HHHHi", await self.read(12))
            await self.read(w * h * 4)
            total += w * h * 4
        return total


def bound_socket() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    return sock


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _stub_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        await _stub_session(reader, writer)
    except (asyncio.IncompleteReadError, ConnectionError):
        pass  # the client left
    finally:
        writer.close()


async def _stub_session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    frame = bytes(SCREEN_WIDTH * SCREEN_HEIGHT * 4)
    writer.write(b"RFB 003.008\n")
    await reader.readexactly(12)
    writer.write(b"\x01\x01")  # one security type: None
    await reader.readexactly(1)
    writer.write(struct.pack(">I", 0))
    await reader.readexactly(1)
    pixel_format = struct.pack(">BBBBHHHBBBxxx", 32, 24, 0, 1, 255, 255, 255, 16, 8, 0)
    writer.write(struct.pack(">HH", SCREEN_WIDTH, SCREEN_HEIGHT) + pixel_format)
    writer.write(struct.pack(">I", 4) + b"stub")
    while True:
        kind = (await reader.readexactly(1))[0]
        if kind == 2:
            (count,) = struct.unpack(">xH", await reader.readexactly(3))
            await reader.readexactly(4 * count)
        elif kind == 3:
            _inc, x, y, w, h = struct.unpack(">BHHHH", await reader.readexactly(9))
            header = struct.pack(">BxHHHHHi", 0, 1, x, y, w, h, 0)
            writer.write(header + frame[: w * h * 4])
            await writer.drain()
        else:
            raise RuntimeError(f"stub does not handle message {kind}")


def stub(fd: int) -> None:
    """Child process: a minimal RFB server answering update requests at once from memory,
    so the proxy's own cost is measured without x11vnc's pacing and screen capture."""

    async def main() -> None:
        server = await asyncio.start_unix_server(_stub_client, sock=socket.socket(fileno=fd))
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def serve(fd: int, sockets: str) -> None:
    """Child process: the VNC router alone under uvicorn, on an inherited listening socket.

    `sockets` maps session ids to VNC unix sockets: "x11vnc=/tmp/a.sock,stub=/tmp/b.sock"."""
    import uvicorn
    from fastapi import FastAPI

    from computer_use.vnc import VncTokens, router

    table = {name: Path(path) for name, path in (i.split("=") for i in sockets.split(","))}

    class Targets:
        def vnc_socket(self, session_id: str) -> Path | None:
            return table.get(session_id)

        async def touch(self, session_id: str) -> None:
            return None

    app = FastAPI()
    app.include_router(router)
    app.state.vnc_tokens = VncTokens(SECRET)
    app.state.vnc_targets = Targets()
    # uvicorn's defaults otherwise, as `computer-use serve` runs it: permessage-deflate is
    # accepted. Not `fd=`: uvicorn wraps it as AF_UNIX, so asyncio would leave Nagle on and
    # small frames would wait for delayed ACKs (~40 ms); a real socket object keeps TCP_NODELAY.
    config = uvicorn.Config(app, log_level="warning", lifespan="off")
    uvicorn.Server(config).run(sockets=[socket.socket(fileno=fd)])


async def measure(
    opener: Callable[[], Awaitable[Channel]], rounds: int, frames: int
) -> tuple[float, float]:
    """One trial on a fresh connection: (median round trip in ms, full-screen MiB/s)."""
    rfb = Rfb(await opener())
    await rfb.handshake()
    for _ in range(20):  # warm-up
        await rfb.update(1, 1)
    latencies = []
    for _ in range(rounds):
        start = time.perf_counter()
        await rfb.update(1, 1)
        latencies.append(time.perf_counter() - start)
    start = time.perf_counter()
    moved = 0
    for _ in range(frames):
        moved += await rfb.update(SCREEN_WIDTH, SCREEN_HEIGHT)
    elapsed = time.perf_counter() - start
    await rfb.channel.close()
    return statistics.median(latencies) * 1000, moved / elapsed / 2**20


async def idle_viewers(url: str, count: int) -> list[ClientConnection]:
    viewers = []
    for _ in range(count):
        ws = await connect(url, max_size=None)
        rfb = Rfb(WsChannel(ws))
        await rfb.handshake()
        await rfb.update(1, 1)
        viewers.append(ws)
    return viewers


def start_child(argv: list[str], sock: socket.socket) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, __file__, *argv], pass_fds=(sock.fileno(),))
    sock.close()  # the child has it; clients queue in its backlog until it serves
    return proc


def start_websockify(target: Path) -> tuple[int, subprocess.Popen[bytes]] | None:
    websockify = shutil.which("websockify")
    if websockify is None:
        return None
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen(
        [websockify, f"--unix-target={target}", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def listening() -> bool:
        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", port)) == 0

    wait_for(listening, timeout=10, what="websockify to listen")
    return port, proc


async def compare(
    label: str, target: Path, proxy_url: str, args: argparse.Namespace, app_pid: int
) -> None:
    """Interleaved trials per path, so load from other processes hits every path alike."""

    async def direct() -> Channel:
        return TcpChannel(*await asyncio.open_unix_connection(str(target)))

    async def ours_deflate() -> Channel:
        return WsChannel(await connect(proxy_url, max_size=None, compression="deflate"))

    async def ours_plain() -> Channel:
        return WsChannel(await connect(proxy_url, max_size=None, compression=None))

    paths: dict[str, Callable[[], Awaitable[Channel]]] = {
        "direct socket": direct,
        "proxy, deflate (browsers)": ours_deflate,
        "proxy, no deflate": ours_plain,
    }
    started = start_websockify(target)
    if started is not None:
        ws_port = started[0]

        async def websockify() -> Channel:
            return WsChannel(await connect(f"ws://127.0.0.1:{ws_port}/", max_size=None))

        paths["websockify 0.10 (ref)"] = websockify
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in paths}
    cpu: dict[str, float] = dict.fromkeys(paths, 0.0)
    try:
        for _ in range(args.trials):
            for name, opener in paths.items():
                before = cpu_seconds(app_pid)
                results[name].append(await measure(opener, args.rounds, args.frames))
                cpu[name] += cpu_seconds(app_pid) - before
    finally:
        if started is not None:
            stop_process(started[1])

    moved_mib = args.trials * args.frames * SCREEN_WIDTH * SCREEN_HEIGHT * 4 / 2**20
    base_rtt = statistics.median(r[0] for r in results["direct socket"])
    base_tput = statistics.median(r[1] for r in results["direct socket"])
    print(f"{label} (median of {args.trials} trials):")
    for name, trials in results.items():
        rtt = statistics.median(r[0] for r in trials)
        tput = statistics.median(r[1] for r in trials)
        line = f"  {name:<26} round trip {rtt:7.3f} ms ({rtt - base_rtt:+.3f})"
        line += f"  full-screen raw {tput:6.1f} MiB/s (x{tput / base_tput:.2f})"
        if name.startswith("proxy"):
            line += f"  app CPU {cpu[name] / moved_mib * 1000:.1f} ms/MiB"
        print(line)


async def run(args: argparse.Namespace) -> None:
    from computer_use.vnc import VncTokens

    workdir = Path(tempfile.mkdtemp(prefix="vnc-bench-"))
    display = start_xvfb(workdir)
    children: list[subprocess.Popen[bytes]] = [display.proc]
    try:
        paint_root(display)
        vnc_socket, x11vnc = start_x11vnc(display, workdir)
        children.append(x11vnc)
        stub_path = workdir / "stub.sock"
        stub_sock = socket.socket(socket.AF_UNIX)
        stub_sock.bind(str(stub_path))
        stub_sock.listen(128)
        children.append(start_child(["--stub", str(stub_sock.fileno())], stub_sock))
        app_sock = bound_socket()
        app_port = app_sock.getsockname()[1]
        sockets = f"x11vnc={vnc_socket},stub={stub_path}"
        app = start_child(["--serve", str(app_sock.fileno()), sockets], app_sock)
        children.append(app)

        tokens = VncTokens(SECRET)

        def url(session_id: str) -> str:
            token = tokens.mint(session_id, interactive=False)
            return f"ws://127.0.0.1:{app_port}/api/v1/sessions/{session_id}/vnc/websockify?token={token}"

        # The first connection also waits for the child to serve: not part of any figure.
        await (await connect(url("stub"), compression=None)).close()
        rss_idle = rss_kib(app.pid)
        await compare(
            "minimal RFB server (the proxy's own cost)", stub_path, url("stub"), args, app.pid
        )
        await compare("x11vnc on Xvfb (end to end)", vnc_socket, url("x11vnc"), args, app.pid)
        rss_loaded = rss_kib(app.pid)
        viewers = await idle_viewers(url("x11vnc"), args.viewers)
        rss_viewers = rss_kib(app.pid)
        for ws in viewers:
            await ws.close()
        per_viewer = (rss_viewers - rss_loaded) / max(args.viewers, 1)
        print("memory of the proxy process (uvicorn + app, RSS):")
        print(f"  idle {rss_idle / 1024:.1f} MiB, after the runs above {rss_loaded / 1024:.1f} MiB")
        print(
            f"  with {args.viewers} idle connected viewers {rss_viewers / 1024:.1f} MiB"
            f" (~{per_viewer:.0f} KiB per viewer)"
        )
    finally:
        for child in reversed(children):
            stop_process(child)
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--viewers", type=int, default=50)
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--serve", nargs=2, metavar=("FD", "SOCKETS"))
    parser.add_argument("--stub", type=int, metavar="FD")
    args = parser.parse_args()
    if args.serve:
        serve(int(args.serve[0]), args.serve[1])
    elif args.stub is not None:
        stub(args.stub)
    else:
        asyncio.run(run(args))


if __name__ == "__main__":
    main()
