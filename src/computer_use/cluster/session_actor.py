"""A session as a detached, named Ray actor owning its desktop and its agent runs on the node
Ray placed it on.

Desktop hosts are Ray nodes started with `--resources='{"desktop": N}'`; each session actor
asks for `desktop: 1` and no CPU (Ray would otherwise reserve a CPU per actor for its whole
life), so Ray puts at most N sessions on a host and places them where capacity is left. The
actor is detached (it outlives the process that created it) and named
`session-<id>` in the `computer-use` namespace, so any API process finds it by session id.

The actor reads its settings (DESKTOP_USER_PREFIX, DESKTOP_DISPLAY_BASE, MAX_DISPLAYS,
DATA_DIR, limits, and for runs DATABASE_URL, EVENT_BUS, the model's settings) from its host's
environment, i.e. the environment `ray start` ran in, so two hosts can share a machine. The
actors of one host share that range: each takes the first free slot k < MAX_DISPLAYS with a
runtime of its own (`build_runtime`) on user prefix `<prefix><k>-`, display `BASE + k + 1`
and `DATA_DIR/slots/<k>`; the desktop manager's host-wide instance lock refuses a slot another
live actor holds, and the kernel drops it when an actor dies. The actor's runtime serves its
one session only: the agent loop runs here, next to the desktop (screenshots never cross the
network), storing messages and publishing events in the shared database, from which every API
replica's event bus fans them out. `host` (the session's column) is the node's INSTANCE_NAME,
by default `<machine>:<DESKTOP_USER_PREFIX>`, unique per host.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import time
from pathlib import Path
from typing import Any

import ray

from computer_use import errors
from computer_use.cluster.kept_recordings import ensure_keeper, move_to_kept
from computer_use.cluster.naming import DESKTOP_RESOURCE, NAMESPACE, actor_name, session_actor
from computer_use.cluster.reaper import start_reaper, stop_reaper
from computer_use.cluster.remote_files import FileTransfers
from computer_use.cluster.remote_recordings import RecordingExports
from computer_use.cluster.slots import slot_settings
from computer_use.cluster.vnc_relay import VncRelay
from computer_use.config import Settings
from computer_use.desktops import Desktop
from computer_use.desktops.files import SessionFiles
from computer_use.desktops.hostlock import InstanceLockError
from computer_use.runtime import Runtime, build_runtime
from computer_use.sessions.models import SessionStatus

logger = logging.getLogger(__name__)

START_TIMEOUT = 180.0  # a desktop host under load starts a desktop in seconds, not minutes

PERSON_ACTIONS = frozenset({"pause", "resume", "answer"})


class NoFreeSlot(RuntimeError):
    """Every desktop slot of this host is held by a live actor (more actors than MAX_DISPLAYS)."""


class SessionActor:
    """Runs in a Ray worker process on a desktop host; methods run on the actor's event loop."""

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        # The host's own environment; RAY_ADDRESS, if Ray set it there, is not for the actor.
        self.settings = Settings(ray_address="")
        self.runtime: Runtime | None = None
        self.slot: int | None = None
        self.vnc_relay: VncRelay | None = None
        self._viewed: list[Desktop] = []  # a desktop per viewer the relay carries
        self.reaper: subprocess.Popen[bytes] | None = None  # reaper.py
        self.transfers = FileTransfers(lambda: SessionFiles(self._desktop().sandbox))
        self.exports = RecordingExports(lambda: self._runtime().sessions, session_id)
        self.pooled = False  # made ahead, not claimed by its session yet (pool_state)
        self.started: dict[str, Any] = {}  # what start() returned

    async def start(
        self, record: bool = False, *, browser: bool | None = None, pooled: bool = False
    ) -> dict[str, Any]:
        """Takes a desktop slot of this host and starts the session's desktop on it (`browser`:
        Firefox now; by default the host's BROWSER_EAGER), and with `record` its recording
        (on the slot's data directory: remote_recordings.py). `pooled`: made ahead by the
        cluster's warm pool (pool.py), the session has no record yet; `claim` hands it over."""
        began = time.monotonic()
        for slot in range(self.settings.max_displays):
            runtime = build_runtime(slot_settings(self.settings, slot))
            try:
                await runtime.desktops.start(keep=[self.session_id])
            except InstanceLockError:
                await runtime.engine.dispose()
                continue  # another live actor of this host holds it
            self.runtime, self.slot = runtime, slot
            self.reaper = start_reaper(self.settings, slot)
            break
        else:
            raise NoFreeSlot(
                f"all {self.settings.max_displays} desktop slots of this host are taken"
                " (MAX_DISPLAYS of the host should equal its `desktop` resource)"
            )
        # The slot's recordings of sessions gone with a dead actor go (kept ones are not on
        # a slot); the host's keeper of recordings runs (kept_recordings.py).
        await runtime.recordings.reconcile({self.session_id})
        await asyncio.to_thread(ensure_keeper, self.settings)
        desktop = await runtime.desktops.create(self.session_id, browser=browser)
        if record:
            await runtime.sessions.start_recording(self.session_id)
        self.pooled = pooled
        self.started = {
            "session_id": self.session_id,
            "host": self.settings.instance,
            "node_id": ray.get_runtime_context().get_node_id(),
            "slot": slot,
            "display": desktop.display,
            "start_seconds": time.monotonic() - began,  # the actor's own part of a create
        }
        return self.started

    # --- made ahead by the cluster's warm pool (pool.py) ------------------------------------

    async def pool_state(self) -> str:
        """`pooled` (waiting for its session), `failed` (pooled, but its desktop died while
        waiting) or `taken` (a session's, or never pooled)."""
        return self._pool_state()

    def _pool_state(self) -> str:
        if not self.pooled:
            return "taken"
        desktop = self.runtime.sessions.desktop(self.session_id) if self.runtime else None
        return "pooled" if desktop is not None and not desktop.failed else "failed"

    async def claim(self, record: bool = False) -> dict[str, Any] | None:
        """The pooled actor becomes its session's, once: what `start` returned, with `record`
        the recording started now; None when it is not pooled (claimed or withdrawn already)
        or its desktop died while it waited. Nothing else starts."""
        if self._pool_state() != "pooled":
            return None
        self.pooled = False  # no await since the check: one claim wins, on this event loop
        if record:
            await self._runtime().sessions.start_recording(self.session_id)
        return self.started

    async def withdraw(self) -> bool:
        """The pool lets go of this pooled actor: its desktop ends (the caller kills the actor
        next). False, and nothing ends, when a session has claimed it."""
        if not self.pooled:
            return False
        self.pooled = False
        await self.stop()
        return True

    async def ping(self) -> str:
        """The host's name: the actor is alive (API replicas check, docs/SCALING.md)."""
        return self.settings.instance

    async def run(
        self, content: str, api_key: str | None, owner: str | None, budget: dict[str, Any] | None
    ) -> None:
        """Starts the agent on `content` here, with the rules of a new message (the API
        replica passes the key it resolved; it is held in memory for the run only)."""
        await self._runtime().runner.start(
            session_id=self.session_id,
            content=content,
            api_key=api_key,
            owner=owner,
            budget=budget,
        )

    async def follow(self) -> None:
        """The session's budget or approval policy changed (PATCH): its run follows them."""
        runtime = self._runtime()
        runtime.runner.follow(await runtime.sessions.get(session_id=self.session_id))

    async def cancel(self) -> bool:
        return await self._runtime().runner.cancel(session_id=self.session_id)

    async def vnc_endpoint(self) -> tuple[str, int, bytes]:
        """Where an API replica reaches the session's x11vnc: the relay's address on this
        host's node address, its port and its secret (vnc_relay.py)."""
        if self.vnc_relay is None:
            address = ray.util.get_node_ip_address()  # type: ignore[no-untyped-call]
            self.vnc_relay = VncRelay(self._open_viewer, self._close_viewer, address)
        return await self.vnc_relay.endpoint()

    async def _open_viewer(self) -> Path | None:
        desktop = self.runtime.sessions.desktop(self.session_id) if self.runtime else None
        if desktop is None:
            return None
        path = await desktop.open_vnc()
        self._viewed.append(desktop)  # the desktop told when this viewer goes
        return path

    def _close_viewer(self) -> None:
        if self._viewed:
            self._viewed.pop().close_vnc()

    async def request_browser(self) -> None:
        """Someone opened the viewer: Firefox starts, if it is not up (desktops/browser.py)."""
        desktop = self._runtime().sessions.desktop(self.session_id)
        if desktop is not None:
            desktop.request_browser()

    async def person(self, action: str, *args: Any, **kwargs: Any) -> Any:
        """One of the person's controls (PersonControls: pause, resume, answer) on this
        session, whose run is here."""
        if action not in PERSON_ACTIONS:
            raise ValueError(f"{action} is not one of the person's controls")
        people = self._runtime().runner.people
        return await getattr(people, action)(self.session_id, *args, **kwargs)

    async def live_fields(self) -> dict[str, Any]:
        """What only this process knows of the session (AgentRunner.live_fields_here)."""
        return self._runtime().runner.live_fields_here(self.session_id)

    async def screenshot(self) -> bytes:
        """A PNG of the desktop now."""
        return await self._desktop().screenshot()

    async def click(self, x: int, y: int) -> None:
        """A left click at (x, y), in screen pixels."""
        await self._desktop().click(x, y)

    async def cursor_position(self) -> tuple[int, int]:
        return await self._desktop().cursor_position()

    async def files(self, verb: str, *args: Any) -> Any:
        """One of the files API's calls (FileTransfers.CALLS) for an API replica's
        RemoteFiles."""
        return await self.transfers.call(verb, *args)

    async def recording(self, verb: str, *args: Any) -> Any:
        """One of the recording's calls (RecordingExports.CALLS) for an API replica."""
        return await self.exports.call(verb, *args)

    async def open_transfers(self) -> int:
        """How many downloads and uploads are open here (tests, diagnosis)."""
        return len(self.transfers)

    def _runtime(self) -> Runtime:
        """The actor's runtime; DesktopNotRunning (a clear 503 on the replica) before start()
        has finished or after stop()."""
        if self.runtime is None:
            raise errors.DesktopNotRunning(SessionStatus.STARTING)
        return self.runtime

    def _desktop(self) -> Desktop:
        desktop = self._runtime().sessions.desktop(self.session_id)
        if desktop is None:
            raise errors.DesktopNotRunning(SessionStatus.ERROR)
        return desktop

    async def stop(self, *, remove_files: bool = True, keep_recording: bool = False) -> None:
        """Ends the run, the desktop and its files, and frees the slot (the actor itself is
        ended by ray.kill). The recording goes, or with `keep_recording` (an expiry that keeps
        it) moves to the host's kept recordings, served by its keeper."""
        if self.vnc_relay is not None:
            await self.vnc_relay.close()
            self.vnc_relay = None
        runtime, self.runtime, self.slot = self.runtime, None, None
        if runtime is None:
            return
        try:
            await self.transfers.close_all()
            await self.exports.close_all()
            await runtime.sessions.closing(self.session_id)  # the run stops first
            if keep_recording:
                await runtime.recordings.stop(self.session_id)
                await move_to_kept(runtime.recordings, self.session_id, self.settings)
            elif remove_files:
                await runtime.recordings.remove(self.session_id)
            else:
                await runtime.recordings.stop(self.session_id)
            await runtime.runner.shutdown()
            if runtime.desktops.get(self.session_id) is not None:
                await runtime.desktops.destroy(self.session_id, remove_files=remove_files)
            await runtime.desktops.shutdown()
        finally:
            await runtime.engine.dispose()
            if self.reaper is not None:
                stop_reaper(self.reaper)
                self.reaper = None


def create_session_actor(session_id: str) -> Any:
    """The session's detached actor, placed by Ray (spread over the hosts) on one with a free
    `desktop` slot. Call `start` on it next (`ray.get(actor.start.remote())`)."""
    remote = ray.remote(SessionActor).options(
        name=actor_name(session_id),
        namespace=NAMESPACE,
        lifetime="detached",
        num_cpus=0,
        resources={DESKTOP_RESOURCE: 1},
        scheduling_strategy="SPREAD",
    )
    return remote.remote(session_id)


__all__ = ["NAMESPACE", "SessionActor", "create_session_actor", "session_actor"]
