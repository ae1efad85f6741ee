"""A session's Firefox, started on first use instead of with the desktop.

A desktop without a browser costs a tenth of one with Firefox on a blank page
(bench/density.py), and most sessions sit idle. So the browser is a component of every
desktop's supervisor that is not started with it: `request()` starts it in the background,
called by the agent runner when a message is posted (in parallel with the model call) and by
the panel's Firefox button, which writes to a FIFO in the session's runtime directory
(`listen()`). A screenshot taken while a requested browser is still starting waits, bounded,
until its window is on screen and painted: the model's first look at the desktop shows it.

A crashed browser is restarted by the supervisor; one the user closed, or one the supervisor
gave up on, comes back on the next request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Literal

from Xlib import X, error
from Xlib.display import Display

from computer_use.desktops.errors import DesktopError
from computer_use.desktops.supervisor import Supervisor

logger = logging.getLogger(__name__)

BROWSER = "browser"  # the component's name in the supervisor
FIREFOX_CLASSES = frozenset({"firefox-esr", "firefox", "navigator"})  # WM_CLASS, lower case
SHOW_TIMEOUT = 60.0  # generous: twenty browsers starting at once on 2 busy cores take ~40 s
SETTLE_TIMEOUT = 5.0
# A window just mapped may show nothing for a while before Firefox's first paint (longer on
# a busy host): the screen counts as settled only when unchanged for this long.
PAINT_SETTLE = 0.3

BrowserState = Literal["down", "starting", "up"]
Query = Callable[[Callable[[Display], set[str]]], Awaitable[set[str]]]
Settle = Callable[[float, float], Awaitable[object]]  # (timeout, interval)


class SessionBrowser:
    def __init__(
        self, session_id: str, supervisor: Supervisor, query: Query, settle: Settle
    ) -> None:
        """`query` runs a function on an X connection to the display (InputInjector's)."""
        self.session_id = session_id
        self._supervisor = supervisor
        self._query = query
        self._settle = settle
        self._showing: asyncio.Task[None] | None = None
        self._fifo: int | None = None
        self._closed = False

    @property
    def state(self) -> BrowserState:
        comp = self._supervisor.components.get(BROWSER)
        if comp is None:
            return "down"
        if self._showing is not None and not self._showing.done():
            return "starting"
        if comp.state in ("starting", "restarting"):
            return "starting"
        return "up" if comp.state == "running" and comp.alive() else "down"

    def request(self) -> bool:
        """Start the browser in the background unless it is up or on its way; True if a
        start was begun. Never waits."""
        if self._closed or BROWSER not in self._supervisor.components or self.state != "down":
            return False
        self._showing = asyncio.create_task(self._start(), name=f"browser-{self.session_id}")
        return True

    async def window_shown(self) -> bool:
        """Whether a Firefox window is on screen."""
        return bool(await self._query(mapped_window_classes) & FIREFOX_CLASSES)

    async def shown(self) -> None:
        """Return once a browser start begun by request() has its window on screen (or has
        failed, or SHOW_TIMEOUT has passed); at once when no start is under way."""
        task = self._showing
        if task is not None and not task.done():
            # asyncio.wait: a cancelled caller (a cancelled run) leaves the start alone.
            await asyncio.wait({task}, timeout=SHOW_TIMEOUT + SETTLE_TIMEOUT)

    # -- the panel's button ------------------------------------------------------------------

    def listen(self, fifo: Path, uid: int, gid: int) -> None:
        """Create `fifo` (writable by the session's user only) and start the browser whenever
        something is written to it."""
        with contextlib.suppress(FileNotFoundError):
            fifo.unlink()
        os.mkfifo(fifo, 0o600)
        os.chown(fifo, uid, gid)
        # Read-write: we are a writer too, so the FIFO never reports end-of-file.
        self._fifo = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)
        asyncio.get_running_loop().add_reader(self._fifo, self._on_fifo)

    def _on_fifo(self) -> None:
        assert self._fifo is not None
        try:
            data = os.read(self._fifo, 4096)
        except BlockingIOError:
            return
        if data:
            self.request()

    async def close(self) -> None:
        self._closed = True
        if self._fifo is not None:
            fd, self._fifo = self._fifo, None
            asyncio.get_running_loop().remove_reader(fd)
            os.close(fd)
        task = self._showing
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    # -- mechanics ---------------------------------------------------------------------------

    async def _start(self) -> None:
        try:
            if await self._supervisor.ensure(BROWSER):
                await self._until_shown()
        except TimeoutError:
            logger.warning(
                "desktop %s: no browser window within %.0f s", self.session_id, SHOW_TIMEOUT
            )
        except (DesktopError, OSError) as exc:
            logger.warning("desktop %s: browser did not come up: %s", self.session_id, exc)
        except Exception:
            logger.exception("desktop %s: starting the browser failed", self.session_id)

    async def _until_shown(self) -> None:
        comp = self._supervisor.components[BROWSER]
        delay = 0.05
        async with asyncio.timeout(SHOW_TIMEOUT):
            while not await self.window_shown():
                if comp.state != "running" or not comp.alive():
                    raise DesktopError(f"the browser is {comp.state} before showing a window")
                await asyncio.sleep(delay)  # X has no event for "a client mapped a window"
                delay = min(delay * 2, 0.25)  # that we could await without a second connection
        await self._settle(SETTLE_TIMEOUT, PAINT_SETTLE)  # the window is mapped: let it paint


def mapped_window_classes(d: Display) -> set[str]:
    """WM_CLASS names (lower case) of the top-level windows on screen, looking one level
    into the window manager's frames."""
    found: set[str] = set()
    for top in d.screen().root.query_tree().children:
        try:
            if top.get_attributes().map_state != X.IsViewable:
                continue
            for window in (top, *top.query_tree().children):
                found.update(n.lower() for n in (window.get_wm_class() or ()))
        except error.BadWindow:
            continue  # closed while we looked
    return found
