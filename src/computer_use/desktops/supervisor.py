"""Keeps a session's desktop processes running.

Every process is awaited (`proc.wait()`), so a death is seen at once, not on a polling tick.
An unexpected exit is reported through `on_event` and the process restarted; Xvfb's death
takes its clients down with it, so it restarts them too. A component restarted more than
`restart_limit` times within `restart_window` seconds is given up on: an essential one
(Xvfb, the window manager, VNC) marks the whole desktop failed, the browser only itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import signal
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from subprocess import DEVNULL, PIPE
from typing import Literal

from computer_use.desktops.errors import DesktopStartError
from computer_use.desktops.launcher import SessionSandbox
from computer_use.desktops.shm import remove_orphaned_segments

logger = logging.getLogger(__name__)

ComponentState = Literal["starting", "running", "restarting", "exited", "failed", "stopped"]
EventKind = Literal["exited", "restarted", "failed", "closed"]
EventCallback = Callable[[str, str, str, str], Awaitable[None] | None]
ReadyCheck = Callable[[asyncio.subprocess.Process], Awaitable[None]]

STOP_GRACE = 3.0  # SIGTERM, then SIGKILL after this many seconds
TAIL_LINES = 20
TAIL_LINE_BYTES = 300


@dataclass
class Component:
    name: str
    argv: list[str]
    env: dict[str, str]
    essential: bool
    ready: ReadyCheck | None = None  # raises if the process does not become ready
    restart_on_success: bool = True  # False: exit code 0 means the user closed it
    autostart: bool = True  # False: started only by ensure() (browser, x11vnc: on first use)
    serving: Callable[[], bool] | None = None  # the server: does it accept connections?
    before_start: Callable[[], object] | None = None  # e.g. reclaim what it will listen on
    stdout_pipe: bool = False
    proc: asyncio.subprocess.Process | None = None
    state: ComponentState = "stopped"
    stopping: bool = False
    restarts: deque[float] = field(default_factory=deque)
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=TAIL_LINES))
    io_tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def alive(self) -> bool:
        return self.proc is not None and _running(self.proc.pid) and self.proc.returncode is None


class Supervisor:
    """Starts, watches, restarts and stops the components of one desktop. The first
    component is the display server; every other one is its client."""

    def __init__(
        self,
        session_id: str,
        sandbox: SessionSandbox,
        components: list[Component],
        *,
        on_event: EventCallback | None = None,
        restart_limit: int = 5,
        restart_window: float = 60.0,
    ) -> None:
        self.session_id = session_id
        self.sandbox = sandbox
        self.components = {c.name: c for c in components}
        self._server = components[0]
        self._clients = components[1:]
        self._on_event = on_event
        self._limit = restart_limit
        self._window = restart_window
        self._exits: asyncio.Queue[tuple[Component, asyncio.subprocess.Process]] = asyncio.Queue()
        self._loop_task: asyncio.Task[None] | None = None
        self._closing = False
        self.failed = False

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Start everything; return once the server and the components with a readiness
        check are ready (the others, e.g. the browser, keep starting in the background)."""
        try:
            await self._start(self._server)
            await asyncio.gather(*(self._start(c) for c in self._clients if c.autostart))
        except BaseException:
            await self.stop()
            raise
        self._loop_task = asyncio.create_task(
            self._supervise(), name=f"supervise-{self.session_id}"
        )

    async def stop(self) -> None:
        self._closing = True
        if self._loop_task is not None:
            task, self._loop_task = self._loop_task, None
            # Re-cancelled until done: code outside ours (a library await) may swallow one
            # cancellation, and an unbounded wait here would hang destroy().
            while not task.done():
                task.cancel()
                await asyncio.wait({task}, timeout=1.0)
            if not task.cancelled() and (exc := task.exception()) is not None:
                logger.error("desktop %s: supervisor ended with %r", self.session_id, exc)
        await asyncio.gather(*(self._terminate(c) for c in self._clients))
        await self._terminate(self._server)

    def status(self) -> dict[str, str]:
        return {name: c.state for name, c in self.components.items()}

    async def ensure(self, name: str) -> bool:
        """Start a client that is not running (never started, closed, or given up on);
        True if this call started it. Raises DesktopStartError if it cannot start."""
        comp = self.components[name]
        if self._closing or comp is self._server:
            return False
        if comp.state in ("starting", "restarting"):
            return False  # on its way already
        if comp.state == "running" and comp.alive():
            return False
        if not self._server_serving():
            return False  # the server's restart brings back what should run
        comp.restarts.clear()  # asked for: a fresh budget
        await self._start(comp)
        return True

    async def stop_client(self, name: str) -> None:
        """Stop a client that is no longer needed (x11vnc without viewers); it stays down,
        through server restarts too, until ensure()."""
        comp = self.components[name]
        if comp is not self._server and not self._closing:
            await self._terminate(comp)
            self._sweep_shm()

    # -- starting one component ------------------------------------------------------------

    async def _start(self, comp: Component) -> None:
        comp.state = "starting"
        comp.stopping = False
        try:
            if comp.before_start is not None:
                await asyncio.to_thread(comp.before_start)
            proc = await self.sandbox.spawn(
                comp.argv,
                env=comp.env,
                stdout=PIPE if comp.stdout_pipe else DEVNULL,
                stderr=PIPE,
            )
        except Exception as exc:
            comp.state = "failed"
            raise DesktopStartError(f"{comp.name}: cannot start {comp.argv[0]}: {exc}") from exc
        comp.proc = proc
        comp.tail.clear()
        comp.io_tasks = [asyncio.create_task(_keep_tail(proc.stderr, comp.tail))]
        watcher = asyncio.create_task(self._watch(comp, proc))
        comp.io_tasks.append(watcher)
        if comp.ready is not None:
            try:
                await comp.ready(proc)
            except Exception as exc:
                tail = " | ".join(comp.tail)
                await self._terminate(comp)
                comp.state = "failed"
                raise DesktopStartError(f"{comp.name} did not become ready: {exc} {tail}") from exc
        if proc.stdout is not None:
            comp.io_tasks.append(asyncio.create_task(_drain(proc.stdout)))
        comp.state = "running"

    async def _watch(self, comp: Component, proc: asyncio.subprocess.Process) -> None:
        await proc.wait()
        # An exit before it is ready is its readiness check's to report (it raises to whoever
        # started it); restarting it here too would run a second start beside that one.
        if not comp.stopping and not self._closing and comp.state != "starting":
            self._exits.put_nowait((comp, proc))

    # -- supervision -----------------------------------------------------------------------

    async def _supervise(self) -> None:
        while True:
            comp, proc = await self._exits.get()
            if comp.proc is not proc or comp.stopping:
                continue  # already handled, e.g. a client that died with the server
            try:
                await self._handle_exit(comp, proc)
            except Exception:
                logger.exception("desktop %s: supervising %s failed", self.session_id, comp.name)

    async def _handle_exit(self, comp: Component, proc: asyncio.subprocess.Process) -> None:
        code = proc.returncode
        detail = _describe_exit(code, comp.tail)
        if not comp.restart_on_success and code == 0:
            comp.state = "exited"
            logger.info("desktop %s: %s closed", self.session_id, comp.name)
            await self._emit(comp.name, "closed", detail)
            return
        logger.warning("desktop %s: %s %s", self.session_id, comp.name, detail)
        await self._emit(comp.name, "exited", detail)
        self._sweep_shm()
        if comp is self._server:
            await self._restart_server(reported=True)
        elif not self._server_serving():
            await self._restart_server(reported=False)
        else:
            await self._restart(comp)

    def _sweep_shm(self) -> None:
        # A killed X client leaks its SysV shared memory (see shm.py).
        if self.sandbox.user is not None:
            remove_orphaned_segments(self.sandbox.user.uid)

    def _server_serving(self) -> bool:
        # Clients see the server's sockets close before its process is reaped (or even a
        # zombie), so its process state alone would let a client restart race its death.
        server = self._server
        return server.alive() and (server.serving is None or server.serving())

    async def _restart(self, comp: Component) -> None:
        """Restart a client, retrying within the budget. If the server turns out to be down
        the client is left 'restarting' for the server's restart to bring back."""
        comp.state = "restarting"
        started = time.monotonic()
        while self._spend_restart(comp):
            try:
                await self._start(comp)
            except DesktopStartError as exc:
                if not self._server_serving():
                    comp.state = "restarting"
                    return
                logger.warning("desktop %s: restarting %s: %s", self.session_id, comp.name, exc)
                continue
            await self._emit(comp.name, "restarted", _took(started))
            return
        await self._give_up(comp, self._over_budget())

    async def _restart_server(self, *, reported: bool) -> None:
        """Restart the display server and, after it, every client that should be running.
        `reported`: False when a client's exit revealed the death, not the server's own."""
        server = self._server
        server.state = "restarting"
        # "stopped": a client never started or not needed now (the browser before its first
        # use, x11vnc without viewers).
        wanted = [c for c in self._clients if c.state not in ("exited", "failed", "stopped")]
        for c in wanted:
            c.state = "restarting"
        await asyncio.gather(*(self._terminate(c, final_state="restarting") for c in wanted))
        await self._terminate(server, final_state="restarting")
        self._sweep_shm()
        if not reported and server.proc is not None:
            detail = _describe_exit(server.proc.returncode, server.tail)
            logger.warning("desktop %s: %s %s", self.session_id, server.name, detail)
            await self._emit(server.name, "exited", detail)
        started = time.monotonic()
        while True:
            if not self._spend_restart(server):
                for c in wanted:
                    c.state = "stopped"
                await self._give_up(server, self._over_budget())
                return
            try:
                await self._start(server)
                break
            except DesktopStartError as exc:
                logger.warning("desktop %s: restarting %s: %s", self.session_id, server.name, exc)
        results = await asyncio.gather(*(self._start(c) for c in wanted), return_exceptions=True)
        await self._emit(server.name, "restarted", _took(started))
        for c, result in zip(wanted, results, strict=True):
            if isinstance(result, Exception):
                await self._restart(c)

    def _spend_restart(self, comp: Component) -> bool:
        """Count a restart against the budget; False when the budget is used up."""
        now = time.monotonic()
        while comp.restarts and now - comp.restarts[0] > self._window:
            comp.restarts.popleft()
        if len(comp.restarts) >= self._limit:
            return False
        comp.restarts.append(now)
        return True

    def _over_budget(self) -> str:
        return f"restarted {self._limit} times within {self._window:.0f} s"

    async def _give_up(self, comp: Component, reason: str) -> None:
        comp.state = "failed"
        if comp.essential:
            self.failed = True
        logger.error("desktop %s: %s failed: %s", self.session_id, comp.name, reason)
        await self._emit(comp.name, "failed", reason)

    async def _emit(self, component: str, kind: EventKind, detail: str) -> None:
        if self._on_event is None:
            return
        try:
            result = self._on_event(self.session_id, component, kind, detail)
            if inspect.isawaitable(result):
                await result
        except Exception:
            logger.exception("desktop %s: on_event callback failed", self.session_id)

    # -- stopping --------------------------------------------------------------------------

    async def _terminate(self, comp: Component, final_state: ComponentState = "stopped") -> None:
        comp.stopping = True
        proc = comp.proc
        if proc is not None and proc.returncode is None:
            _signal_group(proc.pid, signal.SIGTERM)
            try:
                # Not wait_for(): on 3.11 it swallows a cancellation that arrives as the
                # process exits, and stop() would then wait on a loop that never ends.
                async with asyncio.timeout(STOP_GRACE):
                    await proc.wait()
            except TimeoutError:
                _signal_group(proc.pid, signal.SIGKILL)
                await proc.wait()
        elif proc is not None:
            _signal_group(proc.pid, signal.SIGKILL)  # children it left behind
        for task in comp.io_tasks:
            task.cancel()
        comp.io_tasks = []
        if comp.state not in ("failed", "exited") or final_state == "stopped":
            comp.state = final_state


async def _keep_tail(stream: asyncio.StreamReader | None, tail: deque[str]) -> None:
    """Keeps the last lines of a program's stderr (for the event detail), in bounded memory
    whatever it writes (readline() would fail on a line beyond the stream's limit)."""
    if stream is None:
        return
    pending = b""
    while chunk := await stream.read(4096):
        *lines, pending = (pending + chunk).split(b"\n")
        pending = pending[-TAIL_LINE_BYTES:]
        for line in lines:
            if text := line.decode(errors="replace").strip():
                tail.append(text[:TAIL_LINE_BYTES])


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.read(4096):
        pass


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _running(pid: int) -> bool:
    """False for a process that is gone or a zombie (dead but not reaped yet)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            state = stat.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _describe_exit(code: int | None, tail: deque[str]) -> str:
    if code is None:
        what = "exited"
    elif code < 0:
        what = f"killed by {signal.Signals(-code).name}"
    else:
        what = f"exited with code {code}"
    last = tail[-1] if tail else ""
    return f"{what}: {last}" if last else what


def _took(started: float) -> str:
    return f"back after {1000 * (time.monotonic() - started):.0f} ms"
