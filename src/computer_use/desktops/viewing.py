"""A session's x11vnc, running only while someone watches.

x11vnc is a component of every desktop's supervisor that is not started with it: an idle
session does not pay for it (bench/density.py --watched, 10 sessions: its process and the
SysV segments it shares with Xvfb are 8.9 MiB of an idle session's 21.7 MiB PSS). The VNC
proxy (and the cluster's relay) hold a viewer for each connection they carry: `open()`
counts the viewer and starts x11vnc if it is not running, returning its socket once it
listens; `close()` ends the viewer. When the last viewer has been gone for `linger` seconds
(VNC_LINGER_SECONDS), x11vnc is stopped; a viewer that comes back within that time (a
reload, a reconnect) finds it still running.

x11vnc that crashes while watched is restarted by the supervisor; one that the supervisor
gave up on is tried again by the next `open()`. Its failure never fails the desktop: the
agent does not need it.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Literal

from computer_use.desktops.errors import DesktopError
from computer_use.desktops.supervisor import Supervisor

logger = logging.getLogger(__name__)

VNC = "vnc"  # the component's name in the supervisor
LINGER = 30.0  # seconds x11vnc outlives its last viewer (VNC_LINGER_SECONDS)
RESTART_WAIT = 15.0  # the longest open() waits for a restart under way

ViewerState = Literal["down", "up"]


class SessionVnc:
    def __init__(
        self, session_id: str, supervisor: Supervisor, socket: Path, linger: float = LINGER
    ) -> None:
        self.session_id = session_id
        self._supervisor = supervisor
        self._socket = socket
        self.linger = linger
        self._viewers = 0
        self._lock = asyncio.Lock()  # one start or stop at a time
        self._stopper: asyncio.Task[None] | None = None  # waits out LINGER, then stops
        self._waiting = False  # the stopper is still waiting: a new viewer cancels it
        self._closed = False

    @property
    def viewers(self) -> int:
        return self._viewers

    @property
    def state(self) -> ViewerState:
        return "up" if self._up() else "down"

    def _up(self) -> bool:
        comp = self._supervisor.components[VNC]
        return comp.state == "running" and comp.alive()

    async def open(self) -> Path:
        """Count a viewer and return x11vnc's socket once it listens, starting x11vnc if it
        is not running. Raises DesktopError (the viewer is not counted then)."""
        if self._closed:
            raise DesktopError("the desktop is closing")
        self._viewers += 1
        if self._waiting and self._stopper is not None:
            self._stopper.cancel()
            self._stopper, self._waiting = None, False
        try:
            async with self._lock:
                await self._running()
        except BaseException:
            self.close()
            raise
        return self._socket

    def close(self) -> None:
        """A viewer opened with open() has gone."""
        self._viewers = max(0, self._viewers - 1)
        if self._viewers == 0 and not self._closed and not self._waiting:
            self._waiting = True
            self._stopper = asyncio.create_task(
                self._stop_later(), name=f"vnc-linger-{self.session_id}"
            )

    async def aclose(self) -> None:
        """The desktop is going: no more viewers (the supervisor stops x11vnc)."""
        self._closed = True
        if self._stopper is not None:
            task, self._stopper = self._stopper, None
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _running(self) -> None:
        """x11vnc is running once this returns: started here, or after the supervisor's
        restart of it or of the display server, waited for (RESTART_WAIT at most)."""
        comp = self._supervisor.components[VNC]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + RESTART_WAIT
        while not self._up():
            if comp.state not in ("starting", "restarting"):
                # Raises DesktopStartError if it cannot start; does nothing while the
                # display server is down (its restart is under way) or the desktop closes.
                await self._supervisor.ensure(VNC)
                if self._up():
                    return
            if loop.time() > deadline or self._closed:
                raise DesktopError(f"x11vnc is {comp.state}")
            await asyncio.sleep(0.1)

    async def _stop_later(self) -> None:
        await asyncio.sleep(self.linger)
        self._waiting = False  # from here on a new viewer waits for the stop, then starts it
        async with self._lock:
            comp = self._supervisor.components[VNC]
            loop = asyncio.get_running_loop()
            deadline = loop.time() + RESTART_WAIT
            while loop.time() < deadline:  # a restart under way: stop what it brings back
                if comp.state not in ("starting", "restarting"):
                    break
                await asyncio.sleep(0.1)
            if self._viewers == 0 and not self._closed and comp.state != "stopped":
                await self._supervisor.stop_client(VNC)
                logger.info("desktop %s: x11vnc stopped, no viewer", self.session_id)
