"""A desktop host in a network namespace of its own, so the cluster's traffic to and from it
crosses an interface: a veth pair, `root` on this side and `inside` in the namespace (a /30 of
10.230-239.0.0, one per CU_TEST_SLOT), loopback up inside. What runs in the namespace reaches
the root side's services only at `root`; PostgreSQL, which listens on 127.0.0.1 alone, is
reached through a `TcpForwarder` listening on `root`."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from tests import slots


class NetnsUnavailable(Exception):
    """This machine (or this user) cannot make a network namespace: the cluster tests skip."""


@dataclass(frozen=True)
class NetworkNamespace:
    name: str
    root_link: str  # the veth end on this side
    inside_link: str  # the veth end in the namespace
    root: str  # the address of `root_link`
    inside: str  # the address of `inside_link`

    def exec_prefix(self) -> list[str]:
        """What runs a command in the namespace (`ip netns exec` execs it: same pid)."""
        return ["ip", "netns", "exec", self.name]


def for_slot(tag: str) -> NetworkNamespace:
    """Names and addresses of this CU_TEST_SLOT's, so parallel checkouts never collide (a
    link's name has at most 15 characters: `tag` is two)."""
    net = f"10.{230 + slots.SLOT}.0"
    links = f"cu{slots.SLOT}{tag}"
    return NetworkNamespace(
        f"cu{slots.SLOT}-ray-{tag}", f"{links}-r", f"{links}-n", f"{net}.1", f"{net}.2"
    )


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")


def _remove(ns: NetworkNamespace) -> None:
    """Deleting one end of a veth pair deletes both; each step may have nothing to do."""
    for args in (["link", "del", ns.root_link], ["netns", "del", ns.name]):
        subprocess.run(["ip", *args], capture_output=True, check=False)


@contextlib.contextmanager
def network_namespace(ns: NetworkNamespace) -> Iterator[NetworkNamespace]:
    """Creates the namespace and its veth pair, removed on exit. NetnsUnavailable when `ip`
    is missing or `ip netns add` is refused (no privilege, no kernel support)."""
    if shutil.which("ip") is None:
        raise NetnsUnavailable("the `ip` command (iproute2) is not installed")
    _remove(ns)  # what a killed run of this slot left
    added = subprocess.run(["ip", "netns", "add", ns.name], capture_output=True, text=True)
    if added.returncode:
        raise NetnsUnavailable(f"`ip netns add {ns.name}` failed: {added.stderr.strip()}")
    try:
        _ip("link", "add", ns.root_link, "type", "veth", "peer", "name", ns.inside_link)
        _ip("link", "set", ns.inside_link, "netns", ns.name)
        _ip("addr", "add", f"{ns.root}/30", "dev", ns.root_link)
        _ip("link", "set", ns.root_link, "up")
        _ip("-n", ns.name, "addr", "add", f"{ns.inside}/30", "dev", ns.inside_link)
        _ip("-n", ns.name, "link", "set", ns.inside_link, "up")
        _ip("-n", ns.name, "link", "set", "lo", "up")
        yield ns
    finally:
        _remove(ns)


class TcpForwarder:
    """Accepts on `host` (an ephemeral port) and joins each connection to `target`, in a
    thread of its own running an asyncio loop; `stop` closes the listener and every
    connection."""

    def __init__(self, host: str, target: tuple[str, int]) -> None:
        self.host, self.target = host, target
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._failed: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="tcp-forwarder", daemon=True)
        self._stopping: asyncio.Event | None = None
        self._connections: set[asyncio.Task[None]] = set()

    def start(self, timeout: float = 10) -> TcpForwarder:
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError(f"the forwarder on {self.host} did not start in {timeout} s")
        if self._failed is not None:
            raise self._failed
        return self

    def stop(self) -> None:
        if self._thread.ident is None:
            return  # never started
        if self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join(timeout=10)

    def _run(self) -> None:
        try:
            self._loop.run_until_complete(self._serve())
        finally:
            self._loop.close()

    async def _serve(self) -> None:
        self._stopping = asyncio.Event()
        try:
            server = await asyncio.start_server(self._accept, self.host, 0)
        except OSError as exc:
            self._failed = exc
            self._ready.set()
            return
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        async with server:
            await self._stopping.wait()
            server.close()
            for task in list(self._connections):
                task.cancel()
            await asyncio.gather(*self._connections, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        ends = [writer]
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
            ends.append(up_writer)
            pipes = [
                asyncio.create_task(_pipe(reader, up_writer)),
                asyncio.create_task(_pipe(up_reader, writer)),
            ]
            try:
                await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
            finally:  # one side closed (or the forwarder stops): both go
                for pipe in pipes:
                    pipe.cancel()
                await asyncio.gather(*pipes, return_exceptions=True)
        except OSError:
            pass  # the target refused: the client sees its connection closed
        finally:
            for end in ends:
                end.close()
            self._connections.discard(task)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
