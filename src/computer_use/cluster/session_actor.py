"""A session as a detached, named Ray actor owning its desktop on the node Ray placed it on.

Desktop hosts are Ray nodes started with `--resources='{"desktop": N}'`; each session actor
asks for `desktop: 1` and no CPU (Ray would otherwise reserve a CPU per actor for its whole
life), so Ray puts at most N sessions on a host and places them where capacity is left. The
actor is detached (it outlives the process that created it) and named
`session-<id>` in the `computer-use` namespace, so any API process finds it by session id.

The actor reads its desktop settings (DESKTOP_USER_PREFIX, DESKTOP_DISPLAY_BASE, MAX_DISPLAYS,
DATA_DIR, limits) from its host's environment, i.e. the environment `ray start` ran in, so
two hosts can share a machine. The actors of one host share that range: each takes the first
free slot k < MAX_DISPLAYS by starting a one-desktop DesktopManager on user prefix
`<prefix><k>-`, display `BASE + k + 1` and `DATA_DIR/slots/<k>`; the manager's host-wide instance
lock refuses a slot another live actor holds, and the kernel drops it when an actor dies.
"""

from __future__ import annotations

import logging
from typing import Any

import ray

from computer_use.config import Settings
from computer_use.desktops import Desktop, DesktopManager
from computer_use.desktops.hostlock import InstanceLockError
from computer_use.runtime import desktop_manager

logger = logging.getLogger(__name__)

NAMESPACE = "computer-use"
DESKTOP_RESOURCE = "desktop"


def actor_name(session_id: str) -> str:
    return f"session-{session_id}"


class NoFreeSlot(RuntimeError):
    """Every desktop slot of this host is held by a live actor (more actors than MAX_DISPLAYS)."""


class SessionActor:
    """Runs in a Ray worker process on a desktop host; methods run on the actor's event loop."""

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        self.settings = Settings()
        self.manager: DesktopManager | None = None
        self.slot: int | None = None

    async def start(self) -> dict[str, Any]:
        """Takes a desktop slot of this host and starts the session's desktop on it."""
        for slot in range(self.settings.max_displays):
            manager = _slot_manager(self.settings, slot)
            try:
                await manager.start(keep=[self.session_id])
            except InstanceLockError:
                continue  # another live actor of this host holds it
            self.manager, self.slot = manager, slot
            break
        else:
            raise NoFreeSlot(
                f"all {self.settings.max_displays} desktop slots of this host are taken"
                " (MAX_DISPLAYS of the host should equal its `desktop` resource)"
            )
        desktop = await self.manager.create(self.session_id)
        return {
            "session_id": self.session_id,
            "host": ray.get_runtime_context().get_node_id(),
            "slot": slot,
            "display": desktop.display,
        }

    async def screenshot(self) -> bytes:
        """A PNG of the desktop now."""
        return await self._desktop().screenshot()

    async def click(self, x: int, y: int) -> None:
        """A left click at (x, y), in screen pixels."""
        await self._desktop().click(x, y)

    async def cursor_position(self) -> tuple[int, int]:
        return await self._desktop().cursor_position()

    def _desktop(self) -> Desktop:
        desktop = self.manager.get(self.session_id) if self.manager else None
        if desktop is None:
            raise RuntimeError(f"session {self.session_id} has no desktop on this actor")
        return desktop

    async def stop(self, *, remove_files: bool = True) -> None:
        """Ends the desktop and frees the slot (the actor itself is ended by ray.kill)."""
        if self.manager is None:
            return
        if self.manager.get(self.session_id) is not None:
            await self.manager.destroy(self.session_id, remove_files=remove_files)
        await self.manager.shutdown()
        self.manager, self.slot = None, None


def _slot_manager(settings: Settings, slot: int) -> DesktopManager:
    """A one-desktop manager on the host's slot `slot`, from this node's settings."""
    return desktop_manager(
        settings,
        data_dir=settings.data_dir / "slots" / str(slot),
        max_displays=1,
        display_base=settings.desktop_display_base + slot,
        user_prefix=f"{settings.desktop_user_prefix}{slot}-",
        warm_pool_size=0,
    )


def create_session_actor(session_id: str) -> Any:
    """The session's detached actor, placed by Ray on a host with a free `desktop` slot.
    Call `start` on it next (`ray.get(actor.start.remote())`)."""
    remote = ray.remote(SessionActor).options(
        name=actor_name(session_id),
        namespace=NAMESPACE,
        lifetime="detached",
        num_cpus=0,
        resources={DESKTOP_RESOURCE: 1},
    )
    return remote.remote(session_id)


def session_actor(session_id: str) -> Any:
    """The live actor of a session, from any process connected to the cluster."""
    return ray.get_actor(actor_name(session_id), namespace=NAMESPACE)
