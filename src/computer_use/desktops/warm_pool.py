"""Desktops prepared ahead (WARM_POOL_SIZE), so creating a session takes tens of milliseconds.

A pooled desktop is an ordinary one (slot, user, home, sandbox, Xvfb, jwm, x11vnc; Firefox
only with WARM_POOL_BROWSER, so that the session's first step does not wait for its start),
created under a placeholder id `warm-<hex>`. `claim()` hands it to a new session by renaming:
the session's directory (its mounts move with it, and the sandbox's bind of the home follows
the directory), the manager's and the desktop's records. Nothing is started on a claim. The
pool refills in the background; its desktops hold slots, so they count against MAX_DISPLAYS,
and a full host simply leaves the pool short until sessions go away.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from typing import TYPE_CHECKING, Any, Protocol

from computer_use.desktops.errors import DesktopCapacityError, DesktopError

if TYPE_CHECKING:
    from computer_use.desktops.desktop import Desktop
    from computer_use.desktops.slots import SlotAllocator

logger = logging.getLogger(__name__)

PREFIX = "warm-"
RETRY_AFTER_FAILURE = 5.0  # seconds before refilling again after a failed create


def is_pooled(session_id: str) -> bool:
    return session_id.startswith(PREFIX)


class DesktopSource(Protocol):
    """What the pool needs of the `DesktopManager` that owns it."""

    slots: SlotAllocator

    async def create(self, session_id: str, *, browser: bool | None = None) -> Desktop: ...

    async def destroy(self, session_id: str, *, remove_files: bool = True) -> None: ...


class WarmPool:
    def __init__(self, manager: DesktopSource, size: int, *, browser: bool = False) -> None:
        self.size = size
        self.browser = browser
        self._manager = manager
        self._ready: list[Desktop] = []
        self._wanted = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._cleanups: set[asyncio.Task[None]] = set()
        self.claimed = 0

    def start(self) -> None:
        if self.size > 0 and self._task is None:
            self._task = asyncio.create_task(self._refill(), name="warm-pool")
            self._wanted.set()

    async def close(self) -> None:
        """Stop refilling and destroy the pooled desktops with their files."""
        if self._task is not None:
            task, self._task = self._task, None
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        ready, self._ready = self._ready, []
        for desktop in ready:
            try:
                await self._manager.destroy(desktop.session_id)
            except DesktopError as exc:
                logger.error("warm pool: destroying %s failed: %s", desktop.session_id, exc)

    def take(self) -> Desktop | None:
        """A ready desktop, or None; never waits. The caller renames it (claim)."""
        while self._ready:
            desktop = self._ready.pop(0)
            self._wanted.set()
            if not desktop.failed:
                return desktop
            # died while it waited: let the manager clean it up in the background
            cleanup = asyncio.create_task(self._manager.destroy(desktop.session_id))
            self._cleanups.add(cleanup)
            cleanup.add_done_callback(self._cleanups.discard)
        return None

    def health(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "ready": len(self._ready),
            "claimed": self.claimed,
            "browser": self.browser,
        }

    async def _refill(self) -> None:
        while True:
            await self._wanted.wait()
            self._wanted.clear()
            while len(self._ready) < self.size:
                if self._manager.slots.used >= self._manager.slots.capacity:
                    break  # every slot is taken: wait for a claim or a destroy
                placeholder = PREFIX + secrets.token_hex(8)
                try:
                    desktop = await self._manager.create(placeholder, browser=self.browser)
                    self._ready.append(desktop)
                except DesktopCapacityError:
                    break
                except Exception:
                    logger.exception("warm pool: preparing a desktop failed")
                    await asyncio.sleep(RETRY_AFTER_FAILURE)

    def slot_freed(self) -> None:
        """The manager released a slot: the pool may be short because the host was full."""
        if len(self._ready) < self.size:
            self._wanted.set()
